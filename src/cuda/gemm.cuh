// GEMMs of the layer through cuBLAS, in the nn.Linear orientation the weights are stored in:
//   out[M, N] = x[M, K] . w[N, K]^T   (row-major; bf16 operands and output, fp32 accumulation)
// and the grouped form over experts, whose row counts the host knows (the count exchange brought them).
#pragma once

#include <cublas_v2.h>

#include <memory>
#include <vector>

#include "kernels.cuh"
#include "resources.cuh"

namespace epmoe::cuda {

class CutlassGroupedGemm;

// out[M, N] (row stride ldo) = x[M, K] (stride ldx) . w[N, K]^T (stride ldw); bf16, fp32 accumulation.
void linear_bf16(cublasHandle_t handle, int m, int n, int k, const bf16* x, int ldx, const bf16* w, int ldw,
                 bf16* out, int ldo);
// The same in fp32 throughout (the router): no TF32, so routing decisions match the float32 reference.
void linear_f32(cublasHandle_t handle, int m, int n, int k, const float* x, int ldx, const float* w, int ldw,
                float* out, int ldo);
// The router's logits of x[m, k] (bf16) and an fp32 w[n, k] given as its three bf16 parts [3, n, k]
// (split_f32_to_bf16x3), as three partial logits side by side: out[m, 3n] (fp32, row stride ldo >= 3n),
// out[i, p * n + j] = x_i . part_p[j], in one bf16 GEMM of width 3n. Every product of a bf16 x with a part is
// exact in fp32 and the parts sum to w within 2^-27, so (out[i, 2n + j] + out[i, n + j]) + out[i, j], as
// router_topk sums them (RouterParams::logit_parts = 3), is an fp32 GEMM's logit on tensor cores. One GEMM of
// width 3n rather than three of width n: three times the tiles in one launch (a router's n is small).
void router_logit_parts_bf16x3(cublasHandle_t handle, int m, int n, int k, const bf16* x, int ldx,
                               const bf16* w_parts, float* out, int ldo);
// How the router's GEMM runs (EPMOE_CUDA_ROUTER_GEMM = bf16x3 | fp32; default bf16x3): router_logit_parts_bf16x3 when
// the layer's input is bf16 (every value; checked when it is staged), else, and with fp32, linear_f32 on the fp32
// input.
enum class RouterGemm { Bf16x3, Fp32 };
RouterGemm router_gemm_from_env();

// How the experts' GEMMs run (EPMOE_CUDA_EXPERT_GEMM = grouped | streams | cutlass; default grouped):
//   grouped: experts of similar pair counts share one pointer-array cublasGemmBatchedEx ("bucket"): sorted by count,
//            an expert joins the bucket of the largest one while its count is at least 90% of that largest count
//            (EPMOE_CUDA_GROUP_FILL; padding adds at most 11% rows), and every expert with at most 128 pairs joins
//            one last bucket (one tile row of the GEMM: padding costs no time there; weight reads and launches
//            dominate). Each expert owns a block of its bucket's row count in the layout; the rows past its pairs
//            are computed and never read.
//            Balanced routing makes one bucket (a single batched GEMM over all experts); skewed routing a few.
//   streams: the compact layout, one cublasGemmEx per expert.
//   cutlass: the compact layout, one CUTLASS Hopper grouped GEMM over all experts with pairs (cutlass_gemm.cuh; in
//            builds that found the CUTLASS headers). A GEMM whose widths are not multiples of 8 elements (TMA needs
//            16-byte rows) runs as in `streams` instead, which the first such layer says on stderr.
// The buckets (or experts) of cuBLAS calls are spread over EPMOE_CUDA_GEMM_STREAMS streams (default 4), largest first,
// each to the least loaded stream, so that small GEMMs run concurrently and fill the SMs.
enum class ExpertGemmMode { Grouped, Streams, Cutlass };
ExpertGemmMode expert_gemm_mode_from_env();
// EPMOE_CUDA_GROUP_FILL in [0.5, 1] (default 0.9; 4 x H100, 4096 tokens per rank: 0.9 gave deepseek-v3 80% of the
// dense rate in the GEMMs against 74% at 0.8, qwen3-30b-a3b 84 against 81, gpt-oss-120b 69 against 65): an expert
// joins a bucket while its count is at least this fraction of the bucket's largest (padding at most 1/fill - 1 of
// the rows).
double expert_group_fill_from_env();

// One GEMM of the experts: for each local expert e, out rows of e = x rows of e . w_e^T, w_e = w + e * n * ldw
// (w is [experts, n, ldw] with k <= ldw used columns); x and out rows in the layout of ExpertGemm::plan().
struct ExpertLinear {
  int n, k;
  const bf16* x;
  int ldx;
  const bf16* w;
  int ldw;
  bf16* out;
  int ldo;
  // Expert e's operands: its weights, and its rows from layout row `base` on.
  const bf16* w_of(int e) const { return w + static_cast<std::size_t>(e) * n * ldw; }
  const bf16* x_at(int base) const { return x + static_cast<std::size_t>(base) * ldx; }
  bf16* out_at(int base) const { return out + static_cast<std::size_t>(base) * ldo; }
};

// The grouped GEMM of the experts. Per layer: plan() from the per-expert pair offsets the host knows (the count
// exchange brought them), then prepare() with the layer's GEMMs (copies the layout and the pointer arrays to the
// device in one transfer, on `stream`), then run(i) for each GEMM in turn. Work is ordered after what was queued on
// `stream` before and before what is queued after.
class ExpertGemm {
 public:
  ExpertGemm(cublasHandle_t main_handle, cudaStream_t stream, int max_experts);
  ~ExpertGemm();
  // Row layout for these pair offsets (host, [n + 1]); returns the number of rows the layout spans.
  int plan(const std::vector<int>& offsets);
  void prepare(const std::vector<ExpertLinear>& gemms);
  // The layout on the device (valid on `stream` after prepare()): base [n + 1] and a zeroed cursor [n] for the
  // scatter of the pairs into their blocks (ExpertRows).
  ExpertRows device_layout() {
    int* ints = reinterpret_cast<int*>(device_.data());
    return ExpertRows{ints + max_experts_ + 1, ints};
  }
  void run(int gemm);
  // Of the last plan(): the rows the layout spans (pairs and padding) and the GEMM calls per weight matrix.
  int rows() const { return base_.empty() ? 0 : base_.back(); }
  int buckets() const { return static_cast<int>(buckets_.size()); }
  ExpertGemmMode mode() const { return mode_; }

