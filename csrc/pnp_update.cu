// pnpfast CUDA kernel of the fused PnP update after a denoiser call.
//
//   out_b  = a_b f_b + b_b z_b + c_b x_b + d_b xprev_b          coef_b = (a_b, b_b, c_b, d_b)
//   sums_b = [ ||z_b - f_b||^2, ||x_b - xprev_b||^2, ||x_b||^2 ]
//
// One pass: every element of f, z, x, xprev is read once and every element of out written
// once; each block writes its share of the three sums of its image to partial[b, block, :],
// which the caller sums over the blocks (deterministic: no atomics, a fixed reduction order).
// A missing x or xprev (nullptr) is a zero image that is never read: the four combinations are
// separate instantiations. Sums accumulate in the input dtype (float32 or float64).
// pnpfast/ops/pnp_update.py holds the readable torch reference this kernel must match; shapes
// and the launcher's contract are in pnp_update.h.

#include "pnp_update.h"
#include "reduce.h"  // detail::warp_sum
#include "spectral.h"  // detail::Access (vector loads and stores), detail::aligned

namespace pnpfast {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxGridY = 65535;
// Resident blocks per SM asked of ptxas: float runs at full occupancy (8 x 256 threads, at most
// 32 registers); double needs more registers for its 8-byte values and runs at half occupancy,
// which still keeps enough 16-byte loads in flight to saturate memory.
template <typename T>
constexpr int kMinBlocksPerSm = sizeof(T) == 4 ? 2048 / kThreads : 1024 / kThreads;

// The three sums of the block's threads, in a fixed order, to slot[0..2] (thread 0 writes).
// Ends with a barrier so that `shared` may be reused at once.
template <typename T>
__device__ __forceinline__ void block_sums(T residual, T change, T norm, T (*shared)[kWarps],
                                           T* slot) {
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  residual = detail::warp_sum(residual);
  change = detail::warp_sum(change);
  norm = detail::warp_sum(norm);
  if (lane == 0) {
    shared[0][warp] = residual;
    shared[1][warp] = change;
    shared[2][warp] = norm;
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int j = 0; j < 3; ++j) {
      const T s = detail::warp_sum(lane < kWarps ? shared[j][lane] : T(0));
      if (lane == 0) slot[j] = s;
    }
  }
  __syncthreads();
}

// Block (x, y) handles images y, y + gridDim.y, ...; in each image its threads take steps
// blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x * blockDim.x, one step being W
// consecutive elements (W > 1 only when every image starts 16-byte aligned). gridDim.x is the
// number of partial slots per image.
template <typename T, int W, bool HasX, bool HasXprev>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm<T>)
    pnp_update_kernel(const T* __restrict__ f, const T* __restrict__ z, const T* __restrict__ x,
                      const T* __restrict__ xprev, const T* __restrict__ coef,
                      T* __restrict__ out, T* __restrict__ partial, int64_t images,
                      int64_t steps) {
  __shared__ T shared[3][kWarps];
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  // Offset of the current image, carried along the image loop (no multiply per image).
  const int64_t image_elems = steps * W;
  const int64_t base_stride = image_elems * gridDim.y;
  int64_t base = static_cast<int64_t>(blockIdx.y) * image_elems;
  for (int64_t b = blockIdx.y; b < images; b += gridDim.y, base += base_stride) {
    // uniform over the block: one broadcast read per warp each
    const T ca = __ldg(coef + 4 * b);
    const T cb = __ldg(coef + 4 * b + 1);
    const T cc = HasX ? __ldg(coef + 4 * b + 2) : T(0);
    const T cd = HasXprev ? __ldg(coef + 4 * b + 3) : T(0);
    T residual = 0;
    T change = 0;
    T norm = 0;
    // not unrolled: an unrolled scalar loop spills at the 32-register cap of float
#pragma unroll 1
    for (int64_t i = first; i < steps; i += stride) {
      const int64_t e = base + i * W;
      T ff[W];
      T zz[W];
      T xx[W];
      T pp[W];
      detail::Access<T, W>::load(f + e, ff);
      detail::Access<T, W>::load(z + e, zz);
      if constexpr (HasX) detail::Access<T, W>::load(x + e, xx);
      if constexpr (HasXprev) detail::Access<T, W>::load(xprev + e, pp);
#pragma unroll
      for (int k = 0; k < W; ++k) {
        const T r = zz[k] - ff[k];
        residual += r * r;
        T o = ca * ff[k] + cb * zz[k];
        if constexpr (HasX) {
          o += cc * xx[k];
          norm += xx[k] * xx[k];
        }
        if constexpr (HasXprev) {
          o += cd * pp[k];
          T dx = pp[k];
          if constexpr (HasX) dx = xx[k] - pp[k];
          change += dx * dx;
        }
        ff[k] = o;  // the output reuses f's registers
      }
      detail::Access<T, W>::store(out + e, ff);
    }
    if constexpr (HasX && !HasXprev) change = norm;  // ||x - 0||^2
    block_sums(residual, change, norm, shared,
               partial + (b * gridDim.x + blockIdx.x) * 3);
  }
}

