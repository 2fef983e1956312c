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

int gemm_streams_from_env() {
  static const int streams = [] {
    const char* v = std::getenv("EPMOE_CUDA_GEMM_STREAMS");
    const int n = v ? std::atoi(v) : 4;
    EPMOE_REQUIRE(n >= 1 && n <= 32, ErrorKind::Usage, "EPMOE_CUDA_GEMM_STREAMS must be 1..32, found '", v, "'");
    return n;
  }();
  return streams;
}

ExpertGemmMode expert_gemm_mode_from_env() {
  const char* v = std::getenv("EPMOE_CUDA_EXPERT_GEMM");
  const std::string s = v ? v : "grouped";
  if (s == "grouped") return ExpertGemmMode::Grouped;
  if (s == "streams") return ExpertGemmMode::Streams;
  EPMOE_THROW(ErrorKind::Usage, "EPMOE_CUDA_EXPERT_GEMM must be grouped or streams, found '", s, "'");
}

double expert_group_fill_from_env() {
  const char* v = std::getenv("EPMOE_CUDA_GROUP_FILL");
  if (!v) return 0.9;
  char* end = nullptr;
  const double fill = std::strtod(v, &end);
  EPMOE_REQUIRE(end != v && *end == '\0' && fill >= 0.5 && fill <= 1.0, ErrorKind::Usage,
                "EPMOE_CUDA_GROUP_FILL must be a number in [0.5, 1], found '", v, "'");
  return fill;
}

int expert_pipeline_stages_from_env() {
  const char* v = std::getenv("EPMOE_CUDA_PIPELINE_STAGES");
  if (!v) return 4;
  char* end = nullptr;
  const long stages = std::strtol(v, &end, 10);
  EPMOE_REQUIRE(end != v && *end == '\0' && stages >= 1 && stages <= 8, ErrorKind::Usage,
                "EPMOE_CUDA_PIPELINE_STAGES must be an integer in [1, 8], found '", v, "'");
  return static_cast<int>(stages);
}

long expert_pipeline_min_rows_from_env() {
  const char* v = std::getenv("EPMOE_CUDA_PIPELINE_MIN_ROWS");
  if (!v) return 4096;
  char* end = nullptr;
  const long rows = std::strtol(v, &end, 10);
  EPMOE_REQUIRE(end != v && *end == '\0' && rows >= 1 && rows <= (1L << 30), ErrorKind::Usage,
                "EPMOE_CUDA_PIPELINE_MIN_ROWS must be an integer in [1, 2^30], found '", v, "'");
  return rows;
}

ExpertGemm::ExpertGemm(cublasHandle_t main_handle, cudaStream_t stream, int max_experts)
    : mode_(expert_gemm_mode_from_env()),
      fill_(expert_group_fill_from_env()),
      main_handle_(main_handle),
      stream_(stream),
      max_experts_(max_experts),
      stages_(expert_pipeline_stages_from_env()),
      min_group_rows_(expert_pipeline_min_rows_from_env()) {
  for (int i = 0; i < kMaxStages; ++i) {
    before_done_.emplace_back(false);
    first_done_.emplace_back(false);
    between_done_.emplace_back(false);
  }
  const int lanes = gemm_streams_from_env();
  if (lanes > 1) {
    for (int i = 0; i < lanes; ++i) {
      streams_.push_back(std::make_unique<Stream>());
      handles_.push_back(std::make_unique<CublasHandle>());
      EPMOE_CUBLAS_CHECK(cublasSetStream(handles_.back()->get(), streams_.back()->get()));
      joins_.push_back(std::make_unique<Event>(false));
    }
  }
  const std::size_t bytes = int_bytes() + pointer_slot(kMaxGemms, 0) * sizeof(void*);
  host_.reserve(bytes);
  device_ = DeviceBuffer<unsigned char>(bytes, "expert_gemm_layout");
}

std::size_t ExpertGemm::int_bytes() const {
  return (3 * static_cast<std::size_t>(max_experts_ + 1) * sizeof(int) + 7) / 8 * 8;
}

