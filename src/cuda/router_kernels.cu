// Router top-k: one warp per token, scores and selection scores in shared memory. Ties go to the lower expert id
// (and the lower group id), exactly as select_topk() orders them.
#include <cfloat>
#include <cmath>

#include "check.cuh"
#include "kernels.cuh"

namespace epmoe::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

// (score, index) pair ordering: higher score first, lower index on ties.
__device__ __forceinline__ bool ranks_before(float sa, int a, float sb, int b) {
  return sa > sb || (sa == sb && a < b);
}

__device__ __forceinline__ void warp_argmax(float& score, int& index) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float s = __shfl_xor_sync(0xffffffffu, score, offset);
    const int i = __shfl_xor_sync(0xffffffffu, index, offset);
    if (ranks_before(s, i, score, index)) {
      score = s;
      index = i;
    }
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Expert e's logit from token t's row of the logits (RouterParams::logit_parts).
__device__ __forceinline__ float logit_of(const float* z, int e, const RouterParams& p) {
  if (p.logit_parts == 1) return z[e];
  const int E = p.num_experts;
  return (z[2 * E + e] + z[E + e]) + z[e];
}

__global__ void router_topk_kernel(const float* __restrict__ logits, const float* __restrict__ router_bias,
                                   const float* __restrict__ correction_bias, RouterParams p, int* __restrict__ ids,
                                   float* __restrict__ weights) {
  extern __shared__ float shared[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kWarpsPerBlock + warp;
  if (t >= p.num_tokens) return;  // whole warps leave; no block-wide barrier follows
  const int E = p.num_experts, K = p.top_k;
  float* scores = shared + static_cast<size_t>(warp) * 2 * E;
  float* selection = scores + E;
  const float* z = logits + static_cast<size_t>(t) * p.logit_parts * E;

  float m = -INFINITY;
  for (int e = lane; e < E; e += 32) {
    const float v = logit_of(z, e, p) + (router_bias ? router_bias[e] : 0.0f);
    scores[e] = v;
    m = fmaxf(m, v);
  }
  if (!p.sigmoid) {
    m = warp_max(m);
    float sum = 0;
    for (int e = lane; e < E; e += 32) sum += (scores[e] = expf(scores[e] - m));
    sum = warp_sum(sum);
    for (int e = lane; e < E; e += 32) scores[e] /= sum;
  } else {
    for (int e = lane; e < E; e += 32) scores[e] = 1.0f / (1.0f + expf(-scores[e]));
  }
  for (int e = lane; e < E; e += 32) selection[e] = scores[e] + (correction_bias ? correction_bias[e] : 0.0f);
  __syncwarp();

  if (p.grouped) {
    // Lane g scores group g: its best, or best + second best when a correction bias is present.
    const int group_size = E / p.n_group;
    float group_score = -INFINITY;
    if (lane < p.n_group) {
      const float* s = selection + lane * group_size;
      float best = -INFINITY, second = -INFINITY;
      for (int i = 0; i < group_size; ++i) {
        if (s[i] > best) {
          second = best;
          best = s[i];
        } else if (s[i] > second) {
          second = s[i];
        }
      }
      group_score = correction_bias ? best + second : best;
    }
    unsigned keep = 0;
    for (int i = 0; i < p.topk_group; ++i) {
      float score = lane < p.n_group && !((keep >> lane) & 1u) ? group_score : -INFINITY;
      int index = lane < p.n_group && !((keep >> lane) & 1u) ? lane : 1 << 30;
      warp_argmax(score, index);
      keep |= 1u << index;
    }
    __syncwarp();
    for (int e = lane; e < E; e += 32)
      if (!((keep >> (e / group_size)) & 1u)) selection[e] = -INFINITY;
    __syncwarp();
  }

  // K rounds of argmax; a chosen expert is removed by marking it NaN (no comparison ranks NaN first).
  float sum = 0;
  for (int k = 0; k < K; ++k) {
    float score = -INFINITY;
    int index = 1 << 30;
    for (int e = lane; e < E; e += 32) {
      const float s = selection[e];
      if (s == s && (index == (1 << 30) || ranks_before(s, e, score, index))) {
        score = s;
        index = e;
      }
    }
    warp_argmax(score, index);
    const float w = index < E ? scores[index] : 0.0f;
    sum += w;
    if (lane == 0) {
      ids[static_cast<size_t>(t) * K + k] = index < E ? index : -1;
      weights[static_cast<size_t>(t) * K + k] = w;
    }
    __syncwarp();
    if (lane == 0 && index < E) selection[index] = NAN;
    __syncwarp();
  }
  if (p.renormalize && lane < K) {
    // Each lane rescales one of the K weights (K <= 32 assumed by the host).
    weights[static_cast<size_t>(t) * K + lane] /= sum;
  }
}

__global__ void router_weights_for_ids_kernel(const float* __restrict__ logits, const float* __restrict__ router_bias,
                                              const int* __restrict__ ids, RouterParams p, float* __restrict__ weights) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kWarpsPerBlock + warp;
  if (t >= p.num_tokens) return;
  const int E = p.num_experts, K = p.top_k;
  const float* z = logits + static_cast<size_t>(t) * p.logit_parts * E;
  auto logit = [&](int e) { return logit_of(z, e, p) + (router_bias ? router_bias[e] : 0.0f); };
  float m = -INFINITY, denom = 1.0f;
  if (!p.sigmoid) {
    for (int e = lane; e < E; e += 32) m = fmaxf(m, logit(e));
    m = warp_max(m);
    float sum = 0;
    for (int e = lane; e < E; e += 32) sum += expf(logit(e) - m);
    denom = warp_sum(sum);
  }
  float w = 0;
  if (lane < K) {
    const float v = logit(ids[static_cast<size_t>(t) * K + lane]);
    w = p.sigmoid ? 1.0f / (1.0f + expf(-v)) : expf(v - m) / denom;
  }
  const float total = warp_sum(w);
  if (lane < K) weights[static_cast<size_t>(t) * K + lane] = p.renormalize ? w / total : w;
}

}  // namespace

void router_weights_for_ids(const float* logits, const float* router_bias, const int* ids, const RouterParams& p,
                            float* weights, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  EPMOE_ASSERT(p.top_k <= 32 && (p.logit_parts == 1 || p.logit_parts == 3), "router_weights_for_ids: top_k ",
               p.top_k, " > 32 or logit_parts ", p.logit_parts);
  const int blocks = (p.num_tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
  router_weights_for_ids_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(logits, router_bias, ids, p, weights);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void router_topk(const float* logits, const float* router_bias, const float* correction_bias, const RouterParams& p,
                 int* ids, float* weights, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  EPMOE_ASSERT(p.n_group <= 32 && p.num_experts <= 1536 && p.top_k <= 32 && (p.logit_parts == 1 || p.logit_parts == 3),
               "router_topk limits: n_group ", p.n_group, " experts ", p.num_experts, " top_k ", p.top_k,
               " logit_parts ", p.logit_parts);
  const int blocks = (p.num_tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const size_t smem = static_cast<size_t>(kWarpsPerBlock) * 2 * p.num_experts * sizeof(float);
  RouterParams q = p;
  q.grouped = p.grouped && p.n_group > 1;
  router_topk_kernel<<<blocks, kWarpsPerBlock * 32, smem, stream>>>(logits, router_bias, correction_bias, q, ids,
                                                                    weights);
  EPMOE_CUDA_LAUNCH_CHECK();
}

}  // namespace epmoe::cuda
