// pnpfast CUDA kernel of the super-resolution prox's spectral step (Zhao et al., IEEE TIP 2016).
//
//   R^ = V^ + gamma_b kty
//   X^ = R^ - conj(K^) spread(gamma_b mean_s(K^ R^) / (1 + gamma_b k2_mean))
//
// on the interleaved (re, im) float view of full fft2 spectra. Each thread owns one
// low-resolution frequency f = (u, v) of one image plane: it gathers the s^2 aliases
// (u + p h, v + q w) of V^, kty and K^ (one complex number per load), forms R^ and the mean of
// K^ R^ over them, divides once, and writes X^ at the same s^2 places from the registers it
// loaded, so every input is read once and the output written once. For a fixed alias the
// threads of a warp take consecutive frequencies of a row, so each of the s^2 gathers is a
// coalesced read of up to 32 consecutive complex numbers.
//
// Shapes and the launcher's contract are in sr_prox.h; pnpfast/ops/sr_prox.py holds the readable
// torch reference (sr_prox_reference) this kernel must match.

#include "common.h"
#include "sr_prox.h"

namespace pnpfast {
namespace {

using detail::Access;
using detail::kThreads;

// Resident blocks of kThreads per SM asked of ptxas (__launch_bounds__). A thread keeps R^ and
// K^ of its s^2 aliases in registers (4 s^2 values of T: 64 registers at s = 4 in float, 128 in
// double) and issues its 3 s^2 gathers before reducing, so the register need grows with s^2.
// Each count is the largest that ptxas of CUDA 13.0 fits without spilling, for sm_80 and sm_90
// and both access widths (registers per thread: 8 blocks -> 32, 6 -> 40, 4 -> 64, 3 -> 80,
// 2 -> 128, 1 -> 255; below 8, the next count up spills). The lower occupancy at large s is
// offset by the 3 s^2 independent loads each thread keeps in flight.
template <typename T, int S>
constexpr int sr_min_blocks() {
  constexpr int kFloat[4] = {8, 6, 4, 2};
  constexpr int kDouble[4] = {6, 3, 2, 1};
  return sizeof(T) == 4 ? kFloat[S - 1] : kDouble[S - 1];
}

// The two elements (re, im) of one complex number at p, with D elements per access (2: one
// float2 / double2, p aligned to a complex number; 1: two scalar accesses, any p).
template <typename T, int D>
__device__ __forceinline__ void load_complex(const T* p, T* r) {
#pragma unroll
  for (int a = 0; a < 2; a += D) Access<T, D>::load(p + a, r + a);
}

template <typename T, int D>
__device__ __forceinline__ void load_complex_ro(const T* p, T* r) {
#pragma unroll
  for (int a = 0; a < 2; a += D) Access<T, D>::load_ro(p + a, r + a);
}

template <typename T, int D>
__device__ __forceinline__ void store_complex(T* p, const T* r) {
#pragma unroll
  for (int a = 0; a < 2; a += D) Access<T, D>::store(p + a, r + a);
}

// Block (x, y) handles planes y, y + gridDim.y, ...; in each plane its threads take the
// low-resolution frequencies i = blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x *
// blockDim.x, i < h * w, f = (i / w, i % w). All offsets are int64: 2 H W elements per plane
// times B C planes overflow 32 bits at sizes a batch of large images reaches.
template <typename T, int S, int D>
__global__ void __launch_bounds__(kThreads, sr_min_blocks<T, S>())
    sr_prox_kernel(const T* __restrict__ v, const T* __restrict__ kty, const T* __restrict__ k,
                   const T* __restrict__ k2_mean, const T* __restrict__ gamma,
                   T* __restrict__ out, int64_t planes, int64_t channels, int64_t width,
                   int64_t h, int64_t w, int64_t k_batch_stride,
                   int64_t k2_mean_batch_stride) {
  constexpr int kAliases = S * S;
  const int64_t steps = h * w;
  const int64_t row_step = 2 * h * width;  // elements from alias row p to p + 1
  const int64_t col_step = 2 * w;          // elements from alias column q to q + 1
  auto [first, stride, base, base_stride] = detail::grid_walk(S * row_step);
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y, base += base_stride) {
    // Per plane, uniform over the block: the image, its gamma and its kernel planes.
    const int64_t b = plane / channels;
    const T g = __ldg(gamma + b);
    const T* __restrict__ k_plane = k + b * k_batch_stride;
    const T* __restrict__ k2m_plane = k2_mean + b * k2_mean_batch_stride;
    const T* __restrict__ v_plane = v + base;
    const T* __restrict__ kty_plane = kty + base;
    T* __restrict__ out_plane = out + base;
    for (int64_t i = first; i < steps; i += stride) {
      const int64_t u = i / w;
      const int64_t e0 = 2 * (u * width + (i - u * w));  // alias (0, 0)
      T rr[kAliases][2];
      T kk[kAliases][2];
      T tr = T(0);
      T ti = T(0);
#pragma unroll
      for (int a = 0; a < kAliases; ++a) {
        const int64_t e = e0 + (a / S) * row_step + (a % S) * col_step;
        T vv[2];
        T yy[2];
        load_complex<T, D>(v_plane + e, vv);
        load_complex<T, D>(kty_plane + e, yy);
        load_complex_ro<T, D>(k_plane + e, kk[a]);
        rr[a][0] = vv[0] + g * yy[0];
        rr[a][1] = vv[1] + g * yy[1];
        tr += kk[a][0] * rr[a][0] - kk[a][1] * rr[a][1];
        ti += kk[a][0] * rr[a][1] + kk[a][1] * rr[a][0];
      }
      // Q = gamma mean(K^ R^) / (1 + gamma k2_mean), in the reference's order of operations
      const T c = g / (T(1) + g * __ldg(k2m_plane + i));
      const T qr = tr / T(kAliases) * c;
      const T qi = ti / T(kAliases) * c;
#pragma unroll
      for (int a = 0; a < kAliases; ++a) {
        const int64_t e = e0 + (a / S) * row_step + (a % S) * col_step;
        T xx[2];
        xx[0] = rr[a][0] - (kk[a][0] * qr + kk[a][1] * qi);
        xx[1] = rr[a][1] - (kk[a][0] * qi - kk[a][1] * qr);
        store_complex<T, D>(out_plane + e, xx);
      }
    }
  }
}

template <typename T, int S, int D>
cudaError_t launch_factor(const T* v, const T* kty, const T* k, const T* k2_mean,
                          const T* gamma, T* out, int64_t planes, int64_t channels,
                          int64_t width, int64_t h, int64_t w, int64_t k_batch_stride,
                          int64_t k2_mean_batch_stride, cudaStream_t stream) {
  dim3 grid;
  const cudaError_t err = detail::wave_grid(planes, h * w, &grid);
  if (err != cudaSuccess) return err;
  sr_prox_kernel<T, S, D><<<grid, kThreads, 0, stream>>>(v, kty, k, k2_mean, gamma, out, planes,
                                                         channels, width, h, w, k_batch_stride,
                                                         k2_mean_batch_stride);
  return cudaGetLastError();
}

// The kernel of factor S on the widest access the pointers allow.
template <typename T, int S>
cudaError_t launch_access(const T* v, const T* kty, const T* k, const T* k2_mean,
                          const T* gamma, T* out, int64_t planes, int64_t channels,
                          int64_t width, int64_t h, int64_t w, int64_t k_batch_stride,
                          int64_t k2_mean_batch_stride, cudaStream_t stream) {
  // every offset is a multiple of 2 elements, so aligned bases keep every access aligned
  const std::size_t complex_bytes = 2 * sizeof(T);
  if (detail::aligned(v, complex_bytes) && detail::aligned(kty, complex_bytes) &&
      detail::aligned(k, complex_bytes) && detail::aligned(out, complex_bytes)) {
    return launch_factor<T, S, 2>(v, kty, k, k2_mean, gamma, out, planes, channels, width, h, w,
                                  k_batch_stride, k2_mean_batch_stride, stream);
  }
  return launch_factor<T, S, 1>(v, kty, k, k2_mean, gamma, out, planes, channels, width, h, w,
                                k_batch_stride, k2_mean_batch_stride, stream);
}

}  // namespace

