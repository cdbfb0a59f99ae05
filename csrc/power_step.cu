// pnpfast CUDA kernels of one batched power-iteration step (w = M u computed by the caller).
//
//   out_b = s_b w_b  (active images),  u_b  (frozen images)
//   dot_b = <u_b, w_b>,  ww_b = ||w_b||^2  ->  estimate, scale 1 / (s_b ||w_b||), convergence
//
// Two kernels queued back to back on one stream, no atomics and no host synchronisation:
//   power_pass_kernel    grid (blocks_per_image, min(images, 65535)): every element of u and w
//                        is read once and every element of out written once (16-byte vectors
//                        when every image starts 16-byte aligned); each block writes its share
//                        of dot_b and ww_b to partial[b, block, 0:2]. A frozen image is copied
//                        (w is not read) and gets zero partial sums.
//   power_finish_kernel  one block per image (images beyond 2**31 - 1 taken by a grid-stride
//                        loop): its threads sum the partial slots of the image in a fixed order
//                        (thread t takes slots t, t + blockDim.x, ... in turn, then a fixed
//                        shuffle tree), and thread 0 writes state_next[b] as the reference does.
//                        A frozen image's state row is copied unchanged.
// Every slot is written by exactly one block and summed in the same order on every run, so the
// result is deterministic. Sums accumulate in the input dtype (float32 or float64).
// pnpfast/ops/power_step.py holds the readable torch reference these kernels must match;
// shapes and the launcher's contract are in power_step.h.

#include "common.h"
#include "power_step.h"

namespace pnpfast {
namespace {

using detail::Access;
using detail::kMinBlocksPerSm;
using detail::kThreads;
using detail::kWarps;

// The finish kernel sums a few partial slots per image (at most one per 1024 elements, see
// cuda_partial_blocks in pnpfast/ops/_alloc.py): a smaller block wastes fewer idle threads when
// the batch is large and each image has a single slot.
constexpr int kFinishThreads = 128;
constexpr int kFinishWarps = kFinishThreads / 32;

// Correctly rounded square root and absolute value in the dtype (no promotion to double).
__device__ __forceinline__ float sqrt_of(float x) { return sqrtf(x); }
__device__ __forceinline__ double sqrt_of(double x) { return sqrt(x); }
__device__ __forceinline__ float abs_of(float x) { return fabsf(x); }
__device__ __forceinline__ double abs_of(double x) { return fabs(x); }

// Block (x, y) handles images y, y + gridDim.y, ...; in each image its threads take steps
// blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x * blockDim.x, one step being W
// consecutive elements (W > 1 only when every image starts 16-byte aligned). gridDim.x is the
// number of partial slots per image.
template <typename T, int W>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm<T>)
    power_pass_kernel(const T* __restrict__ w, const T* __restrict__ u,
                      const T* __restrict__ state, T* __restrict__ out, T* __restrict__ partial,
                      int64_t images, int64_t steps) {
  __shared__ T shared[2][kWarps];
  auto [first, stride, base, base_stride] = detail::grid_walk(steps * W);
  for (int64_t b = blockIdx.y; b < images; b += gridDim.y, base += base_stride) {
    T* slot = partial + (b * gridDim.x + blockIdx.x) * 2;
    // uniform over the block: one broadcast read per warp each
    const T active = __ldg(state + 4 * b + 2);
    if (!(active > T(0))) {  // frozen (as torch's active > 0, NaN included): out = u
#pragma unroll 1
      for (int64_t i = first; i < steps; i += stride) {
        const int64_t e = base + i * W;
        T uu[W];
        Access<T, W>::load(u + e, uu);
        Access<T, W>::store(out + e, uu);
      }
      if (threadIdx.x == 0) {
        slot[0] = T(0);
        slot[1] = T(0);
      }
      continue;  // uniform over the block: no barrier is skipped by only some threads
    }
    const T scale = __ldg(state + 4 * b + 1);
    T dot = 0;
    T norm = 0;
    // not unrolled, as in pnp_update.cu: keeps float within its 32 registers
#pragma unroll 1
    for (int64_t i = first; i < steps; i += stride) {
      const int64_t e = base + i * W;
      T ww[W];
      T uu[W];
      Access<T, W>::load(w + e, ww);
      Access<T, W>::load(u + e, uu);
#pragma unroll
      for (int k = 0; k < W; ++k) {
        dot += uu[k] * ww[k];
        norm += ww[k] * ww[k];
        ww[k] = scale * ww[k];  // the output reuses w's registers
      }
      Access<T, W>::store(out + e, ww);
    }
    T sums[2] = {dot, norm};
    detail::block_sums(sums, shared);
    if (threadIdx.x == 0) {
      slot[0] = sums[0];
      slot[1] = sums[1];
    }
  }
}

// Block x handles images x, x + gridDim.x, ...: the sums of their partial slots, then the next
// state row, written by thread 0 with the reference's arithmetic (in the dtype, same order).
template <typename T, bool Gram>
__global__ void __launch_bounds__(kFinishThreads)
    power_finish_kernel(const T* __restrict__ state, const T* __restrict__ partial,
                        T* __restrict__ state_next, T tol, int64_t images,
                        int64_t blocks_per_image) {
  __shared__ T shared[2][kFinishWarps];
  for (int64_t b = blockIdx.x; b < images; b += gridDim.x) {
    const T* row = state + 4 * b;
    T* next = state_next + 4 * b;
    const T active = __ldg(row + 2);  // uniform over the block
    if (!(active > T(0))) {           // frozen: the state row is kept
      if (threadIdx.x < 4) next[threadIdx.x] = __ldg(row + threadIdx.x);
      continue;  // uniform over the block: no barrier is skipped by only some threads
    }
    const T* slots = partial + b * blocks_per_image * 2;
    T sums[2] = {0, 0};  // <u, w>, ||w||^2
#pragma unroll 1
    for (int64_t k = threadIdx.x; k < blocks_per_image; k += blockDim.x) {
      sums[0] += slots[2 * k];
      sums[1] += slots[2 * k + 1];
    }
    detail::block_sums(sums, shared);
    const T dot = sums[0];
    const T ww = sums[1];
    if (threadIdx.x == 0) {
      const T estimate = __ldg(row);
      const T scale = __ldg(row + 1);
      const T steps = __ldg(row + 3);
      const T rayleigh = scale * scale * dot;
      // clamp_min(0) keeps a NaN, as torch does
      const T estimate_next = Gram ? sqrt_of(rayleigh < T(0) ? T(0) : rayleigh) : abs_of(rayleigh);
      const T wnorm = sqrt_of(ww);
      const bool zero = wnorm == T(0);  // M v = 0: estimate 0, nothing left to iterate
      const bool converged =
          zero || (steps > T(0) && abs_of(estimate_next - estimate) <= tol * estimate_next);
      next[0] = estimate_next;
      next[1] = zero ? T(0) : T(1) / (scale * wnorm);
      next[2] = converged ? T(0) : active;
      next[3] = steps + T(1);
    }
  }
}

template <typename T, int W>
cudaError_t launch_pass(const T* w, const T* u, const T* state, T* out, T* partial,
                        int64_t images, int64_t elems_per_image, int64_t blocks_per_image,
                        cudaStream_t stream) {
  const dim3 grid = detail::image_grid(images, blocks_per_image);
  power_pass_kernel<T, W><<<grid, kThreads, 0, stream>>>(w, u, state, out, partial, images,
                                                         elems_per_image / W);
  return cudaGetLastError();
}

template <typename T, bool Gram>
cudaError_t launch_finish(const T* state, const T* partial, T* state_next, T tol,
                          int64_t images, int64_t blocks_per_image, cudaStream_t stream) {
  const int64_t grid_x = images < detail::kMaxGridX ? images : detail::kMaxGridX;
  power_finish_kernel<T, Gram><<<static_cast<unsigned>(grid_x), kFinishThreads, 0, stream>>>(
      state, partial, state_next, tol, images, blocks_per_image);
  return cudaGetLastError();
}

}  // namespace

