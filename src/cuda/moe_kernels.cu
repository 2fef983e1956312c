// The memory-bound kernels of the layer: conversions, dispatch layout and packing, the scatter of the pairs into their
// experts' blocks, bias + activation, the weighted sum that writes unpadded rows, and the home-rank combine.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "../core/counter_rng.hpp"
#include "check.cuh"
#include "device_clock.cuh"
#include "kernels.cuh"
#include "pair_meta.cuh"
#include "row_math.cuh"

namespace epmoe::cuda {
namespace {

constexpr int kThreads = 256;
// One-block-per-row kernels (scatter, weighted sum, combine sum): 128 threads measured faster than one pass per row
// (256-512 threads) on 4 x H200 for qwen3-30b-a3b and gpt-oss-120b rows (weighted sum 48 against 67 us).
constexpr int kRowThreads = 128;

unsigned grid_for(std::size_t n, int threads = kThreads) {
  const std::size_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535u * 16u ? (blocks ? blocks : 1) : 65535u * 16u);
}

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

// The block copies n elements; 16-byte accesses when both rows allow them.
__device__ __forceinline__ void copy_row(bf16* __restrict__ dst, const bf16* __restrict__ src, int n) {
  if ((n & 7) == 0 && aligned16(dst) && aligned16(src)) {
    const uint4* s = reinterpret_cast<const uint4*>(src);
    uint4* d = reinterpret_cast<uint4*>(dst);
    for (int i = threadIdx.x; i < n / 8; i += blockDim.x) d[i] = s[i];
  } else {
    for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
  }
}

// `not_bf16` (optional): set to 1 when some value has low 16 bits (is not a bf16 itself), in the same pass.
__global__ void f32_to_bf16_kernel(const float* __restrict__ in, bf16* __restrict__ out, std::size_t n,
                                   int* not_bf16) {
  unsigned low = 0;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const float v = in[i];
    low |= __float_as_uint(v) & 0xFFFFu;
    out[i] = __float2bfloat16(v);
  }
  // One lane per warp writes the (page-locked) flag, not every thread that saw a low bit.
  if (not_bf16 && __any_sync(0xffffffffu, low != 0) && threadIdx.x % 32 == 0) *not_bf16 = 1;
}
// hi = bf16(v), mid = bf16(v - hi), lo = bf16(v - hi - mid): each subtraction is exact in fp32, and
// hi + mid + lo = v to within 2^-27 |v|.
__global__ void split_bf16x3_kernel(const float* __restrict__ in, bf16* __restrict__ out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const float v = in[i];
    const bf16 hi = __float2bfloat16_rn(v);
    const float r = v - __bfloat162float(hi);
    const bf16 mid = __float2bfloat16_rn(r);
    out[i] = hi;
    out[n + i] = mid;
    out[2 * n + i] = __float2bfloat16_rn(r - __bfloat162float(mid));
  }
}
__global__ void bf16_to_f32_kernel(const bf16* __restrict__ in, float* __restrict__ out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = __bfloat162float(in[i]);
}
__global__ void add_bf16_kernel(bf16* __restrict__ dst, const bf16* __restrict__ src, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16(__bfloat162float(dst[i]) + __bfloat162float(src[i]));
}

__global__ void hold_kernel(std::uint64_t ns) {
  hold_for_ns(ns);
}

// The per-(rank, local expert) counts are first summed in shared memory when they fit (`shared_counts`), so that
// the global atomics are one per block and counter instead of one per pair.
__global__ void dispatch_flags_kernel(const int* __restrict__ ids, int T, int K, const int* __restrict__ owner,
                                      const int* __restrict__ local, int R, int max_local, int* __restrict__ flags,
                                      int* __restrict__ counts, bool shared_counts) {
  extern __shared__ int block_counts[];
  const int entries = R * (1 + max_local);
  if (shared_counts) {
    for (int i = threadIdx.x; i < entries; i += blockDim.x) block_counts[i] = 0;
    __syncthreads();
  }
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < T) {
    for (int r = 0; r < R; ++r) flags[static_cast<std::size_t>(r) * T + t] = 0;
    for (int k = 0; k < K; ++k) {
      const int e = ids[static_cast<std::size_t>(t) * K + k];
      const int r = owner[e];
      flags[static_cast<std::size_t>(r) * T + t] = 1;
      atomicAdd(&(shared_counts ? block_counts : counts)[r * (1 + max_local) + 1 + local[e]], 1);
    }
  }
  if (shared_counts) {
    __syncthreads();
    for (int i = threadIdx.x; i < entries; i += blockDim.x)
      if (block_counts[i]) atomicAdd(&counts[i], block_counts[i]);
  }
}