template <typename T, int W, bool HasX, bool HasXprev>
cudaError_t launch_width(const T* f, const T* z, const T* x, const T* xprev, const T* coef,
                         T* out, T* partial, int64_t images, int64_t elems_per_image,
                         int64_t blocks_per_image, cudaStream_t stream) {
  const int64_t grid_y = images < kMaxGridY ? images : kMaxGridY;
  const dim3 grid(static_cast<unsigned>(blocks_per_image), static_cast<unsigned>(grid_y), 1);
  pnp_update_kernel<T, W, HasX, HasXprev><<<grid, kThreads, 0, stream>>>(
      f, z, x, xprev, coef, out, partial, images, elems_per_image / W);
  return cudaGetLastError();
}

// 16-byte vectors (float4, double2) when every image starts 16-byte aligned, else scalars.
template <typename T, bool HasX, bool HasXprev>
cudaError_t launch_inputs(const T* f, const T* z, const T* x, const T* xprev, const T* coef,
                          T* out, T* partial, int64_t images, int64_t elems_per_image,
                          int64_t blocks_per_image, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vector = elems_per_image % kVec == 0 && detail::aligned(f, 16) &&
                      detail::aligned(z, 16) && detail::aligned(out, 16) &&
                      (!HasX || detail::aligned(x, 16)) &&
                      (!HasXprev || detail::aligned(xprev, 16));
  if (vector) {
    return launch_width<T, kVec, HasX, HasXprev>(f, z, x, xprev, coef, out, partial, images,
                                                 elems_per_image, blocks_per_image, stream);
  }
  return launch_width<T, 1, HasX, HasXprev>(f, z, x, xprev, coef, out, partial, images,
                                            elems_per_image, blocks_per_image, stream);
}

template <typename T>
cudaError_t launch(const T* f, const T* z, const T* x, const T* xprev, const T* coef, T* out,
                   T* partial, int64_t images, int64_t elems_per_image, int64_t blocks_per_image,
                   cudaStream_t stream) {
  if (images <= 0) return cudaSuccess;
  if (blocks_per_image < 1 || blocks_per_image > 0x7fffffff || elems_per_image < 0) {
    return cudaErrorInvalidValue;
  }
  if (x != nullptr && xprev != nullptr) {
    return launch_inputs<T, true, true>(f, z, x, xprev, coef, out, partial, images,
                                        elems_per_image, blocks_per_image, stream);
  }
  if (x != nullptr) {
    return launch_inputs<T, true, false>(f, z, x, xprev, coef, out, partial, images,
                                         elems_per_image, blocks_per_image, stream);
  }
  if (xprev != nullptr) {
    return launch_inputs<T, false, true>(f, z, x, xprev, coef, out, partial, images,
                                         elems_per_image, blocks_per_image, stream);
  }
  return launch_inputs<T, false, false>(f, z, x, xprev, coef, out, partial, images,
                                        elems_per_image, blocks_per_image, stream);
}

}  // namespace

cudaError_t launch_pnp_update(const float* f, const float* z, const float* x,
                              const float* xprev, const float* coef, float* out, float* partial,
                              int64_t images, int64_t elems_per_image, int64_t blocks_per_image,
                              cudaStream_t stream) {
  return launch(f, z, x, xprev, coef, out, partial, images, elems_per_image, blocks_per_image,
                stream);
}

cudaError_t launch_pnp_update(const double* f, const double* z, const double* x,
                              const double* xprev, const double* coef, double* out,
                              double* partial, int64_t images, int64_t elems_per_image,
                              int64_t blocks_per_image, cudaStream_t stream) {
  return launch(f, z, x, xprev, coef, out, partial, images, elems_per_image, blocks_per_image,
                stream);
}

}  // namespace pnpfast
