// What pnpfast's CUDA kernels share (csrc/*.cu, nvcc only; everything in pnpfast::detail):
// the launch shape of the streaming kernels, 16-byte vector loads and stores, deterministic
// warp and block sums, the grid-stride walk over a batch, and the host-side grid helpers.
// The host entry points of the ops (launch_<op>) are declared in <op>.h / spectral.h.

#pragma once

#if !defined(__CUDACC__)
#error "csrc/common.h is device code: include it from the .cu files (nvcc) only"
#endif

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include <cuda_runtime.h>

namespace pnpfast::detail {

// ---- launch shape -----------------------------------------------------------------------------

// Threads per block of every streaming kernel. pnpfast/ops/_alloc.py (CUDA_THREADS) sizes the
// partial-sum buffers with the same number.
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Threads an sm_80 or sm_90 SM keeps resident, and the blocks of kThreads that fill it.
constexpr int kResidentThreads = 2048;
constexpr int kFullOccupancyBlocks = kResidentThreads / kThreads;
// Grid limits: y walks images (or planes) and the kernels loop over any beyond kMaxGridY;
// x is at most 2**31 - 1 blocks.
constexpr int64_t kMaxGridY = 65535;
constexpr int64_t kMaxGridX = 0x7fffffff;

// Resident blocks per SM asked of ptxas (__launch_bounds__) by the kernels that reduce: float
// runs at full occupancy (8 x 256 threads, at most 32 registers); double needs more registers
// for its 8-byte values and runs at half occupancy, which still keeps enough 16-byte loads in
// flight to saturate memory.
template <typename T>
constexpr int kMinBlocksPerSm = sizeof(T) == 4 ? kFullOccupancyBlocks : kFullOccupancyBlocks / 2;

// Below sm_90, a few variants of three kernel families do not fit the 32 registers of full
// occupancy without spilling to local memory (ptxas of CUDA 13.0 for sm_80: pnp_update and the
// masked flat step of constrained_step in float, the fft_prox spectral step in double; 8 to 68
// bytes), while sm_90's ptxas fits them all. Those families ask for at most 6 resident blocks
// there (1536 threads, 40 registers each); sm_86 and sm_89 hold no more than 1536 threads per
// SM anyway. Only the device pass sees __CUDA_ARCH__, so the value is for __launch_bounds__ and
// never for a launch configuration. It changes register allocation, not the instructions that
// compute each value: the results are the same, and the sm_90 code is unchanged.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
constexpr int kSpillFreeBlocks = 1536 / kThreads;
#else
constexpr int kSpillFreeBlocks = kFullOccupancyBlocks;
#endif
template <int Blocks>
constexpr int kSpillFreeMinBlocks = Blocks < kSpillFreeBlocks ? Blocks : kSpillFreeBlocks;

// ---- memory access ----------------------------------------------------------------------------

// Elements of T in one 16-byte vector (float4, double2).
template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

// The CUDA vector type of W elements of T.
template <typename T, int W>
struct VectorType;
template <>
struct VectorType<float, 2> {
  using type = float2;
};
template <>
struct VectorType<float, 4> {
  using type = float4;
};
template <>
struct VectorType<double, 2> {
  using type = double2;
};

// Loads and stores of `W` consecutive elements of type T as one memory instruction. `p` must be
// aligned to W * sizeof(T); the elements go to / come from r[0 .. W-1] (registers after
// inlining, since every index is a compile-time constant). load_ro reads through the read-only
// cache (__ldg). Vector stores go through __stwb (a plain write-back store) because nvcc may
// split an assignment of a whole float4 into four scalar stores.
template <typename T, int W>
struct Access {
  using V = typename VectorType<T, W>::type;
  static_assert(sizeof(V) == W * sizeof(T), "one vector holds W elements");

