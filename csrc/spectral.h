// Host entry points of the pnpfast spectral CUDA kernels (csrc/fft_prox.cu, csrc/fft_grad.cu).
//
// Every launcher works on the interleaved (re, im) float view of rfft2 spectra:
//   v, kty, out  [B, C, H, Wr, 2] contiguous, planes = B * C, freqs_per_plane = H * Wr
//   k2           [Bk, 1, H, Wr] real, Bk in {1, B}; k2_batch_stride = 0 when Bk == 1,
//                freqs_per_plane when Bk == B (counted in elements of k2)
//   gamma, s, t  [B] real
// Image b of plane p is p / channels. All pointers are device pointers of one dtype; the kernel
// is queued on `stream` of the current device. The return value is the launch status
// (cudaSuccess, or the error of the launch; nothing is launched for empty inputs).
//
// When compiled by nvcc this header also provides, in namespace pnpfast::detail, what the two
// ops share: the one spectral kernel (spectral_kernel) and its launcher (launch_spectral),
// which picks the memory path and the grid; the helpers of every kernel are in common.h. Each
// .cu file only adds the per-frequency arithmetic of its op, as an update functor (see
// spectral_kernel).

#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace pnpfast {

// out = (v + gamma_b * kty) / (1 + gamma_b * k2[f]); T is float or double (the two compiled).
template <typename T>
cudaError_t launch_fft_prox(const T* v, const T* kty, const T* k2, const T* gamma, T* out,
                            int64_t planes, int64_t channels, int64_t freqs_per_plane,
                            int64_t k2_batch_stride, cudaStream_t stream);

// out = (s_b * k2[f] + t_b) * v - s_b * kty; T is float or double (the two compiled).
template <typename T>
cudaError_t launch_fft_grad(const T* v, const T* kty, const T* k2, const T* s, const T* t,
                            T* out, int64_t planes, int64_t channels, int64_t freqs_per_plane,
                            int64_t k2_batch_stride, cudaStream_t stream);

}  // namespace pnpfast

#if defined(__CUDACC__)

#include "common.h"

namespace pnpfast::detail {

// Memory layout of one kernel instantiation: each thread step covers kFreqs frequencies
// (2 * kFreqs elements of v, kty and out, read and written kData elements per instruction)
// and kFreqs values of k2 (read kK2 elements per instruction).
template <int Freqs, int Data, int K2>
struct Layout {
  static constexpr int kFreqs = Freqs;
  static constexpr int kData = Data;
  static constexpr int kK2 = K2;
  static_assert((2 * Freqs) % Data == 0 && Freqs % K2 == 0, "accesses must tile a step");
};

// How a launch reads and writes memory, chosen from the alignment of the pointers:
//   kTwoFreqs  float only: float4 of v, kty, out (two complex numbers), float2 of k2. Needs an
//              even freqs_per_plane and k2_batch_stride (so that every plane starts 16-byte
//              aligned) and 16-byte aligned v, kty, out and 8-byte aligned k2.
//   kOneFreq   float2 / double2 of v, kty, out (one complex number), one k2 value. Needs v,
//              kty, out aligned to one complex number, as the views of complex tensors are.
//   kScalar    one element per access; any pointers.
enum class Path { kTwoFreqs, kOneFreq, kScalar };

template <typename T>
Path choose_path(const T* v, const T* kty, const T* k2, const T* out, int64_t freqs_per_plane,
                 int64_t k2_batch_stride) {
  if (sizeof(T) == 4 && freqs_per_plane % 2 == 0 && k2_batch_stride % 2 == 0 &&
      aligned(v, 16) && aligned(kty, 16) && aligned(out, 16) && aligned(k2, 8)) {
    return Path::kTwoFreqs;
  }
  const std::size_t complex_bytes = 2 * sizeof(T);
  if (aligned(v, complex_bytes) && aligned(kty, complex_bytes) && aligned(out, complex_bytes)) {
    return Path::kOneFreq;
  }
  return Path::kScalar;
}

// The spectral kernel, generic over the op. The update functor U carries one op's per-image
// coefficients and per-frequency arithmetic; it must provide
//
//   struct Coeffs            the op's per-image coefficient pointers (each [B], device memory,
//                            e.g. { const T* gamma; }); trivially copyable, passed to the kernel
//                            by value.
//   static __device__ U load(const Coeffs& c, int64_t b)
//                            reads image b's coefficients (with __ldg) into a U. Called once
//                            per (block, plane), with b uniform over the block.
//   __device__ void apply(T k2, const T* v, const T* kty, T* out) const
//                            one frequency: v[0..1] and kty[0..1] are its (re, im), k2 its real
//                            k2 value; writes out[0..1]. All three point into register arrays.
//
// Block (x, y) handles planes y, y + gridDim.y, ...; in each plane its threads take steps
// blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x * blockDim.x, one step being
// L::kFreqs consecutive frequencies. `steps` = freqs_per_plane / L::kFreqs exactly (the host
// picks kFreqs = 2 only when freqs_per_plane is even, so no step straddles two planes).
//
// Launch bounds: 8 x 256 threads fill an sm_80 or sm_90 SM, which caps the kernel at 32
// registers, for float and double alike; it needs no more on sm_90, and asks for 6 blocks (40
// registers) below sm_90, where double spills at 32 (kSpillFreeMinBlocks, common.h).
template <typename T, typename L, typename U>
__global__ void __launch_bounds__(kThreads, kSpillFreeMinBlocks<kFullOccupancyBlocks>)
    spectral_kernel(const T* __restrict__ v, const T* __restrict__ kty,
                    const T* __restrict__ k2, const typename U::Coeffs coeffs,
                    T* __restrict__ out, int64_t planes, int64_t channels, int64_t steps,
                    int64_t k2_batch_stride) {
  constexpr int kElems = 2 * L::kFreqs;  // elements of v / kty / out per step
  auto [first, stride, base, base_stride] = grid_walk(steps * kElems);
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y, base += base_stride) {
    // Per plane, uniform over the block: the image, its coefficients (one broadcast read per
    // warp each) and the base of its k2 plane.
    const int64_t b = plane / channels;
    const U update = U::load(coeffs, b);
    const T* __restrict__ k2_plane = k2 + b * k2_batch_stride;
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
        update.apply(kk[f], vv + 2 * f, yy + 2 * f, oo + 2 * f);
      }
#pragma unroll
      for (int a = 0; a < kElems; a += L::kData) {
        Access<T, L::kData>::store(out_plane + i * kElems + a, oo + a);
      }
    }
  }
}

