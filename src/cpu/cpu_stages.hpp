// The CPU backend's stages of one MoE layer (float32, CBLAS GEMMs, MPI collectives). forward_layer() calls them.
#pragma once

#include <vector>

#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/layer.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/plan.hpp"
#include "epmoe/routing.hpp"
#include "epmoe/weights.hpp"
#include "activation.hpp"

namespace epmoe::cpu {

// Token rows to run through this rank's experts, each with its (local expert, weight) pairs.
struct Batch {
  Matrix<float> rows;              // [N, Din], unpadded
  std::vector<int> pair_offsets;   // [N + 1]: row i owns pairs [pair_offsets[i], pair_offsets[i + 1])
  std::vector<int> pair_expert;    // local expert index of each pair
  std::vector<float> pair_weight;  // routing weight of each pair (without the routed scaling factor)
  // alltoall mode: how the rows travelled, for the combine.
  int home_tokens = 0;          // tokens of this rank (rows of the combine's output)
  std::vector<int> rows_from;   // rows received from each source rank (rows are source-major)
  std::vector<int> rows_to;     // rows this rank sent to each destination rank
  std::vector<int> sent_token;  // home token index of each sent row, destination-major
};

// The experts' output: each received row's weighted sum over its pairs, trimmed to Din.
struct Partial {
  Matrix<float> rows;  // [N, Din]
};

// The router's logits [T, E] of x [T, D] (float32 GEMM, router bias added).
Matrix<float> router_logits(const ModelConfig& model, const Matrix<float>& weight, const std::vector<float>& bias,
                            const Matrix<float>& x);

class CpuStages {
 public:
  using Rows = Matrix<float>;
  using Routing = epmoe::Routing;
  using Batch = cpu::Batch;
  using Partial = cpu::Partial;

  CpuStages(const ModelConfig& model, const UnpadPlan& plan, const ParallelConfig& parallel, const MpiComm& comm,
            const LayerWeights& shard, PhaseTimes& times);

  Routing route(const Rows& x);
  Rows latent_down(const Rows& x);
  Batch dispatch(const Rows& xr, const Routing& routing);
  Batch select_local(const Rows& xr, const Routing& routing);
  Partial experts(const Batch& batch);
  Rows combine(const Partial& partial, const Batch& batch);
  Rows latent_up(const Rows& routed);
  Rows shared_expert(const Rows& x);
  void add_into(Rows& dst, const Rows& src);
  void all_reduce(Rows& routed, Rows* shared);

  const Routing& last_routing() const { return last_routing_; }
  void force_expert_ids(const Matrix<int>* ids) {
    forced_ = ids != nullptr;
    if (ids) forced_ids_ = *ids;
  }

 private:
  const ModelConfig& model_;
  const UnpadPlan& plan_;
  const MpiComm& comm_;
  ExpertPlacement placement_;
  PhaseTimes& times_;
  Routing last_routing_;
  bool forced_ = false;
  Matrix<int> forced_ids_;
  ActivationParams act_;
  int num_local_experts_;
  // Router, latent and shared weights (the shared ones sliced to this rank's share in allreduce mode).
  Matrix<float> router_weight_;
  std::vector<float> router_bias_, correction_bias_;
  Matrix<float> latent_down_, latent_up_;
  Matrix<float> shared_w13_, shared_w2_;
  int shared_inter_ = 0;
  // Expert weights padded to the plan's width Dp with zeros, as alignment-hungry kernels store them.
  std::vector<float> w13_padded_;  // [n, R13, Dp]
  std::vector<float> w2_padded_;   // [n, Dp, I]
  std::vector<float> b13_;         // [n, R13] or empty
  std::vector<float> b2_padded_;   // [n, Dp] or empty
};

}  // namespace epmoe::cpu
