// Runs one layer forward on every rank with fresh random tokens and checks it against the float64 reference on
// rank 0; every rank gets the same verdict, so a REQUIRE on it fails on all ranks together (no rank is left
// waiting in a collective).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/layer.hpp"
#include "epmoe/reference.hpp"
#include "epmoe/weights.hpp"

namespace epmoe::testing {

struct LayerCheck {
  double rel_l2_error = 0;
  long tokens = 0;
  long mismatched_tokens = 0;
  long near_tie_tokens = 0;
  bool nonfinite = false;
  bool ranks_disagree = false;  // allreduce mode: some rank's output differs from rank 0's
  std::string plan;  // the layer's unpad plan, one line
  bool passed(double tolerance) const {
    return !nonfinite && !ranks_disagree && rel_l2_error <= tolerance && mismatched_tokens == near_tie_tokens;
  }
  std::string describe() const;
};

using LayerFactory = std::function<std::unique_ptr<LayerRunner>(const ModelConfig&, const ParallelConfig&,
                                                                const MpiComm&, const LayerWeights& shard)>;
using WeightTweak = std::function<void(LayerWeights& full)>;

// tokens_here: this rank's token count (alltoall; allreduce uses rank 0's count on every rank).
LayerCheck check_layer(const ModelConfig& model, const ParallelConfig& parallel, const MpiComm& comm, int tokens_here,
                       std::uint64_t seed, const LayerFactory& factory, const WeightTweak& tweak = {},
                       double tie_tolerance = 1e-5);

LayerFactory cpu_factory();

}  // namespace epmoe::testing