template <typename T, typename L, typename U>
cudaError_t launch_layout(const T* v, const T* kty, const T* k2,
                          const typename U::Coeffs& coeffs, T* out, int64_t planes,
                          int64_t channels, int64_t freqs_per_plane, int64_t k2_batch_stride,
                          cudaStream_t stream) {
  const int64_t steps = freqs_per_plane / L::kFreqs;
  dim3 grid;
  const cudaError_t err = wave_grid(planes, steps, &grid);
  if (err != cudaSuccess) return err;
  spectral_kernel<T, L, U><<<grid, kThreads, 0, stream>>>(v, kty, k2, coeffs, out, planes,
                                                          channels, steps, k2_batch_stride);
  return cudaGetLastError();
}

// Launches spectral_kernel with update functor U on the fastest memory path the pointers allow
// (choose_path); nothing for empty inputs. Shapes and strides as in the launchers above.
template <typename U, typename T>
cudaError_t launch_spectral(const T* v, const T* kty, const T* k2,
                            const typename U::Coeffs& coeffs, T* out, int64_t planes,
                            int64_t channels, int64_t freqs_per_plane, int64_t k2_batch_stride,
                            cudaStream_t stream) {
  if (planes <= 0 || channels <= 0 || freqs_per_plane <= 0) return cudaSuccess;
  switch (choose_path(v, kty, k2, out, freqs_per_plane, k2_batch_stride)) {
    case Path::kTwoFreqs:
      if constexpr (sizeof(T) == 4) {
        return launch_layout<T, Layout<2, 4, 2>, U>(v, kty, k2, coeffs, out, planes, channels,
                                                    freqs_per_plane, k2_batch_stride, stream);
      }
      break;  // never chosen for double
    case Path::kOneFreq:
      return launch_layout<T, Layout<1, 2, 1>, U>(v, kty, k2, coeffs, out, planes, channels,
                                                  freqs_per_plane, k2_batch_stride, stream);
    case Path::kScalar:
      break;
  }
  return launch_layout<T, Layout<1, 1, 1>, U>(v, kty, k2, coeffs, out, planes, channels,
                                              freqs_per_plane, k2_batch_stride, stream);
}

}  // namespace pnpfast::detail

#endif  // __CUDACC__
