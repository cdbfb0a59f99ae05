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
// When compiled by nvcc this header also provides the vector load/store helpers the two
// kernels share (namespace pnpfast::detail).

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

}  // namespace pnpfast::detail

#endif  // __CUDACC__
