#include "cpu_stages.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "epmoe/error.hpp"
#include "gemm.hpp"

namespace epmoe::cpu {
namespace {

class ScopedTimer {
 public:
  explicit ScopedTimer(double& acc) : acc_(acc), start_(MPI_Wtime()) {}
  ~ScopedTimer() { acc_ += MPI_Wtime() - start_; }

 private:
  double& acc_;
  double start_;
};

// Each dispatched row carries its pairs behind the token: [Din values | K weights | K local ids (int bits)].
inline float int_bits(int v) {
  float f;
  std::memcpy(&f, &v, sizeof f);
  return f;
}
inline int from_bits(float f) {
  int v;
  std::memcpy(&v, &f, sizeof v);
  return v;
}

}  // namespace

Matrix<float> router_logits(const ModelConfig& model, const Matrix<float>& weight, const std::vector<float>& bias,
                            const Matrix<float>& x) {
  Matrix<float> logits(x.rows(), model.num_experts);
  linear(x.rows(), model.num_experts, model.hidden_size, x.data(), x.cols(), weight.data(),
         bias.empty() ? nullptr : bias.data(), logits.data(), logits.cols());
  return logits;
}

CpuStages::CpuStages(const ModelConfig& model, const UnpadPlan& plan, const ParallelConfig& parallel,
                     const MpiComm& comm, const LayerWeights& shard, PhaseTimes& times)
    : model_(model),
      plan_(plan),
      comm_(comm),
      placement_(model.num_experts, comm.size(), parallel),
      times_(times),
      act_{model.activation, model.swiglu_alpha, model.swiglu_limit},
      num_local_experts_(shard.num_local_experts()),
      router_weight_(shard.router_weight),
      router_bias_(shard.router_bias),
      correction_bias_(shard.correction_bias),
      latent_down_(shard.latent_down),
      latent_up_(shard.latent_up) {
  EPMOE_ASSERT(shard.expert_ids == placement_.experts_of(comm.rank()), "shard does not hold this rank's experts");
  const int Din = model.expert_width(), Dp = plan.expert_width_padded, I = model.moe_intermediate_size;
  const int R13 = model.w13_rows();
  const int n = num_local_experts_;
  w13_padded_.assign(static_cast<size_t>(n) * R13 * Dp, 0.0f);
  w2_padded_.assign(static_cast<size_t>(n) * Dp * I, 0.0f);
  for (int j = 0; j < n; ++j) {
    for (int r = 0; r < R13; ++r)
      std::copy_n(shard.w13.data() + (static_cast<size_t>(j) * R13 + r) * Din, Din,
                  w13_padded_.data() + (static_cast<size_t>(j) * R13 + r) * Dp);
    std::copy_n(shard.w2.data() + static_cast<size_t>(j) * Din * I, static_cast<size_t>(Din) * I,
                w2_padded_.data() + static_cast<size_t>(j) * Dp * I);
  }
  if (model.has_expert_bias) {
    b13_ = shard.b13;
    b2_padded_.assign(static_cast<size_t>(n) * Dp, 0.0f);
    for (int j = 0; j < n; ++j)
      std::copy_n(shard.b2.data() + static_cast<size_t>(j) * Din, Din, b2_padded_.data() + static_cast<size_t>(j) * Dp);
  }
  if (model.has_shared()) {
    // allreduce mode: this rank's contiguous slice [lo, hi) of the shared intermediate width.
    const int Is = model.shared_intermediate_size, D = model.hidden_size, R = comm.size(), r = comm.rank();
    const bool sliced = plan.shape.mode == Mode::AllReduce;
    const int lo = sliced ? static_cast<int>(static_cast<long>(Is) * r / R) : 0;
    const int hi = sliced ? static_cast<int>(static_cast<long>(Is) * (r + 1) / R) : Is;
    shared_inter_ = hi - lo;
    const int parts = model.gated() ? 2 : 1;  // gate rows [0, Is), up rows [Is, 2Is)
    shared_w13_ = Matrix<float>(parts * shared_inter_, D);
    for (int p = 0; p < parts; ++p)
      for (int i = 0; i < shared_inter_; ++i)
        std::copy_n(shard.shared_w13.row(p * Is + lo + i), D, shared_w13_.row(p * shared_inter_ + i));
    shared_w2_ = Matrix<float>(D, shared_inter_);
    for (int d = 0; d < D; ++d) std::copy_n(shard.shared_w2.row(d) + lo, shared_inter_, shared_w2_.row(d));
  }
}

Routing CpuStages::route(const Rows& x) {
  ScopedTimer t(times_.route);
  EPMOE_ASSERT(x.cols() == model_.hidden_size, "route input width ", x.cols());
  const Matrix<float> logits = router_logits(model_, router_weight_, router_bias_, x);
  last_routing_ = forced_ ? routing_for_ids(model_, logits, forced_ids_)
                          : select_topk(model_, logits, correction_bias_.empty() ? nullptr : correction_bias_.data());
  return last_routing_;
}

Matrix<float> CpuStages::latent_down(const Rows& x) {
  ScopedTimer t(times_.latent);
  Rows out(x.rows(), model_.latent_size);
  linear(x.rows(), model_.latent_size, model_.hidden_size, x.data(), x.cols(), latent_down_.data(), nullptr,
         out.data(), out.cols());
  return out;
}

Batch CpuStages::dispatch(const Rows& xr, const Routing& routing) {
  ScopedTimer t(times_.dispatch);
  const int T = xr.rows(), Din = xr.cols(), K = model_.top_k, R = comm_.size();
  const int width = Din + 2 * K;
  EPMOE_ASSERT(Din == plan_.shape.expert_width, "dispatch width ", Din);
  Batch b;
  b.home_tokens = T;
  b.rows_to.assign(R, 0);
  // Which destinations each token needs: one row per (token, destination rank), not per expert.
  std::vector<std::vector<int>> tokens_for(R);
  std::vector<char> needs(R);
  for (int tok = 0; tok < T; ++tok) {
    std::fill(needs.begin(), needs.end(), 0);
    for (int k = 0; k < K; ++k) needs[placement_.owner(routing.ids.at(tok, k))] = 1;
    for (int r = 0; r < R; ++r)
      if (needs[r]) tokens_for[r].push_back(tok);
  }
  int sent_rows = 0;
  for (int r = 0; r < R; ++r) sent_rows += b.rows_to[r] = static_cast<int>(tokens_for[r].size());
  Matrix<float> send(sent_rows, width);
  b.sent_token.reserve(sent_rows);
  int row = 0;
  for (int r = 0; r < R; ++r) {
    for (int tok : tokens_for[r]) {
      float* out = send.row(row++);
      std::copy_n(xr.row(tok), Din, out);
      int slot = 0;
      for (int k = 0; k < K; ++k) {
        const int e = routing.ids.at(tok, k);
        if (placement_.owner(e) != r) continue;
        out[Din + slot] = routing.weights.at(tok, k);
        out[Din + K + slot] = int_bits(placement_.local_index(e));
        ++slot;
      }
      for (; slot < K; ++slot) {
        out[Din + slot] = 0.0f;
        out[Din + K + slot] = int_bits(-1);
      }
      b.sent_token.push_back(tok);
    }
  }
  // Counts first, then the payload.
  b.rows_from.assign(R, 0);
  comm_.alltoall(b.rows_to, b.rows_from);
  const int received = std::accumulate(b.rows_from.begin(), b.rows_from.end(), 0);
  Matrix<float> recv(received, width);
  std::vector<int> send_counts(R), recv_counts(R);
  for (int r = 0; r < R; ++r) {
    send_counts[r] = b.rows_to[r] * width;
    recv_counts[r] = b.rows_from[r] * width;
  }
  {
    ScopedTimer exchange(times_.dispatch_exchange);
    comm_.alltoallv(send, send_counts, recv, recv_counts);
  }
  // Unpack rows and pairs.
  b.rows = Matrix<float>(received, Din);
  b.pair_offsets.assign(1, 0);
  for (int i = 0; i < received; ++i) {
    const float* in = recv.row(i);
    std::copy_n(in, Din, b.rows.row(i));
    for (int k = 0; k < K; ++k) {
      const int local = from_bits(in[Din + K + k]);
      if (local < 0) break;
      EPMOE_ASSERT(local < num_local_experts_, "received local expert ", local);
      b.pair_expert.push_back(local);
      b.pair_weight.push_back(in[Din + k]);
    }
    b.pair_offsets.push_back(static_cast<int>(b.pair_expert.size()));
  }
  return b;
}

Batch CpuStages::select_local(const Rows& xr, const Routing& routing) {
  ScopedTimer t(times_.dispatch);
  const int T = xr.rows(), K = model_.top_k, me = comm_.rank();
  Batch b;
  b.rows = xr;
  b.pair_offsets.assign(1, 0);
  for (int tok = 0; tok < T; ++tok) {
    for (int k = 0; k < K; ++k) {
      const int e = routing.ids.at(tok, k);
      if (placement_.owner(e) != me) continue;
      b.pair_expert.push_back(placement_.local_index(e));
      b.pair_weight.push_back(routing.weights.at(tok, k));
    }
    b.pair_offsets.push_back(static_cast<int>(b.pair_expert.size()));
  }
  return b;
}

Partial CpuStages::experts(const Batch& batch) {
  ScopedTimer t(times_.experts);
  const int N = batch.rows.rows(), Din = plan_.shape.expert_width, Dp = plan_.expert_width_padded;
  const int I = model_.moe_intermediate_size, R13 = model_.w13_rows(), n = num_local_experts_;
  EPMOE_ASSERT(batch.rows.cols() == Din, "experts input width ", batch.rows.cols());
  // Group pairs by local expert (counting sort keeps row order inside an expert).
  const int pairs = static_cast<int>(batch.pair_expert.size());
  std::vector<int> offsets(n + 1, 0);
  for (int p = 0; p < pairs; ++p) ++offsets[batch.pair_expert[p] + 1];
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  std::vector<int> pair_row(pairs), order(pairs), fill(offsets.begin(), offsets.end() - 1);
  for (int i = 0; i < N; ++i)
    for (int p = batch.pair_offsets[i]; p < batch.pair_offsets[i + 1]; ++p) {
      pair_row[p] = i;
      order[fill[batch.pair_expert[p]]++] = p;
    }
  Rows out(N, Din);  // the weighted sum, written at the unpadded width: this is where the trim happens
  const float scale = model_.routed_scaling_factor;
  std::vector<float> x, h, a, y;
  for (int j = 0; j < n; ++j) {
    const int m = offsets[j + 1] - offsets[j];
    if (m == 0) continue;
    x.assign(static_cast<size_t>(m) * Dp, 0.0f);  // padded lanes are zero
    for (int i = 0; i < m; ++i) std::copy_n(batch.rows.row(pair_row[order[offsets[j] + i]]), Din, &x[size_t(i) * Dp]);
    h.resize(static_cast<size_t>(m) * R13);
    a.resize(static_cast<size_t>(m) * I);
    y.resize(static_cast<size_t>(m) * Dp);
    {
      ScopedTimer gemms(times_.expert_gemms);
      linear(m, R13, Dp, x.data(), Dp, w13_padded_.data() + static_cast<size_t>(j) * R13 * Dp,
             b13_.empty() ? nullptr : b13_.data() + static_cast<size_t>(j) * R13, h.data(), R13);
      activate_rows(act_, h.data(), R13, m, I, a.data());
      linear(m, Dp, I, a.data(), I, w2_padded_.data() + static_cast<size_t>(j) * Dp * I,
             b2_padded_.empty() ? nullptr : b2_padded_.data() + static_cast<size_t>(j) * Dp, y.data(), Dp);
    }
    ScopedTimer sum(times_.weighted_sum);  // this expert's share of the weighted sum
    for (int i = 0; i < m; ++i) {
      const int p = order[offsets[j] + i];
      const float w = scale * batch.pair_weight[p];
      float* dst = out.row(pair_row[p]);
      const float* src = &y[static_cast<size_t>(i) * Dp];
      for (int c = 0; c < Din; ++c) dst[c] += w * src[c];
    }
  }
  return Partial{std::move(out)};
}

Matrix<float> CpuStages::combine(const Partial& experts_out, const Batch& batch) {
  ScopedTimer t(times_.combine);
  const Rows& partial = experts_out.rows;
  const int Din = partial.cols(), R = comm_.size();
  EPMOE_ASSERT(Din == plan_.shape.expert_width, "combine width ", Din);
  std::vector<int> send_counts(R), recv_counts(R);
  for (int r = 0; r < R; ++r) {
    send_counts[r] = batch.rows_from[r] * Din;
    recv_counts[r] = batch.rows_to[r] * Din;
  }
  Rows back(static_cast<int>(batch.sent_token.size()), Din);
  {
    ScopedTimer exchange(times_.combine_exchange);
    comm_.alltoallv(partial, send_counts, back, recv_counts);
  }
  Rows routed(batch.home_tokens, Din);
  for (int i = 0; i < back.rows(); ++i) {
    float* dst = routed.row(batch.sent_token[i]);
    const float* src = back.row(i);
    for (int c = 0; c < Din; ++c) dst[c] += src[c];
  }
  return routed;
}

Matrix<float> CpuStages::latent_up(const Rows& routed) {
  ScopedTimer t(times_.latent);
  EPMOE_ASSERT(routed.cols() == model_.latent_size, "latent up-projection fed width ", routed.cols(),
               " instead of the unpadded latent width ", model_.latent_size);
  Rows out(routed.rows(), model_.hidden_size);
  linear(routed.rows(), model_.hidden_size, model_.latent_size, routed.data(), routed.cols(), latent_up_.data(),
         nullptr, out.data(), out.cols());
  return out;
}

Matrix<float> CpuStages::shared_expert(const Rows& x) {
  ScopedTimer t(times_.shared);
  const int T = x.rows(), D = model_.hidden_size, rows13 = shared_w13_.rows();
  std::vector<float> h(static_cast<size_t>(T) * rows13), a(static_cast<size_t>(T) * shared_inter_);
  linear(T, rows13, D, x.data(), x.cols(), shared_w13_.data(), nullptr, h.data(), rows13);
  activate_rows(act_, h.data(), rows13, T, shared_inter_, a.data());
  Rows out(T, D);
  linear(T, D, shared_inter_, a.data(), shared_inter_, shared_w2_.data(), nullptr, out.data(), D);
  return out;
}

void CpuStages::add_into(Rows& dst, const Rows& src) {
  ScopedTimer t(times_.shared);
  EPMOE_ASSERT(dst.cols() == model_.hidden_size && src.cols() == model_.hidden_size && dst.rows() == src.rows(),
               "shared add sees [", dst.rows(), ",", dst.cols(), "] + [", src.rows(), ",", src.cols(),
               "]; both must be [T, D=", model_.hidden_size, "]");
  for (size_t i = 0; i < dst.size(); ++i) dst.data()[i] += src.data()[i];
}

void CpuStages::all_reduce(Rows& routed, Rows* shared) {
  ScopedTimer t(times_.combine);
  EPMOE_ASSERT(routed.cols() == plan_.shape.expert_width || routed.cols() == model_.hidden_size, "all_reduce width");
  if (comm_.size() == 1) return;
  if (!shared) {
    comm_.allreduce_sum(routed);
    return;
  }
  // One contiguous buffer, segment-major: [routed T x Din | shared T x D].
  std::vector<float> buffer(routed.size() + shared->size());
  std::copy(routed.storage().begin(), routed.storage().end(), buffer.begin());
  std::copy(shared->storage().begin(), shared->storage().end(), buffer.begin() + routed.size());
  comm_.allreduce_sum(buffer);
  std::copy_n(buffer.begin(), routed.size(), routed.storage().begin());
  std::copy_n(buffer.begin() + routed.size(), shared->size(), shared->storage().begin());
}

}  // namespace epmoe::cpu

namespace epmoe {

Routing route_on_host(const ModelConfig& model, const LayerWeights& router, const Matrix<float>& x) {
  EPMOE_REQUIRE(x.cols() == model.hidden_size, ErrorKind::Input, "router input has width ", x.cols(),
                ", the model's hidden_size is ", model.hidden_size);
  const Matrix<float> logits = cpu::router_logits(model, router.router_weight, router.router_bias, x);
  return select_topk(model, logits, router.correction_bias.empty() ? nullptr : router.correction_bias.data());
}

}  // namespace epmoe
