// pnpfast CUDA kernel of the fused spectral pass of a circular-convolution data-term gradient.
//
//   out = (s_b * k2[f] + t_b) * v - s_b * kty
//
// on the interleaved (re, im) float view of rfft2 spectra. The coefficients are real, so the
// real and the imaginary part of frequency f get the same arithmetic. s = 1, t = 0 gives the
// gradient |K^|^2 V^ - conj(K^) Y^; s = -tau, t = 1 gives the gradient step v - tau grad f(v).
//
// Shapes: v, kty, out [B, C, H, Wr, 2] contiguous (planes = B * C, freqs_per_plane = H * Wr);
// k2 [Bk, 1, H, Wr] real with Bk in {1, B}, shared by the C channels of an image (and by all
// images when Bk == 1, k2_batch_stride = 0); s, t [B]. float32 or float64 throughout.
// pnpfast/ops/fft_grad.py holds the readable torch reference this kernel must match.

#include "spectral.h"

namespace pnpfast {
namespace {

using detail::Access;
using detail::Layout;
using detail::Path;

// Block (x, y) handles planes y, y + gridDim.y, ...; in each plane its threads take steps
// blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x * blockDim.x, one step being
// L::kFreqs consecutive frequencies. `steps` = freqs_per_plane / L::kFreqs exactly (the host
// picks kFreqs = 2 only when freqs_per_plane is even, so no step straddles two planes).
template <typename T, typename L>
__global__ void __launch_bounds__(detail::kThreads, detail::kMinBlocksPerSm)
    fft_grad_kernel(const T* __restrict__ v, const T* __restrict__ kty,
                    const T* __restrict__ k2, const T* __restrict__ s,
                    const T* __restrict__ t, T* __restrict__ out, int64_t planes,
                    int64_t channels, int64_t steps, int64_t k2_batch_stride) {
  constexpr int kElems = 2 * L::kFreqs;  // floats of v / kty / out per step
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    // Per plane, uniform over the block: the image, its s and t (one broadcast read per warp
    // each) and the base of its k2 plane.
    const int64_t b = plane / channels;
    const T sb = __ldg(s + b);
    const T tb = __ldg(t + b);
    const T* __restrict__ k2_plane = k2 + b * k2_batch_stride;
    const int64_t base = plane * steps * kElems;
    const T* __restrict__ v_plane = v + base;
    const T* __restrict__ kty_plane = kty + base;
    T* __restrict__ out_plane = out + base;
    for (int64_t i = first; i < steps; i += stride) {
      T vv[kElems];
      T yy[kElems];
      T kk[L::kFreqs];
      T oo[kElems];
#pragma unroll
      for (int a = 0; a < kElems; a += L::kData) {
        Access<T, L::kData>::load(v_plane + i * kElems + a, vv + a);
        Access<T, L::kData>::load(kty_plane + i * kElems + a, yy + a);
      }
#pragma unroll
      for (int a = 0; a < L::kFreqs; a += L::kK2) {
        Access<T, L::kK2>::load_ro(k2_plane + i * L::kFreqs + a, kk + a);
      }
#pragma unroll
      for (int f = 0; f < L::kFreqs; ++f) {
        const T c = sb * kk[f] + tb;
        oo[2 * f] = c * vv[2 * f] - sb * yy[2 * f];
        oo[2 * f + 1] = c * vv[2 * f + 1] - sb * yy[2 * f + 1];
      }
#pragma unroll
      for (int a = 0; a < kElems; a += L::kData) {
        Access<T, L::kData>::store(out_plane + i * kElems + a, oo + a);
      }
    }
  }
}

template <typename T, typename L>
cudaError_t launch(const T* v, const T* kty, const T* k2, const T* s, const T* t, T* out,
                   int64_t planes, int64_t channels, int64_t freqs_per_plane,
                   int64_t k2_batch_stride, cudaStream_t stream) {
  const int64_t steps = freqs_per_plane / L::kFreqs;
  dim3 grid;
  const cudaError_t err = detail::spectral_grid(planes, steps, &grid);
  if (err != cudaSuccess) return err;
  fft_grad_kernel<T, L><<<grid, detail::kThreads, 0, stream>>>(
      v, kty, k2, s, t, out, planes, channels, steps, k2_batch_stride);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_any(const T* v, const T* kty, const T* k2, const T* s, const T* t, T* out,
                       int64_t planes, int64_t channels, int64_t freqs_per_plane,
                       int64_t k2_batch_stride, cudaStream_t stream) {
  if (planes <= 0 || channels <= 0 || freqs_per_plane <= 0) return cudaSuccess;
  switch (detail::choose_path(v, kty, k2, out, freqs_per_plane, k2_batch_stride)) {
    case Path::kTwoFreqs:
      if constexpr (sizeof(T) == 4) {
        return launch<T, Layout<2, 4, 2>>(v, kty, k2, s, t, out, planes, channels,
                                          freqs_per_plane, k2_batch_stride, stream);
      }
      break;  // never chosen for double
    case Path::kOneFreq:
      return launch<T, Layout<1, 2, 1>>(v, kty, k2, s, t, out, planes, channels,
                                        freqs_per_plane, k2_batch_stride, stream);
    case Path::kScalar:
      break;
  }
  return launch<T, Layout<1, 1, 1>>(v, kty, k2, s, t, out, planes, channels, freqs_per_plane,
                                    k2_batch_stride, stream);
}

}  // namespace

cudaError_t launch_fft_grad(const float* v, const float* kty, const float* k2, const float* s,
                            const float* t, float* out, int64_t planes, int64_t channels,
                            int64_t freqs_per_plane, int64_t k2_batch_stride,
                            cudaStream_t stream) {
  return launch_any(v, kty, k2, s, t, out, planes, channels, freqs_per_plane, k2_batch_stride,
                    stream);
}

cudaError_t launch_fft_grad(const double* v, const double* kty, const double* k2,
                            const double* s, const double* t, double* out, int64_t planes,
                            int64_t channels, int64_t freqs_per_plane, int64_t k2_batch_stride,
                            cudaStream_t stream) {
  return launch_any(v, kty, k2, s, t, out, planes, channels, freqs_per_plane, k2_batch_stride,
                    stream);
}

}  // namespace pnpfast
