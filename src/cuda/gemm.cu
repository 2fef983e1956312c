#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string>

#include "check.cuh"
#include "gemm.cuh"

namespace epmoe::cuda {

// Row-major out[M, N] = x[M, K] w[N, K]^T is column-major out^T[N, M] = w^T ... which cuBLAS computes as
// C(n x m) = op(A = w, transposed) (n x k) . op(B = x) (k x m).
void linear_bf16(cublasHandle_t handle, int m, int n, int k, const bf16* x, int ldx, const bf16* w, int ldw,
                 bf16* out, int ldo) {
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  EPMOE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, ldw, x,
                                  CUDA_R_16BF, ldx, &beta, out, CUDA_R_16BF, ldo, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
}

void linear_f32(cublasHandle_t handle, int m, int n, int k, const float* x, int ldx, const float* w, int ldw,
                float* out, int ldo) {
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  EPMOE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_32F, ldw, x,
                                  CUDA_R_32F, ldx, &beta, out, CUDA_R_32F, ldo, CUBLAS_COMPUTE_32F_PEDANTIC,
                                  CUBLAS_GEMM_DEFAULT));
}

void grouped_linear_bf16(cublasHandle_t handle, const std::vector<int>& offsets, int n, int k, const bf16* x, int ldx,
                         const bf16* w, int ldw, bf16* out, int ldo) {
  for (std::size_t j = 0; j + 1 < offsets.size(); ++j) {
    const int rows = offsets[j + 1] - offsets[j];
    if (rows == 0) continue;
    linear_bf16(handle, rows, n, k, x + static_cast<std::size_t>(offsets[j]) * ldx, ldx,
                w + j * static_cast<std::size_t>(n) * ldw, ldw, out + static_cast<std::size_t>(offsets[j]) * ldo,
                ldo);
  }
}

void batched_linear_bf16(cublasHandle_t handle, int batch, int m, int n, int k, const bf16* x, int ldx,
                         long long stride_x, const bf16* w, int ldw, long long stride_w, bf16* out, int ldo,
                         long long stride_out) {
  if (batch == 0 || m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  EPMOE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF,
                                                ldw, stride_w, x, CUDA_R_16BF, ldx, stride_x, &beta, out, CUDA_R_16BF,
                                                ldo, stride_out, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

ExpertGemmMode expert_gemm_mode_from_env() {
  const char* v = std::getenv("EPMOE_CUDA_EXPERT_GEMM");
  const std::string s = v ? v : "auto";
  if (s == "auto") return ExpertGemmMode::Auto;
  if (s == "batched") return ExpertGemmMode::Batched;
  if (s == "streams") return ExpertGemmMode::Streams;
  EPMOE_THROW(ErrorKind::Usage, "EPMOE_CUDA_EXPERT_GEMM must be auto, batched or streams, found '", s, "'");
}

int gemm_streams_from_env() {
  static const int streams = [] {
    const char* v = std::getenv("EPMOE_CUDA_GEMM_STREAMS");
    const int n = v ? std::atoi(v) : 4;
    EPMOE_REQUIRE(n >= 1 && n <= 32, ErrorKind::Usage, "EPMOE_CUDA_GEMM_STREAMS must be 1..32, found '", v, "'");
    return n;
  }();
  return streams;
}

ExpertGemm::ExpertGemm(cublasHandle_t main_handle, cudaStream_t stream)
    : mode_(expert_gemm_mode_from_env()), main_handle_(main_handle), stream_(stream) {
  const int lanes = gemm_streams_from_env();
  if (lanes == 1) return;
  for (int i = 0; i < lanes; ++i) {
    streams_.push_back(std::make_unique<Stream>());
    handles_.push_back(std::make_unique<CublasHandle>());
    EPMOE_CUBLAS_CHECK(cublasSetStream(handles_.back()->get(), streams_.back()->get()));
    joins_.push_back(std::make_unique<Event>(false));
  }
}

int ExpertGemm::rows_per_expert(const std::vector<int>& offsets) const {
  const int experts = static_cast<int>(offsets.size()) - 1;
  if (mode_ == ExpertGemmMode::Streams || experts < 1) return 0;
  int largest = 0;
  for (int j = 0; j < experts; ++j) largest = std::max(largest, offsets[j + 1] - offsets[j]);
  if (largest == 0) return 0;
  if (mode_ == ExpertGemmMode::Batched) return largest;
  const long long padded_rows = static_cast<long long>(largest) * experts, pairs = offsets.back();
  return (experts > 1 && (4 * padded_rows <= 5 * pairs || largest <= 128)) ? largest : 0;
}

void ExpertGemm::grouped_linear(const std::vector<int>& offsets, int rows_per_expert, int n, int k, const bf16* x,
                                int ldx, const bf16* w, int ldw, bf16* out, int ldo) {
  if (rows_per_expert > 0) {
    const int experts = static_cast<int>(offsets.size()) - 1;
    batched_linear_bf16(main_handle_, experts, rows_per_expert, n, k, x, ldx,
                        static_cast<long long>(rows_per_expert) * ldx, w, ldw, static_cast<long long>(n) * ldw, out,
                        ldo, static_cast<long long>(rows_per_expert) * ldo);
    return;
  }
  if (streams_.empty()) {
    grouped_linear_bf16(main_handle_, offsets, n, k, x, ldx, w, ldw, out, ldo);
    return;
  }
  const int experts = static_cast<int>(offsets.size()) - 1;
  order_.resize(experts);
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) {
    return offsets[a + 1] - offsets[a] > offsets[b + 1] - offsets[b];
  });
  const int lanes = static_cast<int>(streams_.size());
  load_.assign(lanes, 0);
  fork_.record(stream_);
  for (int i = 0; i < lanes; ++i) EPMOE_CUDA_CHECK(cudaStreamWaitEvent(streams_[i]->get(), fork_.get(), 0));
  for (int j : order_) {
    const int rows = offsets[j + 1] - offsets[j];
    if (rows == 0) break;  // sorted: the rest are empty
    const int lane = static_cast<int>(std::min_element(load_.begin(), load_.end()) - load_.begin());
    load_[lane] += rows;
    linear_bf16(handles_[lane]->get(), rows, n, k, x + static_cast<std::size_t>(offsets[j]) * ldx, ldx,
                w + static_cast<std::size_t>(j) * n * ldw, ldw, out + static_cast<std::size_t>(offsets[j]) * ldo, ldo);
  }
  for (int i = 0; i < lanes; ++i) {
    joins_[i]->record(streams_[i]->get());
    EPMOE_CUDA_CHECK(cudaStreamWaitEvent(stream_, joins_[i]->get(), 0));
  }
}

}  // namespace epmoe::cuda
