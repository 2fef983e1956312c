// Routing: router logits -> scores -> top-k expert ids and weights, for every router of the checkpoint contract.
// Ties between equal selection scores go to the lower expert id (and the lower group id for grouped top-k).
#pragma once

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


}  // namespace epmoe