 private:
  struct Bucket {
    int rows;         // M of every GEMM in the bucket
    int first, size;  // order_[first, first + size)
  };
  ExpertGemmMode mode_;
  double fill_;
  cublasHandle_t main_handle_;
  cudaStream_t stream_;
  int max_experts_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<CublasHandle>> handles_;
  std::vector<std::unique_ptr<Event>> joins_;
  Event fork_{false};
  std::vector<int> order_;
  std::vector<int> block_;  // rows of each expert's block (plan's workspace)
  std::vector<int> base_;   // base_[e] = first row of expert e's block, base_[n] = rows (non-decreasing)
  std::vector<long> load_;  // rows queued per stream (run's workspace)
  std::vector<Bucket> buckets_;
  std::vector<ExpertLinear> gemms_;
  // One transfer per layer: [cursor zeros n+1 | base n+1 | pad to 16 bytes | per GEMM a slot: the A, B, C pointer
  // arrays of max_experts each of cublasGemmBatchedEx, or the CUTLASS GEMM's argument block], pinned on the host
  // and on the device.
  static constexpr int kMaxGemms = 4;
  std::size_t int_bytes() const;
  std::size_t slot_offset(int gemm) const { return int_bytes() + gemm * slot_bytes_; }
  std::size_t slot_bytes_;
  std::unique_ptr<CutlassGroupedGemm> cutlass_;  // in mode Cutlass
  bool cutlass_ok_[kMaxGemms] = {};               // of the prepared GEMMs: which the CUTLASS GEMM takes
  bool cutlass_fallback_logged_ = false;
  PinnedBuffer<unsigned char> host_;
  DeviceBuffer<unsigned char> device_;
};

// EPMOE_CUDA_GEMM_STREAMS, read once: the environment's one tunable of the CUDA backend.
int gemm_streams_from_env();

}  // namespace epmoe::cuda
