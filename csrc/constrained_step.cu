// pnpfast CUDA kernels of the implicit-prior sampler's step after its denoiser call.
//
//   d_b   = x_hat_b - y_b - P x_hat_b + lifted_b       (no constraint: d_b = x_hat_b - y_b)
//   out_b = y_b + h_b d_b + c_b sigma_b z_b,   sigma_b = ||d_b|| / sqrt(N),   z_b ~ N(0, I)
//
// sigma_b needs all of d_b before any noise is added, hence two passes.
//
// Pass 1 reads x_hat, y, lifted (and the mask or the given P x_hat) once, writes y + h d, and
// each block writes its share of ||d_b||^2 to partial[b, block], which the caller sums over the
// blocks (deterministic: no atomics, a fixed reduction order; sums in the input dtype). Two
// kernels:
//   flat_step_kernel        no constraint, a mask (P v = mask * v, the mask plane shared by the
//                           channels) or a given P x_hat: elementwise, 16-byte vectors when
//                           every image (and the mask plane) starts 16-byte aligned.
//   block_mean_step_kernel  P v = the mean of each s x s block (s = 2, 4, 8): a group of
//                           s * s / c consecutive threads (2, 4 or 16 lanes of a warp) owns
//                           one block, each thread a chunk of c = min(s, 4) consecutive
//                           elements of one of its rows (vector loads when aligned); the chunk
//                           sums are combined by shuffles within the group, so the mean never
//                           leaves registers. Consecutive groups take consecutive blocks along
//                           a block row, so a warp reads whole 32-byte sectors of s rows.
// Pass 2 (noise_kernel) adds c_b sigma_b z in place. z is drawn in the kernel: one
// Philox4x32-10 call (counter = (group of four elements, image), key = the 64-bit seed) gives
// four uint32, turned into four normals by two Box-Muller transforms (in float, also for
// double output). Images with c_b sigma_b == 0 (stopped ones) are skipped.
//
// pnpfast/ops/constrained_step.py holds the readable torch reference these kernels must match
// (the noise only in distribution); shapes and the launchers' contract are in
// constrained_step.h.

#include "common.h"
#include "constrained_step.h"

