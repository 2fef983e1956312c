// Kernel launchers of the CUDA backend: raw device pointers in, sizes explicit, stream last. Each has a CPU reference
// (named beside it) that tests/cuda/test_cuda_kernels.cpp compares it with on fresh random data.
//
// Conventions: row-major; bf16 activations and weights, fp32 accumulation; "meta" is the pair metadata that travels
// with a dispatched row: int32 [rows, 2K] = [K routing weights (float bits) | K local expert ids (-1 = unused)].
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "epmoe/config.hpp"
#include "resources.cuh"

namespace epmoe::cuda {

using bf16 = __nv_bfloat16;

// ---- conversions and elementwise (reference: plain loops) ----
// With `not_bf16`: also sets *not_bf16 = 1 when some in[i] is not a bf16 (its low 16 bits are not zero); never
// clears it.
void convert_f32_to_bf16(const float* in, bf16* out, std::size_t n, cudaStream_t stream, int* not_bf16 = nullptr);
void convert_bf16_to_f32(const bf16* in, float* out, std::size_t n, cudaStream_t stream);
// out [3, n]: three bf16 parts hi, mid, lo of each in[i], hi + mid + lo = in[i] to within 2^-27 |in[i]| (the
// router's weight, for router_logit_parts_bf16x3 in gemm.cuh).
void split_f32_to_bf16x3(const float* in, bf16* out, std::size_t n, cudaStream_t stream);
// dst[i] = bf16(float(dst[i]) + float(src[i])).
void add_bf16(bf16* dst, const bf16* src, std::size_t n, cudaStream_t stream);
// The stream's next work starts `ns` nanoseconds after the stream reaches this point (one thread spins on
// %globaltimer): the host's launches behind it queue up meanwhile.
void hold_stream(std::uint64_t ns, cudaStream_t stream);

// ---- router (reference: epmoe::select_topk in src/core/routing.cpp) ----
struct RouterParams {
  int num_tokens, num_experts, top_k;
  bool sigmoid;        // else softmax
  bool grouped;        // grouped top-k with n_group > 1
  int n_group, topk_group;
  bool renormalize;    // norm_topk_prob
  // 1: logits [T, E]. 3: [T, 3E], the three partial logits of router_logit_parts_bf16x3 (gemm.cuh) side by side;
  // expert e's logit is (z[2E + e] + z[E + e]) + z[e], the small parts first.
  int logit_parts = 1;
};
// logits [T, E] or parts (p.logit_parts; without router bias); router_bias, correction_bias [E] or null. Writes
// ids, weights [T, K].
// Requires n_group <= 32, E <= 1536 (48 KiB of shared memory) and K <= 32.
void router_topk(const float* logits, const float* router_bias, const float* correction_bias, const RouterParams& p,
                 int* ids, float* weights, cudaStream_t stream);
// An imposed expert choice (bench --routing): weights [T, K] = the unbiased scores of `ids` [T, K], renormalized
// when p.renormalize (reference: routing_for_ids()). Requires K <= 32.
void router_weights_for_ids(const float* logits, const float* router_bias, const int* ids, const RouterParams& p,
                            float* weights, cudaStream_t stream);

// ---- dispatch layout (reference: CpuStages::dispatch) ----
// flags [R, T]: 1 where token t has an expert on rank r. counts [R, 1 + max_local]: column 0 is left alone (filled
// by rank_row_counts), columns 1.. get += the pairs for each local expert of rank r. counts must be zeroed first.
void dispatch_flags(const int* ids, int num_tokens, int top_k, const int* expert_owner, const int* expert_local,
                    int num_ranks, int max_local, int* flags, int* counts, cudaStream_t stream);
// positions = exclusive scan of flags (destination-major); counts[r, 0] = rows for rank r.
void rank_row_counts(const int* flags, const int* positions, int num_tokens, int num_ranks, int max_local,
                     int* counts, cudaStream_t stream);
// The whole layout: flags, positions and every entry of counts (no zeroing needed): zeroing, dispatch_flags, the
// exclusive scan and rank_row_counts. (One block doing all of it took 30-39 us at 4096 tokens on an H200, against
// 12 us for these four kernels.)
void dispatch_layout(const int* ids, int num_tokens, int top_k, const int* expert_owner, const int* expert_local,
                     int num_ranks, int max_local, int* flags, int* positions, int* counts,
                     DeviceBuffer<unsigned char>& scan_temp, cudaStream_t stream);
// send_rows[positions[r, t]] = xr[t] and its meta for every flagged (r, t).
void pack_dispatch(const bf16* xr, int width, const int* ids, const float* weights, int num_tokens, int top_k,
                   const int* expert_owner, const int* expert_local, int num_ranks, const int* flags,
                   const int* positions, bf16* send_rows, int* send_meta, cudaStream_t stream);
// allreduce mode: meta [T, 2K] of this rank's pairs, counts[j] += pairs of local expert j (zeroed first).
void select_local_meta(const int* ids, const float* weights, int num_tokens, int top_k, const int* expert_owner,
                       const int* expert_local, int rank, int* meta, int* counts, cudaStream_t stream);

// ---- CUB primitive (reference: std::exclusive_scan) ----
// out = exclusive prefix sum of in[0, n). `temp` grows as needed.
void exclusive_scan(const int* in, int* out, int n, DeviceBuffer<unsigned char>& temp, cudaStream_t stream);
// Temporary storage it needs at this size (to size the buffer at start).
std::size_t cub_temp_bytes(int scan_items);

// ---- experts (reference: CpuStages::experts) ----
// Where the experts' GEMM buffers (x_sorted, h, a, y) hold the pairs: local expert e owns the block of rows
// [base[e], base[e + 1]) and its pairs fill the first rows of it, in the order the scatter claims them
// (cursor[e], zero before the scatter, counts the rows claimed). ExpertGemm::plan() sizes the blocks; base == the
// offsets of the pair counts is the compact layout. Device arrays, [n + 1] and [n].
struct ExpertRows {
  const int* base = nullptr;
  int* cursor = nullptr;
};
// For every received row i and valid slot k (meta's expert e >= 0): the pair takes row r = base[e] + (the next
// cursor[e]), x_sorted[r, :width] = rows[i], zero to `padded`; pair_pos[i * K + k] = r (-1 for unused slots) and
// row_expert[r] = e. Rows of a block beyond its pairs are left alone (row_expert should be -1 there: set it first).
// Within a block the order of the pairs is the order the atomics gave, not the slot order: each row's GEMM result
// does not depend on where it sits, so the layer's output stays deterministic.
void scatter_pairs(const bf16* rows, int num_rows, int width, int padded, const int* meta, int top_k,
                   const ExpertRows& layout, bf16* x_sorted, int* pair_pos, int* row_expert, cudaStream_t stream);
struct ActivationParams {
  Activation kind;
  float alpha, limit;
};
// a[i, j] = act(h[i, j] + b[e, j], h[i, inter + j] + b[e, inter + j]) (gated) or act(h[i, j] + b[e, j]) with
// e = row_expert[i]; rows with e = -1 are skipped (padding of the grouped layout). row_expert null: every row, e = 0.
// bias [n, h_cols] fp32 or null.
void bias_activation(const bf16* h, int rows, int h_cols, int inter, const float* bias, const int* row_expert,
                     const ActivationParams& act, bf16* a, cudaStream_t stream);
// out[i, :width] = scale * sum over the row's valid slots k of w_k * (y[pair_pos[i*K+k], :] + b2[e_k, :]).
// y has row stride `padded`; b2 [n, padded] fp32 or null. out is [rows, width], contiguous.
void weighted_sum(const bf16* y, int padded, const int* pair_pos, const int* meta, int num_rows, int top_k, int width,
                  const float* b2, float scale, bf16* out, cudaStream_t stream);

// ---- combine (reference: CpuStages::combine) ----
// routed[t] = sum over ranks r with flags[r, t] of back[positions[r, t]].
void combine_sum(const bf16* back, int width, const int* flags, const int* positions, int num_tokens, int num_ranks,
                 bf16* routed, cudaStream_t stream);

// ---- synthetic weights (reference: generate_layer_weights in src/core/weights.cpp) ----
// dst[r * ld + c] = scale * counter_uniform(seed, a, b, r * cols + c) for r < rows, c < cols (others untouched).
template <class T>  // bf16 or float
void fill_counter_uniform(T* dst, int rows, int cols, std::size_t ld, std::uint64_t seed, std::uint64_t a,
                          std::uint64_t b, float scale, cudaStream_t stream);

}  // namespace epmoe::cuda
