// Warp-level reduction shared by pnpfast's CUDA reduction kernels (pnp_update.cu,
// constrained_step.cu): a fixed shuffle order, so the sums are deterministic.

#pragma once

namespace pnpfast {
namespace detail {

// The sum of v over the 32 lanes of a warp, in lane 0 (every lane must take part).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace detail
}  // namespace pnpfast