namespace pnpfast {
namespace {

using detail::Access;
using detail::kMinBlocksPerSm;
using detail::kThreads;
using detail::kWarps;

// The block-mean kernel's scalar fallback (unaligned views only) keeps twelve separately
// loaded values per thread and does not fit the 32 registers of full occupancy in float: it
// asks for 6 resident blocks (40 registers) instead.
template <typename T, int A>
constexpr int kBlockMeanMinBlocksPerSm =
    sizeof(T) == 4 && A == 1 ? 1536 / kThreads : kMinBlocksPerSm<T>;

// How pass 1 gets P x_hat.
enum class Form { kNone, kMask, kBlockMean, kProjected };

// Pass 1 without the block mean. Block (x, y) handles images y, y + gridDim.y, ...; in each
// image its threads take steps blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x *
// blockDim.x, one step being W consecutive elements (W > 1 only when every image and, for
// kMask, every mask plane starts 16-byte aligned). gridDim.x is the number of partial slots per
// image. aux is the mask ([mask rows, plane_elems], image b uses row b / mask_group) or the
// given P x_hat; lifted and aux are not read for kNone.
template <typename T, int W, Form F>
__global__ void __launch_bounds__(kThreads, detail::kSpillFreeMinBlocks<kMinBlocksPerSm<T>>)
    flat_step_kernel(const T* __restrict__ den, const T* __restrict__ y,
                     const T* __restrict__ lifted, const T* __restrict__ aux,
                     const T* __restrict__ h, T* __restrict__ out, T* __restrict__ partial,
                     int64_t images, int64_t steps, int64_t plane_elems, int64_t mask_group) {
  static_assert(F != Form::kBlockMean, "the block mean has its own kernel");
  __shared__ T shared[1][kWarps];
  auto [first, stride, base, base_stride] = detail::grid_walk(steps * W);
  // kMask: offset in the mask plane of the thread's first step, and its advance per step (both
  // < plane_elems; carried with one conditional subtraction instead of a 64-bit modulo per step).
  int64_t pos_first = 0;
  int64_t pos_step = 0;
  if constexpr (F == Form::kMask) {
    pos_first = (first * W) % plane_elems;
    pos_step = (stride * W) % plane_elems;
  }
  for (int64_t b = blockIdx.y; b < images; b += gridDim.y, base += base_stride) {
    const T hb = __ldg(h + b);  // uniform over the block
    const T* __restrict__ mask_plane = aux;
    if constexpr (F == Form::kMask) mask_plane = aux + (b / mask_group) * plane_elems;
    int64_t pos = pos_first;
    T sumsq = 0;
#pragma unroll 1
    for (int64_t i = first; i < steps; i += stride) {
      const int64_t e = base + i * W;
      T xx[W];
      T yy[W];
      T ll[W];
      T pp[W];
      Access<T, W>::load(den + e, xx);
      Access<T, W>::load(y + e, yy);
      if constexpr (F != Form::kNone) Access<T, W>::load(lifted + e, ll);
      if constexpr (F == Form::kMask) Access<T, W>::load(mask_plane + pos, pp);
      if constexpr (F == Form::kProjected) Access<T, W>::load(aux + e, pp);
#pragma unroll
      for (int k = 0; k < W; ++k) {
        T d = xx[k] - yy[k];
        if constexpr (F == Form::kMask) d = (d + ll[k]) - pp[k] * xx[k];
        if constexpr (F == Form::kProjected) d = (d + ll[k]) - pp[k];
        sumsq += d * d;
        yy[k] = yy[k] + hb * d;  // the output reuses y's registers
      }
      Access<T, W>::store(out + e, yy);
      if constexpr (F == Form::kMask) {
        pos += pos_step;
        if (pos >= plane_elems) pos -= plane_elems;
      }
    }
    T sums[1] = {sumsq};
    detail::block_sums(sums, shared, partial + b * gridDim.x + blockIdx.x);
  }
}

// How the threads of block_mean_step_kernel walk an image, computed on the host (kernel
// parameters live in constant memory, not in registers): at each grid-stride step of
// gridDim.x * blockDim.x chunks a thread moves on by that / G blocks, that is by q_step block
// columns and off_step elements; when its block column then reaches blocks_per_row it carries
// into the next block row: the column drops by blocks_per_row and the offset gains
// wrap = (S - 1) * width (S rows down, one block row of columns back). Block columns are
// 32-bit (blocks_per_row < 2**31, so a column plus q_step never wraps around).
struct BlockWalk {
  uint32_t blocks_per_row;
  uint32_t q_step;
  int64_t off_step;
  int64_t wrap;
};

// Pass 1 with P v = the mean of each S x S block. An image is viewed as channels * height rows
// of `width` elements: block k of an image lies at block row k / blocks_per_row, block column
// k % blocks_per_row (blocks never straddle channel planes, as S divides height). Each thread
// holds a chunk of C = min(S, 4) consecutive elements of one row of a block, and a group of
// G = S * S / C consecutive threads (2, 4 or 16 lanes of one warp) holds a whole block: thread
// j of the group its row j / (S / C), chunk j % (S / C); consecutive groups take consecutive
// blocks along a block row, so a warp reads whole 32-byte sectors of S rows. Threads take
// chunks blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x * blockDim.x (chunk u: block
// u / G, place u % G); blockDim.x and the grid stride are multiples of G, so the threads of a
// group stay together and leave the loop together. Each reads its chunk A elements per access
// (A = min(C, 16 bytes); 1 when the pointers are not aligned).
template <typename T, int S, int A>
__global__ void __launch_bounds__(kThreads, kBlockMeanMinBlocksPerSm<T, A>)
    block_mean_step_kernel(const T* __restrict__ den, const T* __restrict__ y,
                           const T* __restrict__ lifted, const T* __restrict__ h,
                           T* __restrict__ out, T* __restrict__ partial, int64_t images,
                           int64_t image_elems, int64_t width, BlockWalk walk) {
  constexpr int C = S < 4 ? S : 4;
  constexpr int kChunksPerRow = S / C;
  constexpr int G = S * kChunksPerRow;
  static_assert(S == 2 || S == 4 || S == 8, "block sizes 2, 4, 8");
  static_assert(G <= 16 && kThreads % G == 0 && C % A == 0, "a group within a warp");
  __shared__ T shared[1][kWarps];
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int j = threadIdx.x % G;  // this thread's place in its group
  const int lane = threadIdx.x % 32;
  const unsigned group = ((1u << G) - 1u) << (lane - j);  // the lanes of the group
  for (int64_t b = blockIdx.y; b < images; b += gridDim.y) {
    const T hb = __ldg(h + b);  // uniform over the block
    // Block column and offset (in the batch) of the thread's first chunk. Recomputed per image
    // rather than kept in registers: a block handles more than one image only past 65535.
    const int64_t k_first = first / G;
    uint32_t q = static_cast<uint32_t>(k_first % walk.blocks_per_row);
    const int64_t start = b * image_elems;
    const int64_t end = start + image_elems;
    int64_t e = start + ((k_first / walk.blocks_per_row) * S + j / kChunksPerRow) * width +
                static_cast<int64_t>(q) * S + (j % kChunksPerRow) * C;
    T sumsq = 0;
    // The offset of the thread's chunk grows with its block index, and passes the end of the
    // image exactly when the block index passes the image's last block (block row
    // channels * height / S starts at offset image_elems): the loop runs on the offset alone.
#pragma unroll 1
    while (e < end) {
      T xx[C];
#pragma unroll
      for (int a = 0; a < C; a += A) Access<T, A>::load(den + e + a, xx + a);
      // The block's sum: the chunk's, then the group's by a butterfly. The two lanes of each
      // exchange add the same two values, so all G lanes end with bitwise the same sum.
      T sum = xx[0];
#pragma unroll
      for (int k = 1; k < C; ++k) sum += xx[k];
#pragma unroll
      for (int offset = G / 2; offset > 0; offset >>= 1) {
        sum += __shfl_xor_sync(group, sum, offset);
      }
      const T mean = sum * (T(1) / T(S * S));  // exact: S * S is a power of two
      T yy[C];
      T ll[C];
#pragma unroll
      for (int a = 0; a < C; a += A) {
        Access<T, A>::load(y + e + a, yy + a);
        Access<T, A>::load(lifted + e + a, ll + a);
      }
#pragma unroll
      for (int k = 0; k < C; ++k) {
        const T d = ((xx[k] - yy[k]) + ll[k]) - mean;
        sumsq += d * d;
        yy[k] = yy[k] + hb * d;  // the output reuses y's registers
      }
#pragma unroll
      for (int a = 0; a < C; a += A) Access<T, A>::store(out + e + a, yy + a);
      q += walk.q_step;
      e += walk.off_step;
      if (q >= walk.blocks_per_row) {
        q -= walk.blocks_per_row;
        e += walk.wrap;
      }
    }
    T sums[1] = {sumsq};
    detail::block_sums(sums, shared, partial + b * gridDim.x + blockIdx.x);
  }
}

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): ten
// rounds of two 32 x 32 -> 64-bit products, the key bumped by the Weyl constants between
// rounds.
__device__ __forceinline__ uint4 philox4x32_10(uint4 ctr, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u;
  constexpr uint32_t kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += kWeyl0;
      key1 += kWeyl1;
    }
    const uint32_t hi0 = __umulhi(kMul0, ctr.x);
    const uint32_t lo0 = kMul0 * ctr.x;
    const uint32_t hi1 = __umulhi(kMul1, ctr.z);
    const uint32_t lo1 = kMul1 * ctr.z;
    ctr = make_uint4(hi1 ^ ctr.y ^ key0, lo1, hi0 ^ ctr.w ^ key1, lo0);
  }
  return ctr;
}

