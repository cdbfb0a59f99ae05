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
// ops share: the vector load/store helpers, the one spectral kernel (spectral_kernel) and its
// launcher (launch_spectral), which picks the memory path and the grid. Each .cu file only
// adds the per-frequency arithmetic of its op, as an update functor (see spectral_kernel).

#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace pnpfast {

// out = (v + gamma_b * kty) / (1 + gamma_b * k2[f])
cudaError_t launch_fft_prox(const float* v, const float* kty, const float* k2, const float* gamma,
                            float* out, int64_t planes, int64_t channels,
                            int64_t freqs_per_plane, int64_t k2_batch_stride,
                            cudaStream_t stream);
cudaError_t launch_fft_prox(const double* v, const double* kty, const double* k2,
                            const double* gamma, double* out, int64_t planes, int64_t channels,
                            int64_t freqs_per_plane, int64_t k2_batch_stride,
                            cudaStream_t stream);

// out = (s_b * k2[f] + t_b) * v - s_b * kty
cudaError_t launch_fft_grad(const float* v, const float* kty, const float* k2, const float* s,
                            const float* t, float* out, int64_t planes, int64_t channels,
                            int64_t freqs_per_plane, int64_t k2_batch_stride,
                            cudaStream_t stream);
cudaError_t launch_fft_grad(const double* v, const double* kty, const double* k2,
                            const double* s, const double* t, double* out, int64_t planes,
                            int64_t channels, int64_t freqs_per_plane, int64_t k2_batch_stride,
                            cudaStream_t stream);

}  // namespace pnpfast

#if defined(__CUDACC__)

namespace pnpfast::detail {

// Threads per block of the spectral kernels; at most 65535 blocks along y (planes).
constexpr int kThreads = 256;
// Resident blocks per SM asked of ptxas (__launch_bounds__): 8 x 256 threads fill an sm_80 or
// sm_90 SM, which caps the kernels at 32 registers; they need no more (no spills).
constexpr int kMinBlocksPerSm = 2048 / kThreads;
constexpr int64_t kMaxGridY = 65535;

// Loads and stores of `W` consecutive elements of type T as one memory instruction. `p` must be
// aligned to W * sizeof(T); the elements go to / come from r[0 .. W-1] (registers after
// inlining, since every index is a compile-time constant). Vector stores go through __stwb (a
// plain write-back store) because nvcc may split an assignment of a whole float4 into four
// scalar stores.
template <typename T, int W>
struct Access;

template <typename T>
struct Access<T, 1> {
  static __device__ __forceinline__ void load(const T* p, T* r) { r[0] = *p; }
  static __device__ __forceinline__ void load_ro(const T* p, T* r) { r[0] = __ldg(p); }
  static __device__ __forceinline__ void store(T* p, const T* r) { *p = r[0]; }
};

template <>
struct Access<float, 2> {
  static __device__ __forceinline__ void load(const float* p, float* r) {
    const float2 x = *reinterpret_cast<const float2*>(p);
    r[0] = x.x;
    r[1] = x.y;
  }
  static __device__ __forceinline__ void load_ro(const float* p, float* r) {
    const float2 x = __ldg(reinterpret_cast<const float2*>(p));
    r[0] = x.x;
    r[1] = x.y;
  }
  static __device__ __forceinline__ void store(float* p, const float* r) {
    __stwb(reinterpret_cast<float2*>(p), make_float2(r[0], r[1]));
  }
};

template <>
struct Access<float, 4> {
  static __device__ __forceinline__ void load(const float* p, float* r) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    r[0] = x.x;
    r[1] = x.y;
    r[2] = x.z;
    r[3] = x.w;
  }
  static __device__ __forceinline__ void store(float* p, const float* r) {
    __stwb(reinterpret_cast<float4*>(p), make_float4(r[0], r[1], r[2], r[3]));
  }
};

template <>
struct Access<double, 2> {
  static __device__ __forceinline__ void load(const double* p, double* r) {
    const double2 x = *reinterpret_cast<const double2*>(p);
    r[0] = x.x;
    r[1] = x.y;
  }
  static __device__ __forceinline__ void store(double* p, const double* r) {
    __stwb(reinterpret_cast<double2*>(p), make_double2(r[0], r[1]));
  }
};

inline bool aligned(const void* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

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

// Grid of a spectral launch: y walks the planes (the kernels loop with stride gridDim.y when
// there are more than kMaxGridY), x the steps of one plane, capped so that the whole grid is
// a few waves of resident blocks; the kernels loop over the rest of a plane with stride
// gridDim.x * blockDim.x.
inline cudaError_t spectral_grid(int64_t planes, int64_t steps_per_plane, dim3* grid) {
  int device = 0;
  int sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  const int64_t grid_y = planes < kMaxGridY ? planes : kMaxGridY;
  // four waves of fully resident blocks
  const int64_t target_blocks = static_cast<int64_t>(sms) * kMinBlocksPerSm * 4;
  const int64_t want_x = (steps_per_plane + kThreads - 1) / kThreads;
  int64_t cap_x = (target_blocks + grid_y - 1) / grid_y;
  if (cap_x < 1) cap_x = 1;
  const int64_t grid_x = want_x < cap_x ? want_x : cap_x;
  *grid = dim3(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y), 1);
  return cudaSuccess;
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
template <typename T, typename L, typename U>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    spectral_kernel(const T* __restrict__ v, const T* __restrict__ kty,
                    const T* __restrict__ k2, const typename U::Coeffs coeffs,
                    T* __restrict__ out, int64_t planes, int64_t channels, int64_t steps,
                    int64_t k2_batch_stride) {
  constexpr int kElems = 2 * L::kFreqs;  // elements of v / kty / out per step
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  // Offset of the current plane in v / kty / out, carried along the plane loop: recomputing it
  // as plane * plane_elems in each iteration made nvcc 13 spill at the 32-register cap.
  const int64_t plane_elems = steps * kElems;
  const int64_t base_stride = plane_elems * gridDim.y;
  int64_t base = static_cast<int64_t>(blockIdx.y) * plane_elems;
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
  const cudaError_t err = spectral_grid(planes, steps, &grid);
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
