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

#include "common.h"
#include "pnp_update.h"

namespace pnpfast {
namespace {

using detail::Access;
using detail::kMinBlocksPerSm;
using detail::kThreads;
using detail::kWarps;

// Block (x, y) handles images y, y + gridDim.y, ...; in each image its threads take steps
// blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x * blockDim.x, one step being W
// consecutive elements (W > 1 only when every image starts 16-byte aligned). gridDim.x is the
// number of partial slots per image.
template <typename T, int W, bool HasX, bool HasXprev>
__global__ void __launch_bounds__(kThreads, detail::kSpillFreeMinBlocks<kMinBlocksPerSm<T>>)
    pnp_update_kernel(const T* __restrict__ f, const T* __restrict__ z, const T* __restrict__ x,
                      const T* __restrict__ xprev, const T* __restrict__ coef,
                      T* __restrict__ out, T* __restrict__ partial, int64_t images,
                      int64_t steps) {
  __shared__ T shared[3][kWarps];
  auto [first, stride, base, base_stride] = detail::grid_walk(steps * W);
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
      Access<T, W>::load(f + e, ff);
      Access<T, W>::load(z + e, zz);
      if constexpr (HasX) Access<T, W>::load(x + e, xx);
      if constexpr (HasXprev) Access<T, W>::load(xprev + e, pp);
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
      Access<T, W>::store(out + e, ff);
    }
    if constexpr (HasX && !HasXprev) change = norm;  // ||x - 0||^2
    T sums[3] = {residual, change, norm};
    detail::block_sums(sums, shared, partial + (b * gridDim.x + blockIdx.x) * 3);
  }
}

template <typename T, int W, bool HasX, bool HasXprev>
cudaError_t launch_width(const T* f, const T* z, const T* x, const T* xprev, const T* coef,
                         T* out, T* partial, int64_t images, int64_t elems_per_image,
                         int64_t blocks_per_image, cudaStream_t stream) {
  const dim3 grid = detail::image_grid(images, blocks_per_image);
  pnp_update_kernel<T, W, HasX, HasXprev><<<grid, kThreads, 0, stream>>>(
      f, z, x, xprev, coef, out, partial, images, elems_per_image / W);
  return cudaGetLastError();
}

// 16-byte vectors (float4, double2) when every image starts 16-byte aligned, else scalars.
template <typename T, bool HasX, bool HasXprev>
cudaError_t launch_inputs(const T* f, const T* z, const T* x, const T* xprev, const T* coef,
                          T* out, T* partial, int64_t images, int64_t elems_per_image,
                          int64_t blocks_per_image, cudaStream_t stream) {
  if (detail::vectorizable<T>(elems_per_image, {f, z, out, x, xprev})) {
    return launch_width<T, detail::kVec<T>, HasX, HasXprev>(
        f, z, x, xprev, coef, out, partial, images, elems_per_image, blocks_per_image, stream);
  }
  return launch_width<T, 1, HasX, HasXprev>(f, z, x, xprev, coef, out, partial, images,
                                            elems_per_image, blocks_per_image, stream);
}

}  // namespace

template <typename T>
cudaError_t launch_pnp_update(const T* f, const T* z, const T* x, const T* xprev, const T* coef,
                              T* out, T* partial, int64_t images, int64_t elems_per_image,
                              int64_t blocks_per_image, cudaStream_t stream) {
  if (images <= 0) return cudaSuccess;
  if (!detail::valid_blocks_per_image(blocks_per_image) || elems_per_image < 0) {
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

template cudaError_t launch_pnp_update<float>(const float*, const float*, const float*,
                                              const float*, const float*, float*, float*,
                                              int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_pnp_update<double>(const double*, const double*, const double*,
                                               const double*, const double*, double*, double*,
                                               int64_t, int64_t, int64_t, cudaStream_t);

}  // namespace pnpfast