// Two independent standard normals from two uniform uint32 (Box-Muller): radius from
// u = (a + 1/2) 2**-32, in (0, 1] (never 0, so the log is finite), angle 2 pi b 2**-32.
__device__ __forceinline__ void box_muller(uint32_t a, uint32_t b, float* z) {
  const float u = fmaf(static_cast<float>(a), 0x1p-32f, 0x1p-33f);
  const float radius = sqrtf(-2.0f * logf(u));
  float s;
  float c;
  sincospif(static_cast<float>(b) * 0x1p-31f, &s, &c);  // sin, cos of 2 pi b / 2**32
  z[0] = radius * c;
  z[1] = radius * s;
}

// Pass 2. Block (x, y) handles images y, y + gridDim.y, ...; in each image its threads take
// groups of four consecutive elements blockIdx.x * blockDim.x + threadIdx.x + k * gridDim.x *
// blockDim.x, each drawing its four normals from Philox counter (group, image). Vec: every
// image holds whole groups and starts 16-byte aligned (one float4 or two double2 per group);
// otherwise scalar accesses, the image's last group cut at elems.
template <typename T, bool Vec>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm<T>)
    noise_kernel(T* __restrict__ out, const T* __restrict__ sigma, const T* __restrict__ c,
                 int64_t images, int64_t elems, int64_t groups, uint32_t key0, uint32_t key1) {
  constexpr int kVec = detail::kVec<T>;
  auto [first, stride, base, base_stride] = detail::grid_walk(elems);
  for (int64_t b = blockIdx.y; b < images; b += gridDim.y, base += base_stride) {
    const T scale = __ldg(c + b) * __ldg(sigma + b);  // uniform over the block
    if (scale == T(0)) continue;  // a stopped image: out + 0 z is out
    const auto image_lo = static_cast<uint32_t>(b);
    const auto image_hi = static_cast<uint32_t>(static_cast<uint64_t>(b) >> 32);
#pragma unroll 1
    for (int64_t g = first; g < groups; g += stride) {
      const auto group_lo = static_cast<uint32_t>(g);
      const auto group_hi = static_cast<uint32_t>(static_cast<uint64_t>(g) >> 32);
      const uint4 bits =
          philox4x32_10(make_uint4(group_lo, group_hi, image_lo, image_hi), key0, key1);
      float z[4];
      box_muller(bits.x, bits.y, z);
      box_muller(bits.z, bits.w, z + 2);
      const int64_t e = base + 4 * g;
      if constexpr (Vec) {
        T oo[4];
#pragma unroll
        for (int a = 0; a < 4; a += kVec) Access<T, kVec>::load(out + e + a, oo + a);
#pragma unroll
        for (int k = 0; k < 4; ++k) oo[k] = oo[k] + scale * static_cast<T>(z[k]);
#pragma unroll
        for (int a = 0; a < 4; a += kVec) Access<T, kVec>::store(out + e + a, oo + a);
      } else {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if (4 * g + k < elems) out[e + k] = out[e + k] + scale * static_cast<T>(z[k]);
        }
      }
    }
  }
}