template <typename T>
cudaError_t launch_power_step(const T* w, const T* u, const T* state, double tol, bool gram,
                              T* out, T* state_next, T* partial, int64_t images,
                              int64_t elems_per_image, int64_t blocks_per_image,
                              cudaStream_t stream) {
  if (images <= 0) return cudaSuccess;
  if (!detail::valid_blocks_per_image(blocks_per_image) || elems_per_image < 0) {
    return cudaErrorInvalidValue;
  }
  // 16-byte vectors (float4, double2) when every image starts 16-byte aligned, else scalars.
  const cudaError_t err =
      detail::vectorizable<T>(elems_per_image, {w, u, out})
          ? launch_pass<T, detail::kVec<T>>(w, u, state, out, partial, images, elems_per_image,
                                            blocks_per_image, stream)
          : launch_pass<T, 1>(w, u, state, out, partial, images, elems_per_image,
                              blocks_per_image, stream);
  if (err != cudaSuccess) return err;
  const T tol_t = static_cast<T>(tol);  // torch rounds a Python scalar to the tensor's dtype
  if (gram) {
    return launch_finish<T, true>(state, partial, state_next, tol_t, images, blocks_per_image,
                                  stream);
  }
  return launch_finish<T, false>(state, partial, state_next, tol_t, images, blocks_per_image,
                                 stream);
}

template cudaError_t launch_power_step<float>(const float*, const float*, const float*, double,
                                              bool, float*, float*, float*, int64_t, int64_t,
                                              int64_t, cudaStream_t);
template cudaError_t launch_power_step<double>(const double*, const double*, const double*,
                                               double, bool, double*, double*, double*, int64_t,
                                               int64_t, int64_t, cudaStream_t);

}  // namespace pnpfast
