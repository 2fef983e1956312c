// The float64 dense reference: one process, all experts, no padding, no parallelism. Written for clarity, not
// speed; every backend and mode is checked against it.
#pragma once

#include <string>

#include "epmoe/config.hpp"
#include "epmoe/routing.hpp"
#include "epmoe/tensor.hpp"
#include "epmoe/weights.hpp"

namespace epmoe {

struct ReferenceRouting {
  Matrix<int> ids;                  // [T, K]
  Matrix<double> weights;           // [T, K]
  Matrix<double> selection_scores;  // [T, E] scores (+ correction bias), -inf where a grouped mask removed them
};

ReferenceRouting reference_route(const ModelConfig& config, const LayerWeights& layer, const Matrix<float>& x);

// The layer's output [T, D]. `layer` may hold a subset of the experts (its expert_ids); every expert a token is
// routed to must be among them. With `forced_ids` ([T, K]) the given experts are used instead of the reference's own
// selection (their weights are still computed from the reference scores): this is how a near-tie that a float32
// backend broke the other way is checked without hiding it.
Matrix<double> reference_layer(const ModelConfig& config, const LayerWeights& layer, const Matrix<float>& x,
                               const Matrix<int>* forced_ids = nullptr);

// Result of comparing a backend's layer output and routing with the reference.
struct VerifyReport {
  double rel_l2_error = 0;     // ||out - ref|| / ||ref|| over the whole [T, D]
  double max_abs_error = 0;
  long tokens = 0;
  long topk_mismatched_tokens = 0;  // tokens whose selected expert set differs from the reference's
  long near_tie_tokens = 0;         // of those, the ones explained by a near-tie (checked with the backend's ids)
  bool nonfinite = false;           // NaN or Inf in the backend output
  bool routing_forced = false;      // the expert choice was imposed: agreement not measured
  double topk_agreement() const { return tokens ? 1.0 - double(topk_mismatched_tokens) / tokens : 1.0; }
  // Passes when the error is within tolerance, every mismatch is a near tie and the output is finite.
  bool passed(double tolerance) const;
  std::string describe() const;
};

// `tie_tolerance`: two selection scores closer than this (absolute) count as a near-tie.
// `routing_forced`: `ids` were imposed on the backend (a synthetic routing), so they are used as they are and
// the top-k agreement is not measured.
VerifyReport verify_layer(const ModelConfig& config, const LayerWeights& layer, const Matrix<float>& x,
                          const Matrix<float>& output, const Matrix<int>& ids, double tie_tolerance = 1e-4,
                          bool routing_forced = false);

}  // namespace epmoe
