// Device helpers of the row kernels shared by moe_kernels.cu and symmetric_dispatch.cu: V consecutive bf16 or
// fp32 values in and out of registers, and the weighted sum of one received row over its pairs (the same arithmetic
// wherever the row goes: a local buffer, or its home rank's combine window).
#pragma once

#include <cuda_bf16.h>

#include <cstddef>
#include <initializer_list>

namespace epmoe::cuda {

// Whether rows of these widths (and strides) allow the V = 8 accesses below: every value a multiple of 8.
inline bool vec8_ok(std::initializer_list<long> values) {
  for (long v : values)
    if (v % 8) return false;
  return true;
}

// V consecutive bf16 <-> float; V = 8 uses one 16-byte access.
template <int V>
__device__ __forceinline__ void load_bf16(const bf16* p, float (&v)[V]) {
  if constexpr (V == 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = __bfloat162float(p[i]);
  }
}
// V consecutive floats; V = 8 uses two 16-byte accesses (p 32-byte aligned).
template <int V>
__device__ __forceinline__ void load_f32(const float* p, float (&v)[V]) {
  if constexpr (V == 8) {
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = p[i];
  }
}
template <int V>
__device__ __forceinline__ void store_bf16(bf16* p, const float (&v)[V]) {
  if constexpr (V == 8) {
    uint4 raw;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = __float2bfloat16(v[i]);
  }
}

// One block: out_row[:width] = scale * sum over the row's valid pair slots k of w_k * (y[pair_pos[k], :] + b2[e_k, :])
// (meta, pair_pos: kernels.cuh). Every thread of the block calls it; it synchronizes the block before and after
// reading the row's pairs, so one block may sum row after row.
template <int V>
__device__ __forceinline__ void weighted_sum_row(const bf16* __restrict__ y, int padded,
                                                 const int* __restrict__ pair_pos, const int* __restrict__ meta, int K,
                                                 int width, const float* __restrict__ b2, float scale,
                                                 std::size_t row, bf16* __restrict__ out_row) {
  __shared__ int pos[32], expert[32];
  __shared__ float weight[32];
  __shared__ int count;
  __syncthreads();         // the block's previous row is done with them
  if (threadIdx.x < 32) {  // lane k reads slot k (K <= 32); the valid ones are packed in slot order
    const int k = threadIdx.x;
    const int e = k < K ? meta[row * 2 * K + K + k] : -1;
    const int p = k < K ? pair_pos[row * K + k] : -1;  // loaded beside e, not after it
    const int w = k < K ? meta[row * 2 * K + k] : 0;
    const unsigned valid = __ballot_sync(0xffffffffu, e >= 0);
    if (e >= 0) {
      const int c = __popc(valid & ((1u << k) - 1));
      pos[c] = p;
      expert[c] = e;
      weight[c] = scale * __int_as_float(w);
    }
    if (k == 0) count = __popc(valid);
  }
  __syncthreads();
  for (int c = threadIdx.x * V; c < width; c += blockDim.x * V) {
    float acc[V] = {};
    for (int k = 0; k < count; ++k) {
      float v[V], b[V] = {};
      load_bf16<V>(y + static_cast<std::size_t>(pos[k]) * padded + c, v);
      if (b2) load_f32<V>(b2 + static_cast<std::size_t>(expert[k]) * padded + c, b);
#pragma unroll
      for (int q = 0; q < V; ++q) acc[q] += weight[k] * (v[q] + b[q]);
    }
    store_bf16<V>(out_row + c, acc);
  }
}

}  // namespace epmoe::cuda
