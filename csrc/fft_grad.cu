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

// Update functor of detail::spectral_kernel (see spectral.h for what it must provide): the
// per-image s_b and t_b and, per frequency, the real factor s_b k2[f] + t_b shared by the real
// and the imaginary part.
template <typename T>
struct GradUpdate {
  struct Coeffs {
    const T* s;
    const T* t;
  };
  T s;
  T t;

  static __device__ __forceinline__ GradUpdate load(const Coeffs& c, int64_t b) {
    return GradUpdate{__ldg(c.s + b), __ldg(c.t + b)};
  }
  __device__ __forceinline__ void apply(T k2, const T* v, const T* kty, T* out) const {
    const T c = s * k2 + t;
    out[0] = c * v[0] - s * kty[0];
    out[1] = c * v[1] - s * kty[1];
  }
};

}  // namespace

template <typename T>
cudaError_t launch_fft_grad(const T* v, const T* kty, const T* k2, const T* s, const T* t,
                            T* out, int64_t planes, int64_t channels, int64_t freqs_per_plane,
                            int64_t k2_batch_stride, cudaStream_t stream) {
  return detail::launch_spectral<GradUpdate<T>>(v, kty, k2, {s, t}, out, planes, channels,
                                                freqs_per_plane, k2_batch_stride, stream);
}

template cudaError_t launch_fft_grad<float>(const float*, const float*, const float*,
                                            const float*, const float*, float*, int64_t,
                                            int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_fft_grad<double>(const double*, const double*, const double*,
                                             const double*, const double*, double*, int64_t,
                                             int64_t, int64_t, int64_t, cudaStream_t);

}  // namespace pnpfast
