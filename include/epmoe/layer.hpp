// One MoE layer on one rank, whatever the backend: tokens in, the layer's output out, phase times recorded.
#pragma once

#include <memory>

#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/plan.hpp"
#include "epmoe/routing.hpp"
#include "epmoe/tensor.hpp"
#include "epmoe/weights.hpp"

namespace epmoe {

// Seconds spent in each phase of the forward passes since the last reset(), this rank only.
struct PhaseTimes {
  double route = 0, dispatch = 0, experts = 0, combine = 0, shared = 0, latent = 0, total = 0;
  // Parts of dispatch and combine: the payload all-to-all alone (rows, and the pair metadata of the dispatch),
  // without the layout, the pack, the count exchange or the home-rank sum. Zero in allreduce mode. With the CUDA
  // symmetric combine, combine_exchange also forms the weighted sums (it stores each into its home's window).
  double dispatch_exchange = 0, combine_exchange = 0;
  // Part of dispatch: from its start until every rank's counts are known (the layout kernels and the count
  // exchange, including the wait for the slowest rank's routing).
  double dispatch_counts = 0;
  // Part of experts: the two grouped GEMMs with the bias and activation between them, without ordering the pairs by
  // expert, gathering their rows or the weighted sum (the part a dense GEMM of the same shape is the ceiling of).
  double expert_gemms = 0;
  // Part of experts: the weighted sum of each row's pairs alone (the PyTorch breakdown counts it apart from
  // the expert phase). Zero where the combine forms the sums (the CUDA symmetric combine).
  double weighted_sum = 0;
  // Part of experts: the pairs' rows copied into their experts' blocks of the GEMMs' layout (the scatter).
  double expert_scatter = 0;
  void reset() { *this = PhaseTimes{}; }
};

class LayerRunner {
 public:
  virtual ~LayerRunner() = default;
  // x: this rank's tokens [T, D] (alltoall: its own shard of the tokens; allreduce: the same tokens on every
  // rank). Returns [T, D]. Every rank must call forward() the same number of times (it communicates).
  virtual Matrix<float> forward(const Matrix<float>& x) = 0;
  // Routing of the last forward(): global expert ids and weights for this rank's tokens.
  virtual const Routing& last_routing() const = 0;
  virtual const UnpadPlan& plan() const = 0;
  virtual PhaseTimes& times() = 0;
  // Replaces the router's expert choice in the following forward() calls with `ids` ([T, K] global expert ids for
  // this rank's tokens; the weights still come from the router's scores at those ids), or restores the router's
  // own choice with nullptr. For load-imbalance studies (epmoe bench --routing). A backend that cannot do this
  // refuses with an error rather than ignoring it.
  virtual void force_expert_ids(const Matrix<int>* ids);
};

// Per-expert pair counts [num_experts] summed over the ranks of `comm` (exact: counts below 2^24 per expert travel
// as float). Collective.
std::vector<double> sum_loads_over_ranks(const std::vector<double>& loads, const MpiComm& comm);

// The pairs per expert [num_experts] that the routing of `probe` gives `tokens` (this rank's), summed over the
// ranks of `comm`: the same on every rank, the input of balanced_expert_owner (placement.hpp). One forward;
// collective. The probe's placement does not change its routing: build it with linear placement.
std::vector<double> measure_expert_loads(LayerRunner& probe, const Matrix<float>& tokens, const MpiComm& comm,
                                         int num_experts);

// The routing the router of `router` (its router tensors; experts not needed) gives x [T, D], computed on the host
// as the CPU backend's route stage computes it (float32 GEMM, then select_topk).
Routing route_on_host(const ModelConfig& model, const LayerWeights& router, const Matrix<float>& x);

// `shard` holds this rank's experts (placement.experts_of(rank)) and the full router, shared and latent weights.
std::unique_ptr<LayerRunner> make_cpu_layer(const ModelConfig& model, const ParallelConfig& parallel,
                                            const MpiComm& comm, const LayerWeights& shard);

}  // namespace epmoe
