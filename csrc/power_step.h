// Host entry point of the pnpfast CUDA kernels of one batched power-iteration step
// (csrc/power_step.cu). With state[b] = (estimate e_b, scale s_b, active, steps):
//
//   out_b            = s_b w_b  if active_b > 0  else u_b
//   partial[b, k, :] = this block's share of [ <u_b, w_b>, ||w_b||^2 ]
//   state_next[b]    = (estimate, scale, active, steps) after the step, or state[b] when frozen:
//       rayleigh  = s_b^2 <u_b, w_b>
//       estimate  = sqrt(max(rayleigh, 0)) if gram, else |rayleigh|
//       scale     = 1 / (s_b ||w_b||), or 0 when ||w_b|| = 0
//       active    = 0 when ||w_b|| = 0 or (steps > 0 and |estimate - e_b| <= tol * estimate)
//       steps     = steps + 1
//
// w, u, out: `images` contiguous images of `elems_per_image` elements each; state and
// state_next [images, 4]; partial [images, blocks_per_image, 2] (scratch: filled by the first
// kernel, summed over its middle axis by the second, in a fixed order, so the result is
// deterministic; frozen images get zero partial sums). tol is rounded to the dtype, as torch
// does for a Python scalar. All pointers are device pointers of one dtype; w and u may alias each
// other, out, state_next and partial must not overlap any input or each other. The two kernels
// are queued on `stream` of the current device, back to back (no host synchronisation). The
// return value is the launch status: cudaSuccess, the error of a launch, or
// cudaErrorInvalidValue when blocks_per_image is not in [1, 2**31 - 1] or elems_per_image < 0.
// Nothing is launched when images == 0; images of 0 elements get zero sums (so ||w|| = 0).

#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace pnpfast {

// T is float or double (the two compiled).
template <typename T>
cudaError_t launch_power_step(const T* w, const T* u, const T* state, double tol, bool gram,
                              T* out, T* state_next, T* partial, int64_t images,
                              int64_t elems_per_image, int64_t blocks_per_image,
                              cudaStream_t stream);

}  // namespace pnpfast