std::size_t ExpertGemm::pointer_slot(int gemm, int array) const {
  return (static_cast<std::size_t>(gemm) * 3 + array) * std::max(max_experts_, 1);
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
  int* ints = reinterpret_cast<int*>(host_.data());
  // Blocks in bucket order: the layout's rows of expert order_[i] are [base[e], base[e] + block[e]), after those of
  // order_[i - 1]; base[n] = the rows of the layout.
  base_.assign(n + 1, 0);
  int row = 0;
  for (int i = 0; i < n; ++i) {
    base_[order_[i]] = row;
    row += block_[order_[i]];
  }
  base_[n] = row;
  split_into_groups(stages_);
  int* group = ints + 2 * (max_experts_ + 1);
  std::fill(group, group + max_experts_ + 1, -1);
  for (int g = 0; g < static_cast<int>(groups_.size()); ++g)
    for (int c = groups_[g].first_call; c < groups_[g].end_call; ++c)
      for (int q = calls_[c].first; q < calls_[c].first + calls_[c].size; ++q) group[order_[q]] = g;
  std::fill(ints, ints + max_experts_ + 1, 0);  // the scatter's cursors
  std::copy(base_.begin(), base_.end(), ints + max_experts_ + 1);
  gemms_.clear();
  return base_[n];
}

void ExpertGemm::split_into_groups(int stages) {
  calls_.clear();
  groups_.clear();
  long total = 0;
  for (const Bucket& b : buckets_) total += static_cast<long>(b.rows) * b.size;
  if (total == 0) return;
  // Each group should hold about 1/stages of the rows, and at least min_group_rows_ (smaller GEMMs leave SMs idle,
  // and the steps the pipeline hides are short there): a bucket larger than that is split into calls of fewer
  // experts (same M), then consecutive calls are grouped.
  stages = static_cast<int>(std::clamp(total / min_group_rows_, 1L, static_cast<long>(stages)));
  const double target = static_cast<double>(total) / stages;
  for (const Bucket& b : buckets_) {
    const long parts = std::clamp(std::lround(static_cast<double>(b.rows) * b.size / target), 1L,
                                  static_cast<long>(b.size));
    for (long p = 0; p < parts; ++p) {
      const int first = b.first + static_cast<int>(b.size * p / parts);
      const int end = b.first + static_cast<int>(b.size * (p + 1) / parts);
      calls_.push_back(Bucket{b.rows, first, end - first});
    }
  }
  long done = 0;
  Group group{0, 0, 0, 0};
  for (int c = 0; c < static_cast<int>(calls_.size()); ++c) {
    const long rows = static_cast<long>(calls_[c].rows) * calls_[c].size;
    done += rows;
    group.end_call = c + 1;
    group.row_end += static_cast<int>(rows);
    const bool last = c + 1 == static_cast<int>(calls_.size());
    if (last || done >= target * (static_cast<double>(groups_.size()) + 1) - 0.5) {
      groups_.push_back(group);
      group = Group{c + 1, c + 1, group.row_end, group.row_end};
    }
  }
  EPMOE_ASSERT(groups_.size() <= static_cast<std::size_t>(kMaxStages), "pipeline of ", groups_.size(), " groups");
}

void ExpertGemm::prepare(const std::vector<ExpertLinear>& gemms) {
  EPMOE_ASSERT(gemms.size() <= static_cast<std::size_t>(kMaxGemms), "at most ", kMaxGemms, " expert GEMMs a layer");
  gemms_ = gemms;
  const void** pointers = reinterpret_cast<const void**>(host_.data() + int_bytes());
  for (std::size_t g = 0; g < gemms.size(); ++g) {
    const ExpertLinear& l = gemms[g];
    const void** a = pointers + pointer_slot(static_cast<int>(g), 0);
    const void** b = pointers + pointer_slot(static_cast<int>(g), 1);
    const void** c = pointers + pointer_slot(static_cast<int>(g), 2);
    for (std::size_t i = 0; i < order_.size(); ++i) {
      const int e = order_[i];
      // cuBLAS computes the column-major out^T = w . x^T (as linear_bf16): A = the expert's weights, B = its rows.
      a[i] = l.w + static_cast<std::size_t>(e) * l.n * l.ldw;
      b[i] = l.x + static_cast<std::size_t>(base_[e]) * l.ldx;
      c[i] = l.out + static_cast<std::size_t>(base_[e]) * l.ldo;
    }
  }
  // The host buffer may be rewritten once this copy has run: the next plan() comes after the next layer's host
  // synchronization (its count exchange), which the stream orders after this copy.
  EPMOE_CUDA_CHECK(cudaMemcpyAsync(device_.data(), host_.data(),
                                   int_bytes() + pointer_slot(static_cast<int>(gemms.size()), 0) * sizeof(void*),
                                   cudaMemcpyHostToDevice, stream_));
}