template <typename T, int W, Form F>
cudaError_t launch_flat_width(const T* den, const T* y, const T* lifted, const T* aux,
                              const T* h, T* out, T* partial, int64_t images,
                              int64_t elems_per_image, int64_t plane_elems, int64_t mask_group,
                              int64_t blocks_per_image, cudaStream_t stream) {
  const dim3 grid = detail::image_grid(images, blocks_per_image);
  flat_step_kernel<T, W, F><<<grid, kThreads, 0, stream>>>(
      den, y, lifted, aux, h, out, partial, images, elems_per_image / W, plane_elems,
      mask_group);
  return cudaGetLastError();
}

// 16-byte vectors (float4, double2) when every image (and, for a mask, every mask plane)
// starts 16-byte aligned, else scalars.
template <typename T, Form F>
cudaError_t launch_flat(const T* den, const T* y, const T* lifted, const T* aux, const T* h,
                        T* out, T* partial, int64_t images, int64_t elems_per_image,
                        int64_t plane_elems, int64_t mask_group, int64_t blocks_per_image,
                        cudaStream_t stream) {
  // lifted and aux are null for kNone; for kMask every mask plane must start aligned as well
  const bool vector = detail::vectorizable<T>(elems_per_image, {den, y, out, lifted, aux}) &&
                      (F != Form::kMask || plane_elems % detail::kVec<T> == 0);
  if (vector) {
    return launch_flat_width<T, detail::kVec<T>, F>(den, y, lifted, aux, h, out, partial,
                                                    images, elems_per_image, plane_elems,
                                                    mask_group, blocks_per_image, stream);
  }
  return launch_flat_width<T, 1, F>(den, y, lifted, aux, h, out, partial, images,
                                    elems_per_image, plane_elems, mask_group, blocks_per_image,
                                    stream);
}