template <typename T>
cudaError_t launch_sr_prox(const T* v, const T* kty, const T* k, const T* k2_mean,
                           const T* gamma, T* out, int64_t planes, int64_t channels,
                           int64_t height, int64_t width, int64_t factor, int64_t k_batch_stride,
                           int64_t k2_mean_batch_stride, cudaStream_t stream) {
  if (factor < 1 || factor > kSrProxMaxFactor || height % factor != 0 || width % factor != 0) {
    return cudaErrorInvalidValue;
  }
  if (planes <= 0 || channels <= 0 || height <= 0 || width <= 0) return cudaSuccess;
  const int64_t h = height / factor;
  const int64_t w = width / factor;
  switch (factor) {
    case 1:
      return launch_access<T, 1>(v, kty, k, k2_mean, gamma, out, planes, channels, width, h, w,
                                 k_batch_stride, k2_mean_batch_stride, stream);
    case 2:
      return launch_access<T, 2>(v, kty, k, k2_mean, gamma, out, planes, channels, width, h, w,
                                 k_batch_stride, k2_mean_batch_stride, stream);
    case 3:
      return launch_access<T, 3>(v, kty, k, k2_mean, gamma, out, planes, channels, width, h, w,
                                 k_batch_stride, k2_mean_batch_stride, stream);
    default:
      return launch_access<T, 4>(v, kty, k, k2_mean, gamma, out, planes, channels, width, h, w,
                                 k_batch_stride, k2_mean_batch_stride, stream);
  }
}

template cudaError_t launch_sr_prox<float>(const float*, const float*, const float*,
                                           const float*, const float*, float*, int64_t, int64_t,
                                           int64_t, int64_t, int64_t, int64_t, int64_t,
                                           cudaStream_t);
template cudaError_t launch_sr_prox<double>(const double*, const double*, const double*,
                                            const double*, const double*, double*, int64_t,
                                            int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                            cudaStream_t);

}  // namespace pnpfast
