// Routing: router logits -> scores -> top-k expert ids and weights, for every router of the checkpoint contract.
// Ties between equal selection scores go to the lower expert id (and the lower group id for grouped top-k).
#pragma once

#include <cstdint>
#include <string>

#include "epmoe/config.hpp"
#include "epmoe/tensor.hpp"

namespace epmoe {

struct Routing {
  Matrix<int> ids;        // [T, K] global expert ids, best first
  Matrix<float> weights;  // [T, K] unbiased scores at ids (renormalized if norm_topk_prob); no scaling factor
};

// Top-k selection on precomputed logits [T, E] (router bias already added). `correction_bias` may be null.
// Steps 1-3 of the layer semantics after the GEMM. Pure; used by the CPU backend and as the GPU kernel's reference.
Routing select_topk(const ModelConfig& config, const Matrix<float>& logits, const float* correction_bias);

// Routing with the expert choice given ([T, K] distinct ids per row): weights are the unbiased scores of the
// logits at those ids, renormalized if the model says so. The router's cost stays; only its choice is replaced.
Routing routing_for_ids(const ModelConfig& config, const Matrix<float>& logits, const Matrix<int>& ids);

// Synthetic expert choices for load-imbalance studies (epmoe bench --routing):
//   real        the router's own choice (no override)
//   uniform     K distinct experts uniformly at random
//   zipf:S      K distinct experts drawn with probability proportional to 1/(e+1)^S (expert 0 hottest)
//   hot:P       with probability P a token's K experts include expert 0; the others uniformly at random
struct RoutingSkew {
  enum class Kind { Real, Uniform, Zipf, Hot } kind = Kind::Real;
  double param = 0;
  std::string text() const;
};
RoutingSkew parse_routing_skew(const std::string& text, const std::string& flag);
// Deterministic in (seed, global token index): row t is token first_token + t.
Matrix<int> synthetic_expert_ids(const ModelConfig& config, const RoutingSkew& skew, int num_tokens,
                                 long first_token, std::uint64_t seed);


}  // namespace epmoe
