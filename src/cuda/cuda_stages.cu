#include "cuda_stages.cuh"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>

#include "env.cuh"
#include "epmoe/error.hpp"

namespace epmoe::cuda {
namespace {

// Grow-on-demand sizes keep some headroom so that routing noise between forwards does not reallocate again.
std::size_t with_headroom(std::size_t n) { return n + n / 4 + 64; }

}  // namespace

CountExchange count_exchange_from_env() {
  return env_choice("EPMOE_CUDA_COUNT_EXCHANGE", {"mpi", "nccl"}) == 0 ? CountExchange::Mpi : CountExchange::Nccl;
}

SharedStart shared_start_from_env() {
  const int choice = env_choice("EPMOE_CUDA_SHARED_START", {"pushed", "push", "route", "experts"});
  constexpr SharedStart kStarts[] = {SharedStart::Pushed, SharedStart::Push, SharedStart::Route, SharedStart::Experts};
  return kStarts[choice];
}

PhaseClock::PhaseClock(PhaseTimes& times) : times_(times) {
  for (int i = 0; i < 64; ++i) events_.emplace_back(true);
}

int PhaseClock::begin(double PhaseTimes::*phase, cudaStream_t stream) {
  EPMOE_ASSERT(2 * used_ + 1 < static_cast<int>(events_.size()), "too many timed phases in one forward");
  const int slot = used_++;
  phases_.resize(used_);
  ended_.resize(used_);
  phases_[slot] = phase;
  ended_[slot] = 0;
  events_[2 * slot].record(stream);
  return slot;
}

void PhaseClock::end(int slot, cudaStream_t stream) {
  events_[2 * slot + 1].record(stream);
  ended_[slot] = 1;
}

void PhaseClock::collect() {
  for (int i = 0; i < used_; ++i)
    if (ended_[i]) times_.*phases_[i] += elapsed_seconds(events_[2 * i], events_[2 * i + 1]);
  used_ = 0;
}

namespace {
// Times one stage: begin at construction, end at scope exit (only on success; a throw abandons the forward).
class StageTimer {
 public:
  StageTimer(PhaseClock& clock, double PhaseTimes::*phase, cudaStream_t stream)
      : clock_(clock), stream_(stream), slot_(clock.begin(phase, stream)) {}
  ~StageTimer() {
    if (std::uncaught_exceptions() == 0) clock_.end(slot_, stream_);
  }

