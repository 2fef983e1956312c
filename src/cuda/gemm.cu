#include <algorithm>
#include <cstdio>
#include <numeric>

#include "check.cuh"
#include "env.cuh"
#include "gemm.cuh"
// The declaration only (no CUTLASS header): ExpertGemm holds a unique_ptr to it in every build, and constructs one
// only where EPMOE_HAVE_CUTLASS says the kernels were built.
#include "cutlass_gemm.cuh"

namespace epmoe::cuda {

namespace {
// Row-major out[M, N] = x[M, K] w[N, K]^T is column-major out^T[N, M] = w^T ... which cuBLAS computes as
// C(n x m) = op(A = w, transposed) (n x k) . op(B = x) (k x m).
// Operands of type `in`, output of type `out_type`.
template <class In, class Out>
void linear(cublasHandle_t handle, int m, int n, int k, const In* x, int ldx, const In* w, int ldw, Out* out, int ldo,
            cudaDataType_t in, cudaDataType_t out_type, cublasComputeType_t compute) {
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  EPMOE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, in, ldw, x, in, ldx, &beta, out,
                                  out_type, ldo, compute, CUBLAS_GEMM_DEFAULT));
}
}  // namespace

void linear_bf16(cublasHandle_t handle, int m, int n, int k, const bf16* x, int ldx, const bf16* w, int ldw,
                 bf16* out, int ldo) {
  linear(handle, m, n, k, x, ldx, w, ldw, out, ldo, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F);
}

void router_logit_parts_bf16x3(cublasHandle_t handle, int m, int n, int k, const bf16* x, int ldx,
                               const bf16* w_parts, float* out, int ldo) {
  EPMOE_ASSERT(ldo >= 3 * n, "router_logit_parts_bf16x3: row stride ", ldo, " < 3 x ", n);
  // The parts [3, n, k] are one [3n, k] weight.
  linear(handle, m, 3 * n, k, x, ldx, w_parts, k, out, ldo, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F);
}

RouterGemm router_gemm_from_env() {
  return env_choice("EPMOE_CUDA_ROUTER_GEMM", {"bf16x3", "fp32"}) == 0 ? RouterGemm::Bf16x3 : RouterGemm::Fp32;
}

void linear_f32(cublasHandle_t handle, int m, int n, int k, const float* x, int ldx, const float* w, int ldw,
                float* out, int ldo) {
  linear(handle, m, n, k, x, ldx, w, ldw, out, ldo, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_PEDANTIC);
}

int gemm_streams_from_env() {
  static const int streams = static_cast<int>(env_number("EPMOE_CUDA_GEMM_STREAMS", 4, 1, 32, true, "1..32"));
  return streams;
}

ExpertGemmMode expert_gemm_mode_from_env() {
  const int mode = env_choice("EPMOE_CUDA_EXPERT_GEMM", {"grouped", "streams", "cutlass"});
#ifndef EPMOE_HAVE_CUTLASS
  EPMOE_REQUIRE(mode != 2, ErrorKind::Usage,
                "EPMOE_CUDA_EXPERT_GEMM=cutlass: this build has no CUTLASS grouped GEMM (it needs the CUTLASS headers, "
                "which launch/install-deps.sh fetches into .cutlass/, and sm_90 among CMAKE_CUDA_ARCHITECTURES); "
                "reconfigure and rebuild, or use grouped or streams");
#endif
  return mode == 0 ? ExpertGemmMode::Grouped : mode == 1 ? ExpertGemmMode::Streams : ExpertGemmMode::Cutlass;
}

double expert_group_fill_from_env() {
  return env_number("EPMOE_CUDA_GROUP_FILL", 0.9, 0.5, 1.0, false, "a number in [0.5, 1]");
}

