// Host entry point of the pnpfast CUDA kernel of the super-resolution prox's spectral step
// (csrc/sr_prox.cu). Per image plane (b, c) and low-resolution frequency f = (u, v), with the
// s^2 aliases a = (u + p h, v + q w), 0 <= p, q < s, of f in the full H x W spectrum:
//
//   R^[a] = V^[a] + gamma_b kty[a]
//   Q     = gamma_b mean_a(K^[a] R^[a]) / (1 + gamma_b k2_mean[f])
//   out[a] = R^[a] - conj(K^[a]) Q
//
// on the interleaved (re, im) float view of full complex spectra (torch.view_as_real of fft2):
//   v, kty, out  [B, C, H, W, 2] contiguous, planes = B * C, height = H, width = W
//   k            [Bk, 1, H, W, 2] contiguous, Bk in {1, B}; k_batch_stride = 0 when Bk == 1,
//                2 * H * W when Bk == B (counted in elements of k)
//   k2_mean      [Bk, 1, H / s, W / s] real; k2_mean_batch_stride = 0 or (H / s) * (W / s)
//   gamma        [B] real
// Image b of plane p is p / channels. factor s must be 1, 2, 3 or 4 (one compiled kernel each)
// and divide height and width. All pointers are device pointers of one dtype; out must not
// overlap any input. The kernel is queued on `stream` of the current device. The return value
// is the launch status: cudaSuccess, the error of the launch, or cudaErrorInvalidValue for a
// factor that is not compiled or does not divide the size (nothing is launched then, nor for
// empty inputs).

#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace pnpfast {

// The factors a kernel is compiled for (FAST_FACTORS in pnpfast/ops/sr_prox.py).
constexpr int64_t kSrProxMaxFactor = 4;

// T is float or double (the two compiled).
template <typename T>
cudaError_t launch_sr_prox(const T* v, const T* kty, const T* k, const T* k2_mean,
                           const T* gamma, T* out, int64_t planes, int64_t channels,
                           int64_t height, int64_t width, int64_t factor, int64_t k_batch_stride,
                           int64_t k2_mean_batch_stride, cudaStream_t stream);

}  // namespace pnpfast
