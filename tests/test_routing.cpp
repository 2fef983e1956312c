// Top-k routing: the float32 selection against the float64 reference, ties, grouped masks, both biases,
// renormalization and the scaling factor.
#include <algorithm>
#include <cmath>
#include <limits>

#include "catch.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/reference.hpp"
#include "epmoe/routing.hpp"
#include "epmoe/weights.hpp"

using namespace epmoe;

namespace {

Matrix<float> logits_of(const ModelConfig& c, const LayerWeights& w, const Matrix<float>& x) {
  Matrix<float> z(x.rows(), c.num_experts);
  for (int t = 0; t < x.rows(); ++t)
    for (int e = 0; e < c.num_experts; ++e) {
      double acc = w.router_bias.empty() ? 0.0 : w.router_bias[e];
      for (int d = 0; d < c.hidden_size; ++d) acc += double(x.at(t, d)) * w.router_weight.at(e, d);
      z.at(t, e) = static_cast<float>(acc);
    }
  return z;
}

ModelConfig tiny(ScoringFunc scoring, int experts, int k) {
  ModelConfig c;
  c.hidden_size = 4;
  c.moe_intermediate_size = 4;
  c.num_experts = experts;
  c.top_k = k;
  c.scoring_func = scoring;
  return c;
}

Matrix<float> one_row(std::initializer_list<float> v) {
  Matrix<float> m(1, static_cast<int>(v.size()));
  std::copy(v.begin(), v.end(), m.data());
  return m;
}

std::vector<int> sorted_ids(const Routing& r, int t) {
  std::vector<int> v(r.ids.row(t), r.ids.row(t) + r.ids.cols());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("float32 top-k equals the float64 reference on random tokens for every mini preset", "[routing]") {
  for (const std::string& name : mini_preset_names()) {
    INFO(name);
    const ModelConfig c = make_preset(name);
    const LayerWeights w = generate_layer_weights(c, 77, 0, {});
    const Matrix<float> x = generate_tokens(200, c.hidden_size, 991);
    const Routing r = select_topk(c, logits_of(c, w, x), w.correction_bias.empty() ? nullptr : w.correction_bias.data());
    const ReferenceRouting ref = reference_route(c, w, x);
    int mismatches = 0;
    for (int t = 0; t < x.rows(); ++t) {
      std::vector<int> a = sorted_ids(r, t), b(ref.ids.row(t), ref.ids.row(t) + c.top_k);
      std::sort(b.begin(), b.end());
      if (a != b) {
        ++mismatches;
        continue;
      }
      for (int k = 0; k < c.top_k; ++k) REQUIRE(r.ids.at(t, k) == ref.ids.at(t, k));
      for (int k = 0; k < c.top_k; ++k) REQUIRE(std::abs(r.weights.at(t, k) - ref.weights.at(t, k)) <= 1e-6);
    }
    REQUIRE(mismatches == 0);
  }
}

TEST_CASE("equal scores go to the lower expert id", "[routing]") {
  const ModelConfig c = tiny(ScoringFunc::Softmax, 6, 3);
  const Routing r = select_topk(c, one_row({1, 1, 1, 1, 1, 1}), nullptr);
  REQUIRE(r.ids.at(0, 0) == 0);
  REQUIRE(r.ids.at(0, 1) == 1);
  REQUIRE(r.ids.at(0, 2) == 2);
  const Routing r2 = select_topk(c, one_row({0, 2, 1, 2, 1, 0}), nullptr);
  REQUIRE(r2.ids.at(0, 0) == 1);
  REQUIRE(r2.ids.at(0, 1) == 3);
  REQUIRE(r2.ids.at(0, 2) == 2);
}

TEST_CASE("grouped top-k masks groups: max per group, or top-2 sum with a correction bias", "[routing]") {
  ModelConfig c = tiny(ScoringFunc::Sigmoid, 8, 2);
  c.topk_method = TopkMethod::Grouped;
  c.n_group = 4;  // groups {0,1} {2,3} {4,5} {6,7}
  c.topk_group = 1;
  const Matrix<float> z = one_row({5, -5, 4, 4, -9, -9, -9, -9});
  // Without a correction bias a group scores its best expert: group 0 (5) wins, although 2 and 3 beat expert 1.
  const Routing plain = select_topk(c, z, nullptr);
  REQUIRE(sorted_ids(plain, 0) == std::vector<int>{0, 1});
  // With a (zero) correction bias a group scores the sum of its top two: group 1 (4+4) beats group 0 (5-5).
  c.has_correction_bias = true;
  const std::vector<float> zero(8, 0.0f);
  const Routing biased = select_topk(c, z, zero.data());
  REQUIRE(sorted_ids(biased, 0) == std::vector<int>{2, 3});
  // The reference agrees on both.
  LayerWeights w;
  w.router_weight = Matrix<float>(8, 4);
  w.router_bias.assign(z.data(), z.data() + 8);  // x = 0 makes the logits equal the bias
  c.has_router_bias = true;
  w.correction_bias = zero;
  const ReferenceRouting ref = reference_route(c, w, Matrix<float>(1, 4));
  std::vector<int> ids(ref.ids.row(0), ref.ids.row(0) + 2);
  std::sort(ids.begin(), ids.end());
  REQUIRE(ids == std::vector<int>{2, 3});
  REQUIRE(std::isinf(ref.selection_scores.at(0, 0)));  // masked
}

TEST_CASE("the correction bias picks experts but the weights come from the unbiased scores", "[routing]") {
  ModelConfig c = tiny(ScoringFunc::Sigmoid, 4, 1);
  c.has_correction_bias = true;
  const std::vector<float> bias = {0, 0, 0, 10};
  const Routing r = select_topk(c, one_row({3, 2, 1, -1}), bias.data());
  REQUIRE(r.ids.at(0, 0) == 3);
  REQUIRE(std::abs(r.weights.at(0, 0) - 1.0f / (1.0f + std::exp(1.0f))) < 1e-6f);
}

TEST_CASE("renormalization makes the K weights sum to one; the scaling factor never enters the weights",
          "[routing]") {
  ModelConfig c = tiny(ScoringFunc::Softmax, 8, 3);
  const Matrix<float> z = one_row({0.5f, -1, 2, 0.1f, 0.3f, -2, 1.5f, 0});
  const Routing raw = select_topk(c, z, nullptr);
  float raw_sum = 0;
  for (int k = 0; k < 3; ++k) raw_sum += raw.weights.at(0, k);
  REQUIRE(raw_sum < 0.99f);
  c.norm_topk_prob = true;
  const Routing norm = select_topk(c, z, nullptr);
  float sum = 0;
  for (int k = 0; k < 3; ++k) sum += norm.weights.at(0, k);
  REQUIRE(std::abs(sum - 1.0f) < 1e-6f);
  c.routed_scaling_factor = 2.5f;
  const Routing scaled = select_topk(c, z, nullptr);
  for (int k = 0; k < 3; ++k) REQUIRE(scaled.weights.at(0, k) == norm.weights.at(0, k));
  // sigmoid + renorm
  c.scoring_func = ScoringFunc::Sigmoid;
  const Routing sig = select_topk(c, z, nullptr);
  sum = 0;
  for (int k = 0; k < 3; ++k) sum += sig.weights.at(0, k);
  REQUIRE(std::abs(sum - 1.0f) < 1e-6f);
}