__global__ void rank_row_counts_kernel(const int* __restrict__ flags, const int* __restrict__ positions, int T, int R,
                                       int max_local, int* __restrict__ counts) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= R) return;
  const std::size_t first = static_cast<std::size_t>(r) * T, last = first + T - 1;
  counts[r * (1 + max_local)] = T == 0 ? 0 : positions[last] + flags[last] - positions[first];
}

// One block per (token, destination rank).
__global__ void pack_dispatch_kernel(const bf16* __restrict__ xr, int width, const int* __restrict__ ids,
                                     const float* __restrict__ weights, int T, int K, const int* __restrict__ owner,
                                     const int* __restrict__ local, const int* __restrict__ flags,
                                     const int* __restrict__ positions, bf16* __restrict__ send_rows,
                                     int* __restrict__ send_meta) {
  const int t = blockIdx.x, r = blockIdx.y;
  const std::size_t fr = static_cast<std::size_t>(r) * T + t;
  if (!flags[fr]) return;
  const std::size_t p = positions[fr];
  copy_row(send_rows + p * width, xr + static_cast<std::size_t>(t) * width, width);
  if (threadIdx.x < 32) write_pair_meta(send_meta + p * 2 * K, ids, weights, t, K, owner, local, r, threadIdx.x);
}

__global__ void select_local_meta_kernel(const int* __restrict__ ids, const float* __restrict__ weights, int T, int K,
                                         const int* __restrict__ owner, const int* __restrict__ local, int rank,
                                         int* __restrict__ meta, int* __restrict__ counts) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= T) return;
  int* m = meta + static_cast<std::size_t>(t) * 2 * K;
  int slot = 0;
  for (int k = 0; k < K; ++k) {
    const int e = ids[static_cast<std::size_t>(t) * K + k];
    if (owner[e] != rank) continue;
    m[slot] = __float_as_int(weights[static_cast<std::size_t>(t) * K + k]);
    m[K + slot] = local[e];
    atomicAdd(&counts[local[e]], 1);
    ++slot;
  }
  for (; slot < K; ++slot) {
    m[slot] = __float_as_int(0.0f);
    m[K + slot] = -1;
  }
}

// One block per received row: each of its valid slots takes the next free row of its expert's block (an atomic
// cursor per expert), and the block copies the row there once per slot, reading it once.
__global__ void scatter_pairs_kernel(const bf16* __restrict__ rows, int width, int padded, const int* __restrict__ meta,
                                     int K, ExpertRows layout, bf16* __restrict__ x_sorted, int* __restrict__ pair_pos,
                                     int* __restrict__ row_expert) {
  __shared__ int dst[32];
  __shared__ int count;
  const std::size_t row = blockIdx.x;
  // The row's first pieces are loaded before the bookkeeping, so that their latency overlaps the atomics'.
  const bf16* src = rows + row * width;
  const bool vec = (width & 7) == 0 && (padded & 7) == 0 && aligned16(src) && aligned16(x_sorted);
  const uint4* s = reinterpret_cast<const uint4*>(src);
  constexpr int kEarly = 2;
  uint4 early[kEarly];
#pragma unroll
  for (int p = 0; p < kEarly; ++p) {
    const int i = threadIdx.x + p * blockDim.x;
    if (vec && i < width / 8) early[p] = s[i];
  }
  if (threadIdx.x < 32) {  // lane k claims slot k's row (K <= 32): the atomics of a row in parallel
    const int k = threadIdx.x;
    const int e = k < K ? meta[row * 2 * K + K + k] : -1;
    int r = -1;
    if (e >= 0) {
      r = layout.base[e] + atomicAdd(&layout.cursor[e], 1);
      row_expert[r] = e;
    }
    if (k < K) pair_pos[row * K + k] = r;
    const unsigned valid = __ballot_sync(0xffffffffu, e >= 0);
    if (e >= 0) dst[__popc(valid & ((1u << k) - 1))] = r;
    if (k == 0) count = __popc(valid);
  }
  __syncthreads();
  if (vec) {
    int p = 0;
    for (int i = threadIdx.x; i < width / 8; i += blockDim.x, ++p) {
      uint4 v;
      if (p < kEarly) {
#pragma unroll
        for (int q = 0; q < kEarly; ++q)  // a constant index keeps `early` in registers
          if (q == p) v = early[q];
      } else {
        v = s[i];
      }
      for (int c = 0; c < count; ++c)
        reinterpret_cast<uint4*>(x_sorted + static_cast<std::size_t>(dst[c]) * padded)[i] = v;
    }
  } else {
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
      const bf16 v = src[i];
      for (int c = 0; c < count; ++c) x_sorted[static_cast<std::size_t>(dst[c]) * padded + i] = v;
    }
  }
  for (int i = width + threadIdx.x; i < padded; i += blockDim.x)
    for (int c = 0; c < count; ++c) x_sorted[static_cast<std::size_t>(dst[c]) * padded + i] = __float2bfloat16(0.0f);
}

