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

// out[M, N] (row stride ldo) = x[M, K] (stride ldx) . w[N, K]^T (stride ldw); bf16, fp32 accumulation.
void linear_bf16(cublasHandle_t handle, int m, int n, int k, const bf16* x, int ldx, const bf16* w, int ldw,
                 bf16* out, int ldo);
// The same in fp32 throughout (the router): no TF32, so routing decisions match the float32 reference.
void linear_f32(cublasHandle_t handle, int m, int n, int k, const float* x, int ldx, const float* w, int ldw,
                float* out, int ldo);

// For each expert j with rows [offsets[j], offsets[j+1]) of x: out rows = x rows . w_j^T, w_j = w + j * n * ldw
// (w is [experts, n, ldw] with k <= ldw used columns). Offsets on the host.
void grouped_linear_bf16(cublasHandle_t handle, const std::vector<int>& offsets, int n, int k, const bf16* x, int ldx,
                         const bf16* w, int ldw, bf16* out, int ldo);

// `batch` GEMMs of one shape in one cuBLAS call: out_b = x_b . w_b^T with x_b = x + b * stride_x (elements), and so
// on for w and out.
void batched_linear_bf16(cublasHandle_t handle, int batch, int m, int n, int k, const bf16* x, int ldx,
                         long long stride_x, const bf16* w, int ldw, long long stride_w, bf16* out, int ldo,
                         long long stride_out);

// How the experts' GEMMs run (EPMOE_CUDA_EXPERT_GEMM = auto | batched | streams):
//   batched: the padded layout (kernels.cuh, ExpertRows): every local expert gets rows_per_expert = the largest
//            expert's pair count, and each GEMM of the experts is one cublasGemmStridedBatchedEx over all of them.
//            Near the dense rate when the experts' counts are close (balanced routing), at the price of the padding
//            rows' arithmetic.
//   streams:  the compact layout, one cublasGemmEx per expert spread over EPMOE_CUDA_GEMM_STREAMS streams.
//   auto:     batched when the padding adds at most 25% rows, or when the largest expert has at most 128 pairs
//            (one tile row of the GEMM: padding costs nothing there, launches and weight reads dominate); else streams.
enum class ExpertGemmMode { Auto, Batched, Streams };
ExpertGemmMode expert_gemm_mode_from_env();

// The grouped GEMM of the experts. Streams form: one cuBLAS GEMM per expert, spread over `lanes` streams (largest
// experts first, each to the least loaded lane) so that small per-expert GEMMs run concurrently and fill the SMs.
// Ordered after the work queued on `stream` before the call and before the work queued after it. lanes = 1 runs
// on `stream` itself. The number of lanes comes from EPMOE_CUDA_GEMM_STREAMS (default 4).
class ExpertGemm {
 public:
  ExpertGemm(cublasHandle_t main_handle, cudaStream_t stream);
  // The layout for these per-expert pair offsets (host, [n + 1]): rows_per_expert of the padded layout, or 0 for the
  // compact one.
  int rows_per_expert(const std::vector<int>& offsets) const;
  // x, out: rows in the layout that rows_per_expert() chose (rows_per_expert = its result).
  void grouped_linear(const std::vector<int>& offsets, int rows_per_expert, int n, int k, const bf16* x, int ldx,
                      const bf16* w, int ldw, bf16* out, int ldo);
  int lanes() const { return static_cast<int>(streams_.size()) > 0 ? static_cast<int>(streams_.size()) : 1; }
  ExpertGemmMode mode() const { return mode_; }

 private:
  ExpertGemmMode mode_;
  cublasHandle_t main_handle_;
  cudaStream_t stream_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<CublasHandle>> handles_;
  std::vector<std::unique_ptr<Event>> joins_;
  Event fork_{false};
  std::vector<int> order_;
  std::vector<long> load_;
};

// EPMOE_CUDA_GEMM_STREAMS, read once: the environment's one tunable of the CUDA backend.
int gemm_streams_from_env();

}  // namespace epmoe::cuda