ExpertGemm::ExpertGemm(cublasHandle_t main_handle, cudaStream_t stream, int max_experts)
    : mode_(expert_gemm_mode_from_env()),
      fill_(expert_group_fill_from_env()),
      main_handle_(main_handle),
      stream_(stream),
      max_experts_(max_experts) {
  const int lanes = gemm_streams_from_env();
  if (lanes > 1) {
    for (int i = 0; i < lanes; ++i) {
      streams_.push_back(std::make_unique<Stream>());
      handles_.push_back(std::make_unique<CublasHandle>());
      EPMOE_CUBLAS_CHECK(cublasSetStream(handles_.back()->get(), streams_.back()->get()));
      joins_.push_back(std::make_unique<Event>(false));
    }
  }
  slot_bytes_ = 3 * static_cast<std::size_t>(std::max(max_experts_, 1)) * sizeof(void*);
#ifdef EPMOE_HAVE_CUTLASS
  if (mode_ == ExpertGemmMode::Cutlass) {
    cutlass_ = std::make_unique<CutlassGroupedGemm>(std::max(max_experts_, 1));
    slot_bytes_ = std::max(slot_bytes_, cutlass_->block_bytes());
  }
#endif
  const std::size_t bytes = slot_offset(kMaxGemms);
  host_.reserve(bytes);
  device_ = DeviceBuffer<unsigned char>(bytes, "expert_gemm_layout");
}

ExpertGemm::~ExpertGemm() = default;

std::size_t ExpertGemm::int_bytes() const {
  return (2 * static_cast<std::size_t>(max_experts_ + 1) * sizeof(int) + 15) / 16 * 16;
}

int ExpertGemm::plan(const std::vector<int>& offsets) {
  const int n = static_cast<int>(offsets.size()) - 1;
  EPMOE_ASSERT(n >= 0 && n <= max_experts_, "expert GEMM planned for ", n, " experts, sized for ", max_experts_);
  auto count = [&](int e) { return offsets[e + 1] - offsets[e]; };
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) { return count(a) > count(b); });
  int nonzero = 0;
  while (nonzero < n && count(order_[nonzero]) > 0) ++nonzero;
  // Buckets over the experts with pairs, largest first.
  constexpr int kOneTile = 128;
  buckets_.clear();
  block_.assign(n, 0);
  for (int i = 0; i < nonzero;) {
    const int rows = count(order_[i]);
    int j = i + 1;
    if (mode_ == ExpertGemmMode::Grouped) {
      if (rows <= kOneTile)
        j = nonzero;
      else
        while (j < nonzero && count(order_[j]) >= fill_ * rows) ++j;
    }
    buckets_.push_back(Bucket{rows, i, j - i});
    for (int q = i; q < j; ++q) block_[order_[q]] = rows;
    i = j;
  }
  // Blocks in expert order: the layout's rows of expert e are [base[e], base[e] + block[e]).
  base_.assign(n + 1, 0);
  for (int e = 0; e < n; ++e) base_[e + 1] = base_[e] + block_[e];
  int* ints = reinterpret_cast<int*>(host_.data());
  std::fill(ints, ints + max_experts_ + 1, 0);  // the scatter's cursors
  std::copy(base_.begin(), base_.end(), ints + max_experts_ + 1);
  gemms_.clear();
  return base_[n];
}