// The sigmoids use the fast exponential and division (about 2 ulp of float32, far below the bf16 rounding of the
// result; __fdividef(x, inf) is 0, as the limit).
__device__ __forceinline__ float activate(const ActivationParams& p, float gate, float up) {
  switch (p.kind) {
    case Activation::Silu: return __fdividef(gate, 1.0f + __expf(-gate)) * up;
    case Activation::Gelu: return 0.5f * gate * (1.0f + erff(gate * 0.70710678118654752f)) * up;
    case Activation::SwigluOai: {
      const float g = fminf(gate, p.limit);
      const float u = fmaxf(-p.limit, fminf(up, p.limit));
      return (u + 1.0f) * __fdividef(g, 1.0f + __expf(-p.alpha * g));
    }
    case Activation::Relu2: {
      const float r = fmaxf(gate, 0.0f);
      return r * r;
    }
  }
  return 0.0f;
}

// A block is kActRows x M rows by 32 threads of V columns each (blockDim (32, kActRows)); a thread takes M rows,
// kActRows apart, and strides over the rows. No thread divides to find its row and column: with one flat index a
// thread's 64-bit division made this kernel issue-bound (ncu, session 12). The M rows' loads are issued before any
// of them is used: the kernel is bound by the latency of its HBM reads. Rows whose expert is -1 are padding, skipped.
// 4 rows per thread: 94 us against 107 with 1 on gpt-oss-120b's shape (one rank's rows of 4, H200; 2 rows: 94 us).
constexpr int kActRows = 8, kActRowsPerThread = 4;
template <int V>
__global__ void bias_activation_kernel(const bf16* __restrict__ h, int rows, int h_cols, int inter,
                                       const float* __restrict__ bias, const int* __restrict__ row_expert,
                                       ActivationParams act, bf16* __restrict__ a) {
  using Raw = std::conditional_t<V == 8, uint4, bf16>;  // V bf16 values as loaded
  constexpr int M = kActRowsPerThread;
  const bool gated = act.kind != Activation::Relu2;
  const int j = (blockIdx.x * 32 + threadIdx.x) * V;
  if (j >= inter) return;
  const std::size_t n = rows, tile = std::size_t(kActRows) * M;
  for (std::size_t i0 = blockIdx.y * tile + threadIdx.y; i0 < n; i0 += std::size_t(gridDim.y) * tile) {
    Raw g[M] = {}, u[M] = {};
    int e[M];
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const std::size_t i = i0 + m * kActRows;
      if (i >= n) continue;
      const bf16* hr = h + i * h_cols + j;  // padding rows are read too, and dropped
      g[m] = *reinterpret_cast<const Raw*>(hr);
      if (gated) u[m] = *reinterpret_cast<const Raw*>(hr + inter);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const std::size_t i = i0 + m * kActRows;
      e[m] = i >= n ? -1 : row_expert ? row_expert[i] : 0;
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (e[m] < 0) continue;
      float gate[V], up[V] = {}, out[V], bg[V] = {}, bu[V] = {};
      load_bf16<V>(reinterpret_cast<const bf16*>(&g[m]), gate);
      if (gated) load_bf16<V>(reinterpret_cast<const bf16*>(&u[m]), up);
      if (bias) {
        const float* b = bias + static_cast<std::size_t>(e[m]) * h_cols;
        load_f32<V>(b + j, bg);
        if (gated) load_f32<V>(b + inter + j, bu);
      }
#pragma unroll
      for (int v = 0; v < V; ++v) out[v] = activate(act, gate[v] + bg[v], up[v] + bu[v]);
      store_bf16<V>(a + (i0 + m * kActRows) * inter + j, out);
    }
  }
}

// One block per row; the row's pairs are read once into shared memory.
template <int V>
__global__ void weighted_sum_kernel(const bf16* __restrict__ y, int padded, const int* __restrict__ pair_pos,
                                    const int* __restrict__ meta, int K, int width, const float* __restrict__ b2,
                                    float scale, bf16* __restrict__ out) {
  const std::size_t row = blockIdx.x;
  weighted_sum_row<V>(y, padded, pair_pos, meta, K, width, b2, scale, row, out + row * width);
}

