// The unpad plan: where the padded expert width is trimmed back, and what width every stage and collective sees.
//
// A pure function of the shape of the problem; docs/unpad-timing.md prints its table and tests/test_plan.cpp checks
// its invariants for every combination of {padded} x {shared experts} x {latent} x {alltoall, allreduce} x {ranks}:
//   1. the shared-expert add and the latent up-projection only see unpadded widths (D and L);
//   2. no collective sees a padded width or a strided view (collectives take epmoe::Contiguous, see tensor.hpp);
//   3. exactly one reduction per layer, routed scaling applied once, expert biases added once per (token, expert);
//   4. the layer's output width is D.
// The forward pass (src/core/forward_layer.hpp) reads its decisions from here; the stages assert the widths.
#pragma once

#include <string>
#include <vector>

#include "epmoe/config.hpp"

namespace epmoe {

enum class Stage {
  Route,        // router GEMM + top-k on x [T, D]
  LatentDown,   // x [T, D] -> xr [T, L]
  Dispatch,     // tokens to the ranks owning their experts (alltoall mode)
  SelectLocal,  // the rank's own experts' (token, weight) pairs (allreduce mode)
  Experts,      // pad on entry, grouped GEMM, activation, grouped GEMM (+bias), weighted sum written trimmed
  Combine,      // results back to the home rank and summed there (alltoall mode; the reduction)
  SharedAdd,    // shared expert on x, added to a width-D buffer
  SharedSlice,  // allreduce + latent: this rank's slice of the shared expert, kept in its own segment until reduced
  AllReduce,    // one all-reduce of one contiguous buffer (allreduce mode; the reduction)
  LatentUp,     // [T, L] -> [T, D]
};
const char* to_string(Stage s);

struct PlanStep {
  Stage stage;
  int input_width;      // width of the buffer the step reads (for SharedAdd: the buffer it adds into)
  int output_width;     // width of the buffer it writes
  bool collective;      // moves data between ranks (only when num_ranks > 1)
  bool is_reduction;    // the layer's one reduction (Combine or AllReduce)
  bool trims;           // reads padded width, writes the unpadded width
  bool applies_routed_scaling;
  bool adds_expert_bias;
  std::string note;
};

struct PlanShape {
  int hidden_size;          // D
  int expert_width;         // Din: L for latent models, else D
  int pad_multiple;         // 0 = none
  bool shared;
  bool latent;
  Mode mode;
  int num_ranks;
};

struct UnpadPlan {
  PlanShape shape;
  int expert_width_padded;  // Dp: what the expert GEMMs see
  // allreduce mode: the single all-reduce buffer is [T, reduce_width]: the routed partial (width Din), followed by
  // the shared partial (width D) when the model has a shared expert and a latent transform.
  int reduce_width = 0;
  // allreduce mode without latent: the shared partial is added into the routed partial before the reduction.
  bool shared_added_before_reduce = false;
  std::vector<PlanStep> steps;

  bool padded() const { return expert_width_padded != shape.expert_width; }
  const PlanStep* find(Stage s) const;
  std::string one_line() const;  // e.g. "route[D] > dispatch[Din] > experts[Dp->Din trim] > combine[Din] > ..."
};

UnpadPlan make_unpad_plan(const PlanShape& shape);
UnpadPlan make_unpad_plan(const ModelConfig& model, const ParallelConfig& parallel, int num_ranks);

}  // namespace epmoe