 private:
  PhaseClock& clock_;
  cudaStream_t stream_;
  int slot_;
};
}  // namespace

CudaStages::CudaStages(const ModelConfig& model, const UnpadPlan& plan, const ParallelConfig& parallel,
                       const MpiComm& comm, const NcclComm& nccl, DeviceWeights weights, int max_tokens,
                       PhaseTimes& times)
    : model_(model),
      plan_(plan),
      nccl_(nccl),
      comm_(comm),
      count_exchange_(count_exchange_from_env()),
      shared_start_(shared_start_from_env()),
      router_gemm_(router_gemm_from_env()),
      placement_(model.num_experts, comm.size(), parallel),
      max_local_(placement_.max_experts_per_rank()),
      weights_(std::move(weights)),
      clock_(times),
      act_{model.activation, model.swiglu_alpha, model.swiglu_limit} {
  EPMOE_ASSERT(weights_.num_local == static_cast<int>(placement_.experts_of(comm_.rank()).size()),
               "device weights hold ", weights_.num_local, " experts, placement gives this rank ",
               placement_.experts_of(comm_.rank()).size());
  EPMOE_REQUIRE(model.top_k <= 32, ErrorKind::Config, "the CUDA backend supports top_k <= 32 (model has ",
                model.top_k, ")");
  EPMOE_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
  expert_gemm_ = std::make_unique<ExpertGemm>(cublas_.get(), stream_.get(), max_local_);
  EPMOE_CUBLAS_CHECK(cublasSetStream(side_cublas_.get(), side_stream_.get()));
  // EPMOE_CUDA_SHARED_SMS = 0 (default: all) | N: the shared expert's GEMMs aim at N SMs, so that the dispatch's
  // push kernel beside them (EPMOE_CUDA_SHARED_START=push) keeps the others.
  {
    int device = 0, count = 0;
    EPMOE_CUDA_CHECK(cudaGetDevice(&device));
    EPMOE_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    const std::string what = "0 (all) or a number of SMs up to " + std::to_string(count);
    const int sms = static_cast<int>(env_number("EPMOE_CUDA_SHARED_SMS", 0, 0, count, true, what.c_str()));
    if (sms > 0) EPMOE_CUBLAS_CHECK(cublasSetSmCountTarget(side_cublas_.get(), sms));
  }
  std::vector<int> owner(model.num_experts), local(model.num_experts);
  for (int e = 0; e < model.num_experts; ++e) {
    owner[e] = placement_.owner(e);
    local[e] = placement_.local_index(e);
  }
  owner_ = DeviceBuffer<int>(owner.size(), "expert_owner");
  local_ = DeviceBuffer<int>(local.size(), "expert_local");
  EPMOE_CUDA_CHECK(cudaMemcpy(owner_.data(), owner.data(), owner.size() * sizeof(int), cudaMemcpyHostToDevice));
  EPMOE_CUDA_CHECK(cudaMemcpy(local_.data(), local.data(), local.size() * sizeof(int), cudaMemcpyHostToDevice));
  const std::size_t count_entries = static_cast<std::size_t>(comm_.size()) * (1 + max_local_);
  counts_ = DeviceBuffer<int>(2 * count_entries, "counts");
  local_counts_ = DeviceBuffer<int>(std::max(1, max_local_), "local_counts");
  counts_host_.reserve(2 * count_entries);
  make_symmetric_dispatch(max_tokens);
  reserve_tokens(max_tokens);
  not_bf16_.reserve(1);  // page-locked: the conversion kernel writes it through the same address
}

void CudaStages::make_symmetric_dispatch(int max_tokens) {
  const int choice = env_choice("EPMOE_CUDA_DISPATCH", {"auto", "nccl", "symmetric"});
  const int combine = env_choice("EPMOE_CUDA_COMBINE", {"auto", "nccl", "symmetric"});
  if (plan_.shape.mode != Mode::AllToAll) return;
  const auto no_symmetric_combine = [combine](const std::string& why) {
    EPMOE_REQUIRE(combine != 2, ErrorKind::Usage,
                  "EPMOE_CUDA_COMBINE=symmetric needs the symmetric dispatch's windows, which this run does not use (",
                  why, "); use EPMOE_CUDA_COMBINE=nccl or auto");
  };
  if (choice == 1) return no_symmetric_combine("EPMOE_CUDA_DISPATCH=nccl");
  std::string why;
  // Collective decision: a window is registered by all ranks or by none.
  const bool here = SymmetricDispatch::available(nccl_, &why);
  const bool everywhere = comm_.max(here ? 0.0 : 1.0) == 0.0;
  if (!everywhere) {
    if (why.empty()) why = "another rank cannot reach every rank's GPU memory by load/store";
    EPMOE_REQUIRE(choice != 2, ErrorKind::Usage, "EPMOE_CUDA_DISPATCH=symmetric: ", why,
                  "; use EPMOE_CUDA_DISPATCH=nccl (or auto)");
    if (comm_.rank() == 0) std::fprintf(stderr, "# epmoe cuda: dispatch over NCCL send/recv: %s\n", why.c_str());
    return no_symmetric_combine(why);
  }
  combine_path_ = combine == 1 ? CombinePath::Nccl : CombinePath::Symmetric;
  symmetric_ = std::make_unique<SymmetricDispatch>(comm_, nccl_, plan_.shape.expert_width, model_.top_k, max_local_,
                                                   max_tokens, combine_path_ == CombinePath::Symmetric);
}

void CudaStages::reserve_tokens(int tokens) {
  if (tokens <= token_capacity_) return;
  if (token_capacity_ > 0)
    std::fprintf(stderr, "# epmoe cuda: rank %d grows its token buffers from %d to %d tokens\n", comm_.rank(),
                 token_capacity_, tokens);
  token_capacity_ = tokens;
  const std::size_t T = tokens, D = model_.hidden_size, E = model_.num_experts, K = model_.top_k;
  const std::size_t Din = plan_.shape.expert_width, R = comm_.size();
  const std::size_t fanout = std::min<std::size_t>(R, K);  // destinations per token at most
  x_f32_.reserve(T * D, false);
  x_.reserve(T * D, false);
  out_f32_.reserve(T * D, false);
  logits_.reserve(T * E * (router_gemm_ == RouterGemm::Bf16x3 ? 3 : 1), false);  // bf16x3: three parts
  ids_.reserve(T * K, false);
  routing_weights_.reserve(T * K, false);
  if (model_.has_latent()) latent_x_.reserve(T * Din, false);
  flags_.reserve(R * T, false);
  positions_.reserve(R * T, false);
  meta_local_.reserve(T * 2 * K, false);
  routed_.reserve(T * Din, false);
  up_.reserve(T * D, false);
  shared_out_.reserve(T * D, false);
  reduce_.reserve(T * (Din + D), false);
  if (model_.has_shared()) {
    const std::size_t parts = model_.gated() ? 2 : 1;
    shared_h_.reserve(T * parts * weights_.shared_inter, false);
    shared_a_.reserve(T * weights_.shared_inter, false);
  }
  if (!symmetric_) {  // the symmetric dispatch writes straight into the receivers' windows
    send_rows_.reserve(T * fanout * Din, false);
    send_meta_.reserve(T * fanout * 2 * K, false);
  }
  // The NCCL combine's buffers: the experts' sums (partial) and the rows back (the symmetric combine uses the windows).
  const bool nccl_combine = plan_.shape.mode == Mode::AllToAll && combine_path_ == CombinePath::Nccl;
  if (nccl_combine) back_.reserve(T * fanout * Din, false);
  // Expected traffic with balanced routing; larger batches grow these with a log line.
  const std::size_t rows = plan_.shape.mode == Mode::AllToAll ? T * fanout : T;
  const std::size_t pairs = T * K;
  if (!symmetric_) {  // the symmetric dispatch receives into its window
    recv_rows_.reserve(rows * Din, false);
    recv_meta_.reserve(rows * 2 * K, false);
  }
  if (nccl_combine) partial_.reserve(rows * Din, false);
  pair_pos_.reserve(rows * K, false);
  // The experts' GEMM rows: the pairs with room for the grouped layout (ExpertGemm: some padding, or up to 128 rows
  // per expert).
  reserve_gemm_rows(std::max(with_headroom(pairs), static_cast<std::size_t>(weights_.num_local) * 128), false,
                    stream());
  cub_temp_.reserve(cub_temp_bytes(static_cast<int>(R * T)), false);
  x_f32_.set_name("x_f32");
  recv_rows_.set_name("recv_rows");
  recv_meta_.set_name("recv_meta");
  partial_.set_name("partial");
  pair_pos_.set_name("pair_pos");
  row_expert_.set_name("row_expert");
  x_sorted_.set_name("x_sorted");
  h_.set_name("h");
  a_.set_name("a");
  y_.set_name("y");
  cub_temp_.set_name("cub_temp");
}

void CudaStages::reserve_gemm_rows(std::size_t rows, bool log, cudaStream_t stream) {
  const std::size_t Dp = plan_.expert_width_padded, I = model_.moe_intermediate_size, R13 = model_.w13_rows();
  if (!x_sorted_.reserve(rows * Dp, log)) return;
  row_expert_.reserve(rows, log);
  h_.reserve(rows * R13, log);
  a_.reserve(rows * I, log);
  y_.reserve(rows * Dp, log);
  // Blocks longer than their expert's pairs compute rows that are never read; give them defined (zero) inputs.
  EPMOE_CUDA_CHECK(cudaMemsetAsync(x_sorted_.data(), 0, x_sorted_.bytes(), stream));
}

std::size_t CudaStages::device_bytes() const {
  return weights_.bytes() + x_f32_.bytes() + x_.bytes() + out_f32_.bytes() + logits_.bytes() + ids_.bytes() +
         routing_weights_.bytes() + latent_x_.bytes() + flags_.bytes() + positions_.bytes() + meta_local_.bytes() +
         routed_.bytes() + up_.bytes() + shared_out_.bytes() + reduce_.bytes() + shared_h_.bytes() +
         shared_a_.bytes() + send_rows_.bytes() + send_meta_.bytes() + back_.bytes() + recv_rows_.bytes() +
         recv_meta_.bytes() + partial_.bytes() + pair_pos_.bytes() + row_expert_.bytes() + x_sorted_.bytes() +
         h_.bytes() + a_.bytes() + y_.bytes() + cub_temp_.bytes() + counts_.bytes() + local_counts_.bytes() +
         owner_.bytes() + local_.bytes() + (symmetric_ ? symmetric_->bytes() : 0);
}

CudaStages::Rows CudaStages::stage_input(const Matrix<float>& x) {
  reserve_tokens(x.rows());
  const std::size_t n = x.size();
  // Whether every value is a bf16 (a model's activations are; the tests' too), found by the conversion's own pass.
  not_bf16_.data()[0] = 0;
  if (n) {
    EPMOE_CUDA_CHECK(cudaMemcpyAsync(x_f32_.data(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream()));
    convert_f32_to_bf16(x_f32_.data(), x_.data(), n, stream(), not_bf16_.data());
  }
  EPMOE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  x_bf16_ = *reinterpret_cast<volatile const int*>(not_bf16_.data()) == 0;
  return Rows{x_.data(), x.rows(), x.cols()};
}

void CudaStages::fetch_output(const Rows& out, Matrix<float>& result, epmoe::Routing& routing) {
  const int T = out.rows, K = model_.top_k;
  result = Matrix<float>(T, out.cols);
  routing.ids = Matrix<int>(T, K);
  routing.weights = Matrix<float>(T, K);
  if (T > 0) {
    convert_bf16_to_f32(out.data, out_f32_.data(), out.size(), stream());
    EPMOE_CUDA_CHECK(cudaMemcpyAsync(result.data(), out_f32_.data(), out.size() * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream()));
    EPMOE_CUDA_CHECK(cudaMemcpyAsync(routing.ids.data(), ids_.data(), routing.ids.size() * sizeof(int),
                                     cudaMemcpyDeviceToHost, stream()));
    EPMOE_CUDA_CHECK(cudaMemcpyAsync(routing.weights.data(), routing_weights_.data(),
                                     routing.weights.size() * sizeof(float), cudaMemcpyDeviceToHost, stream()));
  }
  finish_forward();
}

void CudaStages::finish_forward() {
  EPMOE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  if (symmetric_) symmetric_->check_timeouts();
  clock_.collect();
}

void CudaStages::start_shared_expert(SharedStart at) {
  if (at != shared_start_ || shared_in_flight_ || plan_.shape.mode != Mode::AllToAll || !model_.has_shared()) return;
  input_ready_.record(stream());
  EPMOE_CUDA_CHECK(cudaStreamWaitEvent(side_stream_.get(), input_ready_.get(), 0));
  {
    StageTimer shared(clock_, &PhaseTimes::shared, side_stream_.get());
    run_shared_expert(Rows{x_.data(), token_rows_, model_.hidden_size}, shared_out_.data(), side_cublas_.get(),
                      side_stream_.get());
  }
  shared_ready_.record(side_stream_.get());
  shared_in_flight_ = true;
}

CudaStages::Routing CudaStages::route(const Rows& x) {
  EPMOE_ASSERT(x.data == x_.data() && x.cols == model_.hidden_size, "route must see the staged input");
  token_rows_ = x.rows;
  start_shared_expert(SharedStart::Route);
  StageTimer timer(clock_, &PhaseTimes::route, stream());
  const int T = x.rows, E = model_.num_experts, D = model_.hidden_size;
  // fp32 logits either way: three parts from one bf16 GEMM on tensor cores when the input is bf16 (top-k sums
  // them), else the fp32 GEMM.
  const bool parts = x_bf16_ && router_gemm_ == RouterGemm::Bf16x3;
  if (parts)
    router_logit_parts_bf16x3(cublas_.get(), T, E, D, x_.data(), D, weights_.router_split.data(), logits_.data(),
                              3 * E);
  else
    linear_f32(cublas_.get(), T, E, D, x_f32_.data(), D, weights_.router_weight.data(), D, logits_.data(), E);
  RouterParams p{T,
                 E,
                 model_.top_k,
                 model_.scoring_func == ScoringFunc::Sigmoid,
                 model_.topk_method == TopkMethod::Grouped && model_.n_group > 1,
                 model_.n_group,
                 model_.topk_group,
                 model_.norm_topk_prob,
                 parts ? 3 : 1};
  const float* router_bias = weights_.router_bias.size() ? weights_.router_bias.data() : nullptr;
  if (forced_) {
    EPMOE_REQUIRE(forced_ids_.rows() == T && forced_ids_.cols() == model_.top_k, ErrorKind::Input,
                  "forced expert ids are [", forced_ids_.rows(), ", ", forced_ids_.cols(), "], expected [", T, ", ",
                  model_.top_k, "]");
    EPMOE_CUDA_CHECK(cudaMemcpyAsync(ids_.data(), forced_ids_.data(), forced_ids_.size() * sizeof(int),
                                     cudaMemcpyHostToDevice, stream()));
    router_weights_for_ids(logits_.data(), router_bias, ids_.data(), p, routing_weights_.data(), stream());
  } else {
    router_topk(logits_.data(), router_bias,
                weights_.correction_bias.size() ? weights_.correction_bias.data() : nullptr, p, ids_.data(),
                routing_weights_.data(), stream());
  }
  return Routing{ids_.data(), routing_weights_.data(), T};
}

CudaStages::Rows CudaStages::latent_down(const Rows& x) {
  StageTimer timer(clock_, &PhaseTimes::latent, stream());
  const int L = model_.latent_size, D = model_.hidden_size;
  linear_bf16(cublas_.get(), x.rows, L, D, x.data, D, weights_.latent_down.data(), D, latent_x_.data(), L);
  return Rows{latent_x_.data(), x.rows, L};
}

std::vector<int> CudaStages::offsets_from_counts(const int* counts) const {
  std::vector<int> offsets(weights_.num_local + 1, 0);
  for (int j = 0; j < weights_.num_local; ++j) offsets[j + 1] = offsets[j] + counts[j];
  return offsets;
}

CudaStages::Batch CudaStages::dispatch(const Rows& xr, const Routing& routing) {
  StageTimer timer(clock_, &PhaseTimes::dispatch, stream());
  const int T = xr.rows, Din = xr.cols, K = model_.top_k, R = comm_.size(), stride = 1 + max_local_;
  EPMOE_ASSERT(Din == plan_.shape.expert_width, "dispatch width ", Din, " instead of the unpadded ",
               plan_.shape.expert_width);
  cudaStream_t s = stream();
  trace_.gpu(ForwardTrace::kRouted, s);
  if (symmetric_) symmetric_->begin_forward();
  trace_.host(ForwardTrace::kHostDispatch);
  const std::size_t entries = static_cast<std::size_t>(R) * stride;
  int* counts_send = counts_.data();
  const int counts_slot = clock_.begin(&PhaseTimes::dispatch_counts, s);
  // Layout: which (rank, token) rows exist, where each goes in the send buffer, and the counts to exchange.
  dispatch_layout(routing.ids, T, K, owner_.data(), local_.data(), R, max_local_, flags_.data(), positions_.data(),
                  counts_send, cub_temp_, s);
  trace_.gpu(ForwardTrace::kLayout, s);

  // The counts on the host: `sent` [R, stride] of this rank, `got` [R, stride] from each rank.
  int* sent = counts_host_.data();
  int* got = sent + entries;
  if (symmetric_) {
    // Counts and rows go straight into the receivers' windows; the host waits for the counts while the rows move.
    symmetric_->exchange_counts(counts_send, s, trace_);
    clock_.end(counts_slot, s);
    trace_.gpu(ForwardTrace::kCounts, s);
    start_shared_expert(SharedStart::Push);
    {
      StageTimer exchange(clock_, &PhaseTimes::dispatch_exchange, s);
      symmetric_->push(xr.data, routing.ids, routing.weights, T, owner_.data(), local_.data(), flags_.data(),
                       positions_.data(), s, trace_);
      symmetric_->wait_rows();
      start_shared_expert(SharedStart::Pushed);
      symmetric_->join_rows();
    }
    trace_.gpu(ForwardTrace::kPayload, s);
    const int* all = symmetric_->host_counts();  // [source, destination, stride]: the layer's one host sync
    trace_.host(ForwardTrace::kHostCounts);
    const int me = comm_.rank();
    const SymmetricLayout& L = symmetric_->layout();
    std::copy_n(all + L.counts_at(me, 0), entries, sent);
    for (int r = 0; r < R; ++r) std::copy_n(all + L.counts_at(r, me), stride, got + r * stride);
  } else {
    exchange_counts_host(xr, routing, sent, got, counts_slot);
    trace_.host(ForwardTrace::kHostCounts);
  }

  Batch b;
  b.home_tokens = T;
  b.rows_to.resize(R);
  b.rows_from.resize(R);
  std::vector<int> expert_counts(weights_.num_local, 0);
  std::size_t received = 0, sent_rows = 0;
  for (int r = 0; r < R; ++r) {
    b.rows_to[r] = sent[r * stride];
    b.rows_from[r] = got[r * stride];
    received += b.rows_from[r];
    sent_rows += b.rows_to[r];
    for (int j = 0; j < weights_.num_local; ++j) expert_counts[j] += got[r * stride + 1 + j];
  }
  b.expert_offsets = offsets_from_counts(expert_counts.data());
  last_dispatch_bytes = sent_rows * (Din * sizeof(bf16) + 2 * K * sizeof(int));
  last_rows_received = received;
  if (symmetric_) {
    EPMOE_ASSERT(received <= symmetric_->layout().row_capacity, "received ", received, " rows, window holds ",
                 symmetric_->layout().row_capacity);
    b.rows = Rows{symmetric_->rows(), static_cast<int>(received), Din};
    b.meta = symmetric_->meta();
    return b;
  }
  if (recv_rows_.size() < received * Din) recv_rows_.reserve(with_headroom(received) * Din);
  if (recv_meta_.size() < received * 2 * K) recv_meta_.reserve(with_headroom(received) * 2 * K);
  // The payload: rows and their pairs in one NCCL group.
  std::vector<std::size_t> row_send(R), row_recv(R), meta_send(R), meta_recv(R);
  for (int r = 0; r < R; ++r) {
    row_send[r] = b.rows_to[r] * Din;
    row_recv[r] = b.rows_from[r] * Din;
    meta_send[r] = b.rows_to[r] * 2 * K;
    meta_recv[r] = b.rows_from[r] * 2 * K;
  }
  start_shared_expert(SharedStart::Push);
  {
    StageTimer exchange(clock_, &PhaseTimes::dispatch_exchange, s);
    nccl_.alltoallv_group(
        std::vector<NcclComm::Exchange>{
            make_exchange(send_rows_.contiguous_const(sent_rows * Din), recv_rows_.contiguous(received * Din),
                          row_send, row_recv),
            make_exchange(send_meta_.contiguous_const(sent_rows * 2 * K), recv_meta_.contiguous(received * 2 * K),
                          meta_send, meta_recv)},
        s);
  }
  start_shared_expert(SharedStart::Pushed);  // NCCL's rows are sent and received in one group
  trace_.gpu(ForwardTrace::kPayload, s);
  b.rows = Rows{recv_rows_.data(), static_cast<int>(received), Din};
  b.meta = recv_meta_.data();
  return b;
}

void CudaStages::exchange_counts_host(const Rows& xr, const Routing& routing, int* sent, int* got, int counts_slot) {
  const int T = xr.rows, Din = xr.cols, K = model_.top_k, R = comm_.size(), stride = 1 + max_local_;
  const std::size_t entries = static_cast<std::size_t>(R) * stride;
  cudaStream_t s = stream();
  int* counts_send = counts_.data();
  // The pack runs on its own stream, beside the count exchange and while the host waits for the counts.
  layout_ready_.record(s);
  EPMOE_CUDA_CHECK(cudaStreamWaitEvent(pack_stream_.get(), layout_ready_.get(), 0));
  pack_dispatch(xr.data, Din, routing.ids, routing.weights, T, K, owner_.data(), local_.data(), R, flags_.data(),
                positions_.data(), send_rows_.data(), send_meta_.data(), pack_stream_.get());
  packed_.record(pack_stream_.get());
  // The count exchange: the one host synchronization of the layer. Over MPI (the default): the sent counts come
  // to the host and the ranks swap them there, a few microseconds where an NCCL all-to-all of a few hundred bytes
  // and its copy back take tens (EPMOE_CUDA_COUNT_EXCHANGE=nccl keeps that path for comparison).
  const bool on_device = count_exchange_ == CountExchange::Nccl;
  if (on_device) {
    const std::vector<std::size_t> per_rank(R, static_cast<std::size_t>(stride));
    nccl_.alltoallv_group(std::vector<NcclComm::Exchange>{make_exchange(counts_.contiguous_const(entries),
                                                                        counts_.contiguous(entries, entries),
                                                                        per_rank, per_rank)},
                          s);
  }
  EPMOE_CUDA_CHECK(cudaMemcpyAsync(sent, counts_send, (on_device ? 2 : 1) * entries * sizeof(int),
                                   cudaMemcpyDeviceToHost, s));
  clock_.end(counts_slot, s);
  counts_ready_.record(s);
  EPMOE_CUDA_CHECK(cudaStreamWaitEvent(s, packed_.get(), 0));
  EPMOE_CUDA_CHECK(cudaEventSynchronize(counts_ready_.get()));
  if (!on_device)
    comm_.alltoall(Contiguous<const int>::from_contiguous_storage(sent, entries),
                   Contiguous<int>::from_contiguous_storage(got, entries), stride);
}

CudaStages::Batch CudaStages::select_local(const Rows& xr, const Routing& routing) {
  StageTimer timer(clock_, &PhaseTimes::dispatch, stream());
  const int T = xr.rows, K = model_.top_k, n = weights_.num_local;
  cudaStream_t s = stream();
  EPMOE_CUDA_CHECK(cudaMemsetAsync(local_counts_.data(), 0, local_counts_.bytes(), s));
  select_local_meta(routing.ids, routing.weights, T, K, owner_.data(), local_.data(), comm_.rank(),
                    meta_local_.data(), local_counts_.data(), s);
  // The pair counts per local expert drive the grouped GEMM from the host: the layer's one synchronization.
  EPMOE_CUDA_CHECK(
      cudaMemcpyAsync(counts_host_.data(), local_counts_.data(), n * sizeof(int), cudaMemcpyDeviceToHost, s));
  EPMOE_CUDA_CHECK(cudaStreamSynchronize(s));
  Batch b;
  b.rows = xr;
  b.meta = meta_local_.data();
  b.home_tokens = T;
  b.expert_offsets = offsets_from_counts(counts_host_.data());
  last_dispatch_bytes = 0;
  last_rows_received = T;
  return b;
}

CudaStages::Partial CudaStages::experts(const Batch& batch) {
  start_shared_expert(SharedStart::Experts);
  StageTimer timer(clock_, &PhaseTimes::experts, stream());
  const int N = batch.rows.rows, Din = plan_.shape.expert_width, Dp = plan_.expert_width_padded;
  const int K = model_.top_k, I = model_.moe_intermediate_size, R13 = model_.w13_rows();
  EPMOE_ASSERT(batch.rows.cols == Din, "experts input width ", batch.rows.cols, " instead of the unpadded ", Din);
  cudaStream_t s = stream();
  // Output: contiguous rows of the unpadded width (alltoall: one per received row; allreduce: the first segment
  // of the one all-reduce buffer), or none: the symmetric combine forms the sums on their way home.
  const bool sums_here = combine_path_ == CombinePath::Nccl;
  bf16* out = nullptr;
  if (plan_.shape.mode == Mode::AllReduce) {
    out = reduce_.data();
  } else if (sums_here) {
    if (partial_.size() < static_cast<std::size_t>(N) * Din) partial_.reserve(with_headroom(N) * Din);
    out = partial_.data();
  }
  const int pairs = batch.expert_offsets.back();
  last_pairs = pairs;
  if (N == 0) return Partial{Rows{out, 0, Din}, y_.data(), Dp, pair_pos_.data(), batch.meta};
  const std::size_t slots = static_cast<std::size_t>(N) * K;
  if (pair_pos_.size() < slots) pair_pos_.reserve(with_headroom(slots));
  // The GEMMs' row layout: each expert's block of rows, sized by its bucket (ExpertGemm: grouped GEMMs).
  const std::size_t gemm_rows = expert_gemm_->plan(batch.expert_offsets);
  if (x_sorted_.size() < gemm_rows * Dp) reserve_gemm_rows(with_headroom(gemm_rows), true, s);
  expert_gemm_->prepare({ExpertLinear{R13, Dp, x_sorted_.data(), Dp, weights_.w13.data(), Dp, h_.data(), R13},
                         ExpertLinear{Dp, I, a_.data(), I, weights_.w2.data(), I, y_.data(), Dp}});
  // Each pair's row into its expert's block, padded on entry (the GEMMs see width Dp with zero lanes beyond Din);
  // rows of a block past its pairs stay marked -1 for the activation to skip.
  {
    StageTimer scatter(clock_, &PhaseTimes::expert_scatter, s);
    EPMOE_CUDA_CHECK(cudaMemsetAsync(row_expert_.data(), 0xff, gemm_rows * sizeof(int), s));
    scatter_pairs(batch.rows.data, N, Din, Dp, batch.meta, K, expert_gemm_->device_layout(), x_sorted_.data(),
                  pair_pos_.data(), row_expert_.data(), s);
  }
  {
    StageTimer gemms(clock_, &PhaseTimes::expert_gemms, s);
    expert_gemm_->run(0);  // h = x . w13^T
    bias_activation(h_.data(), static_cast<int>(gemm_rows), R13, I,
                    weights_.b13.size() ? weights_.b13.data() : nullptr, row_expert_.data(), act_, a_.data(), s);
    expert_gemm_->run(1);  // y = a . w2^T
  }
  const Partial result{Rows{out, N, Din}, y_.data(), Dp, pair_pos_.data(), batch.meta};
  if (sums_here) {
    // The trim: the weighted sum reads padded rows and writes contiguous rows of width Din.
    StageTimer sum(clock_, &PhaseTimes::weighted_sum, s);
    weighted_sum(y_.data(), Dp, pair_pos_.data(), batch.meta, N, K, Din,
                 weights_.b2.size() ? weights_.b2.data() : nullptr, model_.routed_scaling_factor, out, s);
  }
  trace_.gpu(ForwardTrace::kExperts, s);
  return result;
}

CudaStages::Rows CudaStages::combine(const Partial& partial, const Batch& batch) {
  StageTimer timer(clock_, &PhaseTimes::combine, stream());
  const int Din = partial.rows.cols, R = comm_.size(), T = batch.home_tokens;
  EPMOE_ASSERT(Din == plan_.shape.expert_width, "combine input width ", Din);
  last_combine_bytes = partial.rows.size() * sizeof(bf16);  // one row per received row goes home
  if (combine_path_ == CombinePath::Symmetric) {
    // The trim happens here: each received row's weighted sum, written at width Din into its home's window.
    EPMOE_ASSERT(!partial.rows.data && partial.pair_out == y_.data(), "the symmetric combine sums the pairs itself");
    {
      StageTimer exchange(clock_, &PhaseTimes::combine_exchange, stream());
      symmetric_->send_back(partial.pair_out, partial.padded, partial.pair_pos, partial.meta, partial.rows.rows,
                            weights_.b2.size() ? weights_.b2.data() : nullptr, model_.routed_scaling_factor,
                            stream());
      symmetric_->wait_back(stream());
    }
    combine_sum(symmetric_->back_rows(), Din, flags_.data(), positions_.data(), T, R, routed_.data(), stream());
    trace_.gpu(ForwardTrace::kCombined, stream());
    return Rows{routed_.data(), T, Din};
  }
  EPMOE_ASSERT(partial.rows.data == partial_.data(), "the NCCL combine sends the experts' sums");
  std::vector<std::size_t> send(R), recv(R);
  std::size_t sent_back = 0, coming_back = 0;
  for (int r = 0; r < R; ++r) {
    send[r] = batch.rows_from[r] * Din;
    recv[r] = batch.rows_to[r] * Din;
    sent_back += send[r];
    coming_back += recv[r];
  }
  {
    StageTimer exchange(clock_, &PhaseTimes::combine_exchange, stream());
    nccl_.alltoallv_group(std::vector<NcclComm::Exchange>{make_exchange(partial_.contiguous_const(sent_back),
                                                                        back_.contiguous(coming_back), send, recv)},
                          stream());
  }
  combine_sum(back_.data(), Din, flags_.data(), positions_.data(), T, R, routed_.data(), stream());
  trace_.gpu(ForwardTrace::kCombined, stream());
  return Rows{routed_.data(), T, Din};
}

CudaStages::Rows CudaStages::latent_up(const Rows& routed) {
  StageTimer timer(clock_, &PhaseTimes::latent, stream());
  const int L = model_.latent_size, D = model_.hidden_size;
  EPMOE_ASSERT(routed.cols == L, "latent up-projection fed width ", routed.cols, " instead of the unpadded latent ",
               L);
  linear_bf16(cublas_.get(), routed.rows, D, L, routed.data, L, weights_.latent_up.data(), L, up_.data(), D);
  return Rows{up_.data(), routed.rows, D};
}

void CudaStages::run_shared_expert(const Rows& x, bf16* out, cublasHandle_t handle, cudaStream_t stream) {
  const int T = x.rows, D = model_.hidden_size, inter = weights_.shared_inter;
  const int rows13 = (model_.gated() ? 2 : 1) * inter;
  linear_bf16(handle, T, rows13, D, x.data, D, weights_.shared_w13.data(), D, shared_h_.data(), rows13);
  bias_activation(shared_h_.data(), T, rows13, inter, nullptr, nullptr, act_, shared_a_.data(), stream);
  linear_bf16(handle, T, D, inter, shared_a_.data(), inter, weights_.shared_w2.data(), inter, out, D);
}

CudaStages::Rows CudaStages::shared_expert(const Rows& x) {
  const int T = x.rows, D = model_.hidden_size;
  if (shared_in_flight_) {
    // Started by route() on the side stream: join it.
    EPMOE_ASSERT(x.data == x_.data() && x.cols == D, "the shared expert must see the staged input");
    EPMOE_CUDA_CHECK(cudaStreamWaitEvent(stream(), shared_ready_.get(), 0));
    shared_in_flight_ = false;
    return Rows{shared_out_.data(), T, D};
  }
  StageTimer timer(clock_, &PhaseTimes::shared, stream());
  // allreduce mode: written straight into the second segment of the one all-reduce buffer.
  bf16* out = plan_.shape.mode == Mode::AllReduce
                  ? reduce_.data() + static_cast<std::size_t>(T) * plan_.shape.expert_width
                  : shared_out_.data();
  run_shared_expert(x, out, cublas_.get(), stream());
  return Rows{out, T, D};
}

void CudaStages::add_into(Rows& dst, const Rows& src) {
  StageTimer timer(clock_, &PhaseTimes::shared, stream());
  EPMOE_ASSERT(dst.cols == model_.hidden_size && src.cols == model_.hidden_size && dst.rows == src.rows,
               "shared add sees [", dst.rows, ",", dst.cols, "] + [", src.rows, ",", src.cols, "]; both must be [T, D=",
               model_.hidden_size, "]");
  add_bf16(dst.data, src.data, dst.size(), stream());
}

void CudaStages::all_reduce(Rows& routed, Rows* shared) {
  StageTimer timer(clock_, &PhaseTimes::combine, stream());
  EPMOE_ASSERT(routed.data == reduce_.data(), "all_reduce must see the experts' output segment");
  if (comm_.size() == 1) return;
  std::size_t count = routed.size();
  if (shared) {
    // The plan's one buffer [routed T x Din | shared T x D]: the shared expert wrote its segment in place.
    EPMOE_ASSERT(shared->data == routed.data + routed.size(), "shared partial is not the all-reduce buffer's second segment");
    count += shared->size();
  }
  nccl_.allreduce_sum(reduce_.contiguous(count), stream());
}

}  // namespace epmoe::cuda
