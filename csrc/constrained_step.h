// Host entry points of the pnpfast CUDA kernels of the implicit-prior sampler's step
// (csrc/constrained_step.cu), two passes:
//
//   pass 1  d_b   = x_hat_b - y_b                                  (lifted == nullptr)
//           d_b   = x_hat_b - y_b + lifted_b - P x_hat_b           (otherwise)
//           out_b = y_b + h_b d_b
//           partial[b, k] = this block's share of ||d_b||^2
//   pass 2  out_b += c_b sigma_b z_b,   z_b ~ N(0, I) drawn in the kernel (Philox4x32-10)
//
// Pass 1 (launch_constrained_step): denoised (x_hat), y, out, and lifted and projected when
// given, are `images` contiguous [channels, height, width] images; h [images];
// partial [images, blocks_per_image]. P x_hat is
//   mask != nullptr        mask[b / (images / mask_images)] * x_hat_b, mask [mask_images, 1,
//                          height, width] (one mask plane for all channels; mask_images >= 1
//                          divides images);
//   factor in {2, 4, 8}    the mean of each factor x factor block of each channel plane of
//                          x_hat_b (factor divides height and width);
//   projected != nullptr   the given [images, channels, height, width] tensor.
// Exactly one of the three when lifted is given, none of them (mask = projected = nullptr,
// factor = 0) when it is not. Summing partial over its second axis gives ||d_b||^2; each slot is
// written by exactly one block, in a fixed order (no atomics), so the result is deterministic;
// the sums accumulate in the input dtype. out and partial must not overlap the inputs.
//
// Pass 2 (launch_constrained_step_noise): out [images, elems_per_image] contiguous, updated in
// place; sigma, c [images]. z is a function of (seed, image, element) only: Philox4x32-10 keyed
// by the two 32-bit halves of `seed`, one counter (the image and the index of a group of four
// consecutive elements of it) per four normals (Box-Muller). Images whose c_b sigma_b is zero
// are left untouched (not even read).
//
// All pointers are device pointers of one dtype (float32 or float64); the kernels are queued on
// `stream` of the current device. The return value is the launch status: cudaSuccess, the error
// of the launch, or cudaErrorInvalidValue for arguments outside the contract above (pass 1:
// blocks_per_image not in [1, 2**31 - 1], an inconsistent projection form, a factor that does
// not divide the image or leaves 2**31 or more blocks along a row; pass 2: seed < 0). Nothing is
// launched when images == 0 (nor, for pass 2, when elems_per_image == 0); pass 1 writes zero
// sums for images of 0 elements.

#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace pnpfast {

// T is float or double (the two compiled) in both launchers.
template <typename T>
cudaError_t launch_constrained_step(const T* denoised, const T* y, const T* lifted, const T* mask,
                                    int64_t mask_images, int64_t factor, const T* projected,
                                    const T* h, T* out, T* partial, int64_t images,
                                    int64_t channels, int64_t height, int64_t width,
                                    int64_t blocks_per_image, cudaStream_t stream);

template <typename T>
cudaError_t launch_constrained_step_noise(T* out, const T* sigma, const T* c, int64_t images,
                                          int64_t elems_per_image, int64_t seed,
                                          cudaStream_t stream);

}  // namespace pnpfast