template <typename T, int S, int A>
cudaError_t launch_block_width(const T* den, const T* y, const T* lifted, const T* h, T* out,
                               T* partial, int64_t images, int64_t elems_per_image,
                               int64_t width, int64_t blocks_per_image, cudaStream_t stream) {
  constexpr int C = S < 4 ? S : 4;  // as in block_mean_step_kernel
  constexpr int G = S * S / C;
  const int64_t blocks_per_row = width / S;  // < 2**31, checked by launch_constrained_step
  const int64_t blocks_step = blocks_per_image * kThreads / G;
  const int64_t q_step = blocks_step % blocks_per_row;
  const BlockWalk walk{static_cast<uint32_t>(blocks_per_row), static_cast<uint32_t>(q_step),
                       (blocks_step / blocks_per_row) * S * width + q_step * S,
                       (S - 1) * width};
  const dim3 grid = detail::image_grid(images, blocks_per_image);
  block_mean_step_kernel<T, S, A><<<grid, kThreads, 0, stream>>>(
      den, y, lifted, h, out, partial, images, elems_per_image, width, walk);
  return cudaGetLastError();
}

// Chunks read 16 bytes (or a whole chunk of S = 2 floats) per access when every image starts
// that aligned (chunks start at multiples of their size, since S divides width and S * S the
// image size), else one element per access.
template <typename T, int S>
cudaError_t launch_block(const T* den, const T* y, const T* lifted, const T* h, T* out,
                         T* partial, int64_t images, int64_t elems_per_image, int64_t width,
                         int64_t blocks_per_image, cudaStream_t stream) {
  constexpr int C = S < 4 ? S : 4;  // as in block_mean_step_kernel
  constexpr int kVec = detail::kVec<T>;
  constexpr int kAccess = kVec < C ? kVec : C;
  constexpr std::size_t kBytes = kAccess * sizeof(T);
  if (detail::aligned(den, kBytes) && detail::aligned(y, kBytes) &&
      detail::aligned(lifted, kBytes) && detail::aligned(out, kBytes)) {
    return launch_block_width<T, S, kAccess>(den, y, lifted, h, out, partial, images,
                                             elems_per_image, width, blocks_per_image, stream);
  }
  return launch_block_width<T, S, 1>(den, y, lifted, h, out, partial, images, elems_per_image,
                                     width, blocks_per_image, stream);
}

}  // namespace