void ExpertGemm::run(int gemm) { run_calls(gemm, 0, static_cast<int>(calls_.size())); }

void ExpertGemm::run_pipelined(const GroupStep& before, int first, const RowStep& between, int second) {
  const int stages = static_cast<int>(groups_.size());
  if (stages <= 1) {
    before(-1, stream_);
    run(first);
    if (rows() > 0) between(0, rows(), stream_);
    run(second);
    return;
  }
  cudaStream_t ahead = before_stream_.get(), side = between_stream_.get();
  pipeline_start_.record(stream_);
  EPMOE_CUDA_CHECK(cudaStreamWaitEvent(ahead, pipeline_start_.get(), 0));
  for (int i = 0; i < stages; ++i) {
    before(i, ahead);
    before_done_[i].record(ahead);
  }
  auto run_second = [&](int i) {
    EPMOE_CUDA_CHECK(cudaStreamWaitEvent(stream_, between_done_[i].get(), 0));
    run_calls(second, groups_[i].first_call, groups_[i].end_call);
  };
  for (int i = 0; i < stages; ++i) {
    const Group& g = groups_[i];
    EPMOE_CUDA_CHECK(cudaStreamWaitEvent(stream_, before_done_[i].get(), 0));
    run_calls(first, g.first_call, g.end_call);
    first_done_[i].record(stream_);
    EPMOE_CUDA_CHECK(cudaStreamWaitEvent(side, first_done_[i].get(), 0));
    between(g.row_begin, g.row_end, side);
    between_done_[i].record(side);
    if (i > 0) run_second(i - 1);  // queued after group i's first GEMM: group i's `between` overlaps that
  }
  run_second(stages - 1);
}

void ExpertGemm::run_calls(int gemm, int begin, int end) {
  EPMOE_ASSERT(gemm >= 0 && gemm < static_cast<int>(gemms_.size()), "expert GEMM ", gemm, " was not prepared");
  const ExpertLinear& l = gemms_[gemm];
  void* const* pointers = reinterpret_cast<void* const*>(device_.data() + int_bytes());
  const void* const* a = pointers + pointer_slot(gemm, 0);
  const void* const* b = pointers + pointer_slot(gemm, 1);
  void* const* c = pointers + pointer_slot(gemm, 2);
  const bool fan_out = !streams_.empty() && end - begin > 1;
  load_.assign(fan_out ? streams_.size() : 1, 0);
  if (fan_out) {
    fork_.record(stream_);
    for (auto& st : streams_) EPMOE_CUDA_CHECK(cudaStreamWaitEvent(st->get(), fork_.get(), 0));
  }
  const float alpha = 1.0f, beta = 0.0f;
  for (int call = begin; call < end; ++call) {  // largest rows first, each to the least loaded stream
    const Bucket& bucket = calls_[call];
    int lane = 0;
    if (fan_out) {
      lane = static_cast<int>(std::min_element(load_.begin(), load_.end()) - load_.begin());
      load_[lane] += static_cast<long>(bucket.rows) * bucket.size;
    }
    cublasHandle_t handle = fan_out ? handles_[lane]->get() : main_handle_;
    if (bucket.size == 1) {
      const int e = order_[bucket.first];
      linear_bf16(handle, bucket.rows, l.n, l.k, l.x + static_cast<std::size_t>(base_[e]) * l.ldx, l.ldx,
                  l.w + static_cast<std::size_t>(e) * l.n * l.ldw, l.ldw,
                  l.out + static_cast<std::size_t>(base_[e]) * l.ldo, l.ldo);
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