  // x by value: read through a reference, nvcc splits the vector load into scalar loads
  static __device__ __forceinline__ void unpack(V x, T* r) {
    r[0] = x.x;
    r[1] = x.y;
    if constexpr (W == 4) {
      r[2] = x.z;
      r[3] = x.w;
    }
  }
  static __device__ __forceinline__ void load(const T* p, T* r) {
    const V x = *reinterpret_cast<const V*>(p);
    unpack(x, r);
  }
  static __device__ __forceinline__ void load_ro(const T* p, T* r) {
    const V x = __ldg(reinterpret_cast<const V*>(p));
    unpack(x, r);
  }
  static __device__ __forceinline__ void store(T* p, const T* r) {
    if constexpr (W == 4) {
      __stwb(reinterpret_cast<V*>(p), V{r[0], r[1], r[2], r[3]});
    } else {
      __stwb(reinterpret_cast<V*>(p), V{r[0], r[1]});
    }
  }
};

template <typename T>
struct Access<T, 1> {
  static __device__ __forceinline__ void load(const T* p, T* r) { r[0] = *p; }
  static __device__ __forceinline__ void load_ro(const T* p, T* r) { r[0] = __ldg(p); }
  static __device__ __forceinline__ void store(T* p, const T* r) { *p = r[0]; }
};

inline bool aligned(const void* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

// Whether images of `elems` elements, one after the other from each pointer, can be streamed
// with 16-byte vectors: every image starts 16-byte aligned. A null pointer (an input the launch
// does not read) does not stand in the way.
template <typename T>
inline bool vectorizable(int64_t elems, std::initializer_list<const T*> ptrs) {
  if (elems % kVec<T> != 0) return false;
  for (const T* p : ptrs) {
    if (!aligned(p, 16)) return false;
  }
  return true;
}

// ---- sums -------------------------------------------------------------------------------------

// The sum of v over the 32 lanes of a warp, in lane 0 (every lane must take part); a fixed
// shuffle order, so the sum is deterministic.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// The sums of v[0 .. N-1] over the threads of a block of Warps warps, each in a fixed order
// (warp_sum within each warp, then warp_sum of the warps' sums in warp 0), so the result is
// deterministic. The sums end in v of thread 0 (the other threads keep partial values); given a
// `slot` pointer, thread 0 also writes them to slot[0 .. N-1]. Every thread of the block must
// call it; it ends with a barrier so that `shared` may be reused at once.
template <int Warps, int N, typename T, typename Slot = std::nullptr_t>
__device__ __forceinline__ void block_sums(T (&v)[N], T (*shared)[Warps], Slot slot = nullptr) {
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = warp_sum(v[j]);
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < N; ++j) shared[j][warp] = v[j];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const T sum = warp_sum(lane < Warps ? shared[j][lane] : T(0));
      if constexpr (!std::is_same_v<Slot, std::nullptr_t>) {
        if (lane == 0) slot[j] = sum;
      }
      v[j] = sum;
    }
  }
  __syncthreads();
}

// ---- grids ------------------------------------------------------------------------------------

// The grid-stride walk of a streaming kernel over a batch of items (images or planes) of
// `item_elems` elements each: block (x, y) handles items y, y + gridDim.y, ..., whose offsets
// are base, base + base_stride, ... (carried along the item loop: recomputing item * item_elems
// per item made nvcc 13 spill at the 32-register cap); in each item its threads take steps
// first, first + stride, ... with first = blockIdx.x * blockDim.x + threadIdx.x.
struct GridWalk {
  int64_t first;
  int64_t stride;
  int64_t base;
  int64_t base_stride;
};

__device__ __forceinline__ GridWalk grid_walk(int64_t item_elems) {
  GridWalk walk;
  walk.first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  walk.stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  walk.base_stride = item_elems * gridDim.y;
  walk.base = static_cast<int64_t>(blockIdx.y) * item_elems;
  return walk;
}

// Whether a launch may have blocks_per_image blocks (partial-sum slots) per image along x.
inline bool valid_blocks_per_image(int64_t blocks_per_image) {
  return blocks_per_image >= 1 && blocks_per_image <= kMaxGridX;
}

// Grid of a partial-sum launch: blocks_per_image blocks along x (one partial-sum slot of each
// image each), the images along y (at most kMaxGridY, the kernels loop over the rest).
inline dim3 image_grid(int64_t images, int64_t blocks_per_image) {
  const int64_t grid_y = images < kMaxGridY ? images : kMaxGridY;
  return dim3(static_cast<unsigned>(blocks_per_image), static_cast<unsigned>(grid_y), 1);
}

// Grid of a launch sized to the device: y walks the items (at most kMaxGridY, the kernels loop
// over the rest), x the steps of one item, capped so that the whole grid is about four waves of
// fully resident blocks; the kernels loop over the rest of an item with stride
// gridDim.x * blockDim.x.
inline cudaError_t wave_grid(int64_t items, int64_t steps_per_item, dim3* grid) {
  int device = 0;
  int sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  const int64_t grid_y = items < kMaxGridY ? items : kMaxGridY;
  const int64_t target_blocks = static_cast<int64_t>(sms) * kFullOccupancyBlocks * 4;
  const int64_t want_x = (steps_per_item + kThreads - 1) / kThreads;
  int64_t cap_x = (target_blocks + grid_y - 1) / grid_y;
  if (cap_x < 1) cap_x = 1;
  const int64_t grid_x = want_x < cap_x ? want_x : cap_x;
  *grid = dim3(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y), 1);
  return cudaSuccess;
}

}  // namespace pnpfast::detail