template <int V>
__global__ void combine_sum_kernel(const bf16* __restrict__ back, int width, const int* __restrict__ flags,
                                   const int* __restrict__ positions, int T, int R, bf16* __restrict__ routed) {
  const std::size_t t = blockIdx.x;
  for (int c = threadIdx.x * V; c < width; c += blockDim.x * V) {
    float acc[V] = {};
    for (int r = 0; r < R; ++r) {
      const std::size_t fr = static_cast<std::size_t>(r) * T + t;
      if (!flags[fr]) continue;
      float v[V];
      load_bf16<V>(back + static_cast<std::size_t>(positions[fr]) * width + c, v);
#pragma unroll
      for (int q = 0; q < V; ++q) acc[q] += v[q];
    }
    store_bf16<V>(routed + t * width + c, acc);
  }
}

template <class T>
__global__ void fill_counter_uniform_kernel(T* __restrict__ dst, int rows, int cols, std::size_t ld, std::uint64_t seed,
                                            std::uint64_t a, std::uint64_t b, float scale) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const float v = __fmul_rn(scale, synthetic::counter_uniform(seed, a, b, i));
    const std::size_t r = i / cols, c = i % cols;
    if constexpr (sizeof(T) == 2)
      dst[r * ld + c] = __float2bfloat16(v);
    else
      dst[r * ld + c] = v;
  }
}

}  // namespace

