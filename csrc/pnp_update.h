// Host entry point of the pnpfast CUDA kernel of the fused PnP update (csrc/pnp_update.cu).
//
//   out_b  = a_b f_b + b_b z_b + c_b x_b + d_b xprev_b          coef_b = (a_b, b_b, c_b, d_b)
//   partial[b, k, :] = this block's share of
//            [ ||z_b - f_b||^2, ||x_b - xprev_b||^2, ||x_b||^2 ]
//
// f, z, x, xprev, out: `images` contiguous images of `elems_per_image` elements each;
// coef [images, 4]; partial [images, blocks_per_image, 3]. x and/or xprev may be nullptr: a zero
// image that is never read. Summing partial over its middle axis gives the per-image sums; each
// slot is written by exactly one block, in a fixed order, so the result is deterministic. All
// pointers are device pointers of one dtype; out and partial must not overlap the inputs; the
// kernel is queued on `stream` of the current device. The return value is the launch status:
// cudaSuccess, the error of the launch, or cudaErrorInvalidValue when blocks_per_image is not in
// [1, 2**31 - 1]. Nothing is launched when images == 0; images of 0 elements get zero sums.

#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace pnpfast {

// T is float or double (the two compiled).
template <typename T>
cudaError_t launch_pnp_update(const T* f, const T* z, const T* x, const T* xprev, const T* coef,
                              T* out, T* partial, int64_t images, int64_t elems_per_image,
                              int64_t blocks_per_image, cudaStream_t stream);

}  // namespace pnpfast