template <typename T>
cudaError_t launch_constrained_step(const T* den, const T* y, const T* lifted, const T* mask,
                                    int64_t mask_images, int64_t factor, const T* projected,
                                    const T* h, T* out, T* partial, int64_t images,
                                    int64_t channels, int64_t height, int64_t width,
                                    int64_t blocks_per_image, cudaStream_t stream) {
  if (images <= 0) return cudaSuccess;
  if (!detail::valid_blocks_per_image(blocks_per_image) || channels < 0 || height < 0 ||
      width < 0) {
    return cudaErrorInvalidValue;
  }
  const int forms = (mask != nullptr) + (factor != 0) + (projected != nullptr);
  if (lifted == nullptr ? forms != 0 : forms != 1) return cudaErrorInvalidValue;
  if (mask != nullptr && (mask_images < 1 || images % mask_images != 0)) {
    return cudaErrorInvalidValue;
  }
  if (factor != 0 && ((factor != 2 && factor != 4 && factor != 8) || height % factor != 0 ||
                      width % factor != 0 || width / factor > 0x7fffffff)) {
    return cudaErrorInvalidValue;
  }
  const int64_t plane_elems = height * width;
  const int64_t elems = channels * plane_elems;
  if (lifted == nullptr || elems == 0) {
    // An empty image reads nothing: the plain kernel writes its zero sums whatever the form.
    return launch_flat<T, Form::kNone>(den, y, nullptr, nullptr, h, out, partial, images, elems,
                                       plane_elems, 1, blocks_per_image, stream);
  }
  if (mask != nullptr) {
    return launch_flat<T, Form::kMask>(den, y, lifted, mask, h, out, partial, images, elems,
                                       plane_elems, images / mask_images, blocks_per_image,
                                       stream);
  }
  if (projected != nullptr) {
    return launch_flat<T, Form::kProjected>(den, y, lifted, projected, h, out, partial, images,
                                            elems, plane_elems, 1, blocks_per_image, stream);
  }
  switch (factor) {
    case 2:
      return launch_block<T, 2>(den, y, lifted, h, out, partial, images, elems, width,
                                blocks_per_image, stream);
    case 4:
      return launch_block<T, 4>(den, y, lifted, h, out, partial, images, elems, width,
                                blocks_per_image, stream);
    default:
      return launch_block<T, 8>(den, y, lifted, h, out, partial, images, elems, width,
                                blocks_per_image, stream);
  }
}

template <typename T>
cudaError_t launch_constrained_step_noise(T* out, const T* sigma, const T* c, int64_t images,
                                          int64_t elems_per_image, int64_t seed,
                                          cudaStream_t stream) {
  if (seed < 0 || elems_per_image < 0) return cudaErrorInvalidValue;
  if (images <= 0 || elems_per_image == 0) return cudaSuccess;
  const int64_t groups = (elems_per_image + 3) / 4;
  dim3 grid;  // images along y (at most 65535, the kernel loops over the rest), groups along x
  const cudaError_t err = detail::wave_grid(images, groups, &grid);
  if (err != cudaSuccess) return err;
  const auto key0 = static_cast<uint32_t>(static_cast<uint64_t>(seed));
  const auto key1 = static_cast<uint32_t>(static_cast<uint64_t>(seed) >> 32);
  if (elems_per_image % 4 == 0 && detail::aligned(out, 16)) {
    noise_kernel<T, true><<<grid, kThreads, 0, stream>>>(out, sigma, c, images, elems_per_image,
                                                          groups, key0, key1);
  } else {
    noise_kernel<T, false><<<grid, kThreads, 0, stream>>>(out, sigma, c, images,
                                                           elems_per_image, groups, key0, key1);
  }
  return cudaGetLastError();
}

template cudaError_t launch_constrained_step<float>(const float*, const float*, const float*,
                                                    const float*, int64_t, int64_t, const float*,
                                                    const float*, float*, float*, int64_t,
                                                    int64_t, int64_t, int64_t, int64_t,
                                                    cudaStream_t);
template cudaError_t launch_constrained_step<double>(const double*, const double*,
                                                     const double*, const double*, int64_t,
                                                     int64_t, const double*, const double*,
                                                     double*, double*, int64_t, int64_t, int64_t,
                                                     int64_t, int64_t, cudaStream_t);
template cudaError_t launch_constrained_step_noise<float>(float*, const float*, const float*,
                                                          int64_t, int64_t, int64_t,
                                                          cudaStream_t);
template cudaError_t launch_constrained_step_noise<double>(double*, const double*,
                                                           const double*, int64_t, int64_t,
                                                           int64_t, cudaStream_t);

}  // namespace pnpfast