void ExpertGemm::prepare(const std::vector<ExpertLinear>& gemms) {
  EPMOE_ASSERT(gemms.size() <= static_cast<std::size_t>(kMaxGemms), "at most ", kMaxGemms, " expert GEMMs a layer");
  gemms_ = gemms;
  for (std::size_t g = 0; g < gemms.size(); ++g) {
    const ExpertLinear& l = gemms[g];
    unsigned char* slot = host_.data() + slot_offset(static_cast<int>(g));
#ifdef EPMOE_HAVE_CUTLASS
    const CutlassShape shape{l.n, l.k, l.ldx, l.ldw, l.ldo};
    cutlass_ok_[g] = cutlass_ && CutlassGroupedGemm::supports(shape);
    if (cutlass_ok_[g]) {
      // One group per expert with pairs (a bucket each in this mode), largest first.
      for (std::size_t i = 0; i < buckets_.size(); ++i) {
        const int e = order_[buckets_[i].first];
        cutlass_->set_group(slot, static_cast<int>(i), buckets_[i].rows, l.x_at(base_[e]), l.w_of(e),
                            l.out_at(base_[e]), shape);
      }
      continue;
    }
    if (cutlass_ && !cutlass_fallback_logged_) {
      cutlass_fallback_logged_ = true;
      std::fprintf(stderr,
                   "# epmoe cuda: the CUTLASS grouped GEMM needs widths that are multiples of 8 elements; a GEMM of "
                   "n %d, k %d (leading dimensions %d, %d, %d) runs as one cuBLAS GEMM per expert\n",
                   l.n, l.k, l.ldx, l.ldw, l.ldo);
    }
#endif
    const void** a = reinterpret_cast<const void**>(slot);  // A (weights), B (rows), C (outputs)
    const void** b = a + max_experts_;
    const void** c = b + max_experts_;
    for (std::size_t i = 0; i < order_.size(); ++i) {
      const int e = order_[i];
      // cuBLAS computes the column-major out^T = w . x^T (as linear_bf16): A = the expert's weights, B = its rows.
      a[i] = l.w_of(e);
      b[i] = l.x_at(base_[e]);
      c[i] = l.out_at(base_[e]);
    }
  }
  // The host buffer may be rewritten once this copy has run: the next plan() comes after the next layer's host
  // synchronization (its count exchange), which the stream orders after this copy.
  EPMOE_CUDA_CHECK(cudaMemcpyAsync(device_.data(), host_.data(), slot_offset(static_cast<int>(gemms.size())),
                                   cudaMemcpyHostToDevice, stream_));
}

void ExpertGemm::run(int gemm) {
  EPMOE_ASSERT(gemm >= 0 && gemm < static_cast<int>(gemms_.size()), "expert GEMM ", gemm, " was not prepared");
  const ExpertLinear& l = gemms_[gemm];
#ifdef EPMOE_HAVE_CUTLASS
  if (cutlass_ok_[gemm]) {
    cutlass_->run(device_.data() + slot_offset(gemm), host_.data() + slot_offset(gemm),
                  static_cast<int>(buckets_.size()), stream_);
    return;
  }
#endif
  // The slot's pointer arrays on the device, as prepare() wrote them: A (weights), B (rows), C (outputs).
  void* const* a = reinterpret_cast<void* const*>(device_.data() + slot_offset(gemm));
  void* const* b = a + max_experts_;
  void* const* c = b + max_experts_;
  const bool fan_out = !streams_.empty() && buckets_.size() > 1;
  load_.assign(fan_out ? streams_.size() : 1, 0);
  if (fan_out) {
    fork_.record(stream_);
    for (auto& st : streams_) EPMOE_CUDA_CHECK(cudaStreamWaitEvent(st->get(), fork_.get(), 0));
  }
  const float alpha = 1.0f, beta = 0.0f;
  for (const Bucket& bucket : buckets_) {  // largest rows first, each to the least loaded stream
    int lane = 0;
    if (fan_out) {
      lane = static_cast<int>(std::min_element(load_.begin(), load_.end()) - load_.begin());
      load_[lane] += static_cast<long>(bucket.rows) * bucket.size;
    }
    cublasHandle_t handle = fan_out ? handles_[lane]->get() : main_handle_;
    if (bucket.size == 1) {
      const int e = order_[bucket.first];
      linear_bf16(handle, bucket.rows, l.n, l.k, l.x_at(base_[e]), l.ldx, l.w_of(e), l.ldw, l.out_at(base_[e]), l.ldo);
      continue;
    }
    EPMOE_CUBLAS_CHECK(cublasGemmBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, l.n, bucket.rows, l.k, &alpha,
                                           a + bucket.first, CUDA_R_16BF, l.ldw, b + bucket.first, CUDA_R_16BF,
                                           l.ldx, &beta, c + bucket.first, CUDA_R_16BF, l.ldo, bucket.size,
                                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (fan_out) {
    for (std::size_t i = 0; i < streams_.size(); ++i) {
      joins_[i]->record(streams_[i]->get());
      EPMOE_CUDA_CHECK(cudaStreamWaitEvent(stream_, joins_[i]->get(), 0));
    }
  }
}

}  // namespace epmoe::cuda
