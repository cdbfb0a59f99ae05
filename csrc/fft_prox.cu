// pnpfast CUDA kernel of the FFT-domain proximal step of a circular-convolution data term.
//
//   out = (v + gamma_b * kty) / (1 + gamma_b * k2[f])
//
// on the interleaved (re, im) float view of rfft2 spectra. The factor 1 / (1 + gamma_b k2[f]) is
// real, so the real and the imaginary part of frequency f get the same arithmetic.
//
// Shapes: v, kty, out [B, C, H, Wr, 2] contiguous (planes = B * C, freqs_per_plane = H * Wr);
// k2 [Bk, 1, H, Wr] real with Bk in {1, B}, shared by the C channels of an image (and by all
// images when Bk == 1, k2_batch_stride = 0); gamma [B]. float32 or float64 throughout.
// pnpfast/ops/fft_prox.py holds the readable torch reference this kernel must match.

#include "spectral.h"

namespace pnpfast {
namespace {

// Update functor of detail::spectral_kernel (see spectral.h for what it must provide): the
// per-image gamma_b and, per frequency, one reciprocal 1 / (1 + gamma_b k2[f]) shared by the
// real and the imaginary part.
template <typename T>
struct ProxUpdate {
  struct Coeffs {
    const T* gamma;
  };
  T g;

  static __device__ __forceinline__ ProxUpdate load(const Coeffs& c, int64_t b) {
    return ProxUpdate{__ldg(c.gamma + b)};
  }
  __device__ __forceinline__ void apply(T k2, const T* v, const T* kty, T* out) const {
    const T d = T(1) / (T(1) + g * k2);
    out[0] = (v[0] + g * kty[0]) * d;
    out[1] = (v[1] + g * kty[1]) * d;
  }
};

}  // namespace

template <typename T>
cudaError_t launch_fft_prox(const T* v, const T* kty, const T* k2, const T* gamma, T* out,
                            int64_t planes, int64_t channels, int64_t freqs_per_plane,
                            int64_t k2_batch_stride, cudaStream_t stream) {
  return detail::launch_spectral<ProxUpdate<T>>(v, kty, k2, {gamma}, out, planes, channels,
                                                freqs_per_plane, k2_batch_stride, stream);
}

template cudaError_t launch_fft_prox<float>(const float*, const float*, const float*,
                                            const float*, float*, int64_t, int64_t, int64_t,
                                            int64_t, cudaStream_t);
template cudaError_t launch_fft_prox<double>(const double*, const double*, const double*,
                                             const double*, double*, int64_t, int64_t, int64_t,
                                             int64_t, cudaStream_t);

}  // namespace pnpfast