void convert_f32_to_bf16(const float* in, bf16* out, std::size_t n, cudaStream_t stream, int* not_bf16) {
  if (!n) return;
  f32_to_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(in, out, n, not_bf16);
  EPMOE_CUDA_LAUNCH_CHECK();
}
void split_f32_to_bf16x3(const float* in, bf16* out, std::size_t n, cudaStream_t stream) {
  if (!n) return;
  split_bf16x3_kernel<<<grid_for(n), kThreads, 0, stream>>>(in, out, n);
  EPMOE_CUDA_LAUNCH_CHECK();
}
void convert_bf16_to_f32(const bf16* in, float* out, std::size_t n, cudaStream_t stream) {
  if (!n) return;
  bf16_to_f32_kernel<<<grid_for(n), kThreads, 0, stream>>>(in, out, n);
  EPMOE_CUDA_LAUNCH_CHECK();
}
void add_bf16(bf16* dst, const bf16* src, std::size_t n, cudaStream_t stream) {
  if (!n) return;
  add_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(dst, src, n);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void hold_stream(std::uint64_t ns, cudaStream_t stream) {
  if (!ns) return;
  hold_kernel<<<1, 1, 0, stream>>>(ns);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void dispatch_flags(const int* ids, int num_tokens, int top_k, const int* expert_owner, const int* expert_local,
                    int num_ranks, int max_local, int* flags, int* counts, cudaStream_t stream) {
  if (!num_tokens) return;
  const std::size_t count_bytes = static_cast<std::size_t>(num_ranks) * (1 + max_local) * sizeof(int);
  const bool shared_counts = count_bytes <= 32 * 1024;
  dispatch_flags_kernel<<<grid_for(num_tokens), kThreads, shared_counts ? count_bytes : 0, stream>>>(
      ids, num_tokens, top_k, expert_owner, expert_local, num_ranks, max_local, flags, counts, shared_counts);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void rank_row_counts(const int* flags, const int* positions, int num_tokens, int num_ranks, int max_local, int* counts,
                     cudaStream_t stream) {
  rank_row_counts_kernel<<<grid_for(num_ranks, 32), 32, 0, stream>>>(flags, positions, num_tokens, num_ranks, max_local,
                                                                     counts);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void dispatch_layout(const int* ids, int num_tokens, int top_k, const int* expert_owner, const int* expert_local,
                     int num_ranks, int max_local, int* flags, int* positions, int* counts,
                     DeviceBuffer<unsigned char>& scan_temp, cudaStream_t stream) {
  const std::size_t entries = static_cast<std::size_t>(num_ranks) * (1 + max_local);
  EPMOE_CUDA_CHECK(cudaMemsetAsync(counts, 0, entries * sizeof(int), stream));
  dispatch_flags(ids, num_tokens, top_k, expert_owner, expert_local, num_ranks, max_local, flags, counts, stream);
  exclusive_scan(flags, positions, num_ranks * num_tokens, scan_temp, stream);
  rank_row_counts(flags, positions, num_tokens, num_ranks, max_local, counts, stream);
}

void pack_dispatch(const bf16* xr, int width, const int* ids, const float* weights, int num_tokens, int top_k,
                   const int* expert_owner, const int* expert_local, int num_ranks, const int* flags,
                   const int* positions, bf16* send_rows, int* send_meta, cudaStream_t stream) {
  if (!num_tokens) return;
  EPMOE_ASSERT(top_k <= 32, "pack_dispatch supports top_k <= 32, got ", top_k);
  const dim3 grid(num_tokens, num_ranks);
  pack_dispatch_kernel<<<grid, 128, 0, stream>>>(xr, width, ids, weights, num_tokens, top_k, expert_owner, expert_local,
                                                 flags, positions, send_rows, send_meta);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void select_local_meta(const int* ids, const float* weights, int num_tokens, int top_k, const int* expert_owner,
                       const int* expert_local, int rank, int* meta, int* counts, cudaStream_t stream) {
  if (!num_tokens) return;
  select_local_meta_kernel<<<grid_for(num_tokens), kThreads, 0, stream>>>(ids, weights, num_tokens, top_k, expert_owner,
                                                                          expert_local, rank, meta, counts);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void scatter_pairs(const bf16* rows, int num_rows, int width, int padded, const int* meta, int top_k,
                   const ExpertRows& layout, bf16* x_sorted, int* pair_pos, int* row_expert, cudaStream_t stream) {
  if (!num_rows) return;
  EPMOE_ASSERT(top_k <= 32, "scatter_pairs supports top_k <= 32, got ", top_k);
  EPMOE_ASSERT(layout.base && layout.cursor, "scatter_pairs needs the whole layout");
  scatter_pairs_kernel<<<num_rows, kRowThreads, 0, stream>>>(rows, width, padded, meta, top_k, layout, x_sorted,
                                                             pair_pos, row_expert);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void bias_activation(const bf16* h, int rows, int h_cols, int inter, const float* bias, const int* row_expert,
                     const ActivationParams& act, bf16* a, cudaStream_t stream) {
  if (!rows) return;
  const bool vec = vec8_ok({inter, h_cols});
  const int V = vec ? 8 : 1;
  const dim3 block(32, kActRows);
  const int tile = kActRows * kActRowsPerThread;
  const dim3 grid((inter / V + 31) / 32, static_cast<unsigned>(std::min(65535, (rows + tile - 1) / tile)));
  const auto kernel = vec ? bias_activation_kernel<8> : bias_activation_kernel<1>;
  kernel<<<grid, block, 0, stream>>>(h, rows, h_cols, inter, bias, row_expert, act, a);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void weighted_sum(const bf16* y, int padded, const int* pair_pos, const int* meta, int num_rows, int top_k, int width,
                  const float* b2, float scale, bf16* out, cudaStream_t stream) {
  if (!num_rows) return;
  EPMOE_ASSERT(top_k <= 32, "weighted_sum supports top_k <= 32, got ", top_k);
  if (vec8_ok({padded, width})) {
    weighted_sum_kernel<8>
        <<<num_rows, kRowThreads, 0, stream>>>(y, padded, pair_pos, meta, top_k, width, b2, scale, out);
  } else {
    weighted_sum_kernel<1>
        <<<num_rows, kRowThreads, 0, stream>>>(y, padded, pair_pos, meta, top_k, width, b2, scale, out);
  }
  EPMOE_CUDA_LAUNCH_CHECK();
}

void combine_sum(const bf16* back, int width, const int* flags, const int* positions, int num_tokens, int num_ranks,
                 bf16* routed, cudaStream_t stream) {
  if (!num_tokens) return;
  if (vec8_ok({width})) {
    combine_sum_kernel<8>
        <<<num_tokens, kRowThreads, 0, stream>>>(back, width, flags, positions, num_tokens, num_ranks, routed);
  } else {
    combine_sum_kernel<1>
        <<<num_tokens, kRowThreads, 0, stream>>>(back, width, flags, positions, num_tokens, num_ranks, routed);
  }
  EPMOE_CUDA_LAUNCH_CHECK();
}

template <class T>
void fill_counter_uniform(T* dst, int rows, int cols, std::size_t ld, std::uint64_t seed, std::uint64_t a,
                          std::uint64_t b, float scale, cudaStream_t stream) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  if (!n) return;
  fill_counter_uniform_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(dst, rows, cols, ld, seed, a, b, scale);
  EPMOE_CUDA_LAUNCH_CHECK();
}
template void fill_counter_uniform<bf16>(bf16*, int, int, std::size_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                         float, cudaStream_t);
template void fill_counter_uniform<float>(float*, int, int, std::size_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                          float, cudaStream_t);

}  // namespace epmoe::cuda
