#include "epmoe/weights.hpp"

#include <cmath>
#include <string>

#include "counter_rng.hpp"
#include "epmoe/error.hpp"

namespace epmoe {
namespace {

void fill(float* out, std::size_t n, std::uint64_t seed, std::uint64_t a, std::uint64_t b, float scale) {
  for (std::size_t i = 0; i < n; ++i) out[i] = scale * counter_uniform(seed, a, b, i);
}

Matrix<float> make_matrix(int rows, int cols, std::uint64_t seed, std::uint64_t a, float scale) {
  Matrix<float> m(rows, cols);
  fill(m.data(), m.size(), seed, a, 0, scale);
  return m;
}

}  // namespace

float counter_uniform(std::uint64_t seed, std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  return synthetic::counter_uniform(seed, a, b, c);
}

std::vector<int> all_experts(const ModelConfig& config) {
  std::vector<int> ids(config.num_experts);
  for (int e = 0; e < config.num_experts; ++e) ids[e] = e;
  return ids;
}

LayerWeights generate_layer_weights(const ModelConfig& c, std::uint64_t seed, int layer,
                                    const std::vector<int>& expert_ids, LayerParts parts) {
  EPMOE_ASSERT(parts == LayerParts::All || expert_ids.empty(), "a router-only layer holds no experts");
  using namespace synthetic;
  auto key = [layer](TensorId id) { return tensor_key(layer, id); };
  const int D = c.hidden_size, Din = c.expert_width(), I = c.moe_intermediate_size, R13 = c.w13_rows();
  LayerWeights w;
  // Router logits with a spread of about 1 so that top-k is decided by clear margins on most tokens.
  w.router_weight = make_matrix(c.num_experts, D, seed, key(kRouterWeight), 2.0f * fan_in_scale(D));
  if (c.has_router_bias) {
    w.router_bias.resize(c.num_experts);
    fill(w.router_bias.data(), w.router_bias.size(), seed, key(kRouterBias), 0, 0.5f);
  }
  if (c.has_correction_bias) {
    w.correction_bias.resize(c.num_experts);
    fill(w.correction_bias.data(), w.correction_bias.size(), seed, key(kCorrectionBias), 0, 0.1f);
  }
  if (parts == LayerParts::RouterOnly) return w;
  w.expert_ids = expert_ids;
  const std::size_t n = expert_ids.size();
  const std::size_t w13_size = static_cast<std::size_t>(R13) * Din, w2_size = static_cast<std::size_t>(Din) * I;
  w.w13.resize(n * w13_size);
  w.w2.resize(n * w2_size);
  if (c.has_expert_bias) {
    w.b13.resize(n * R13);
    w.b2.resize(n * Din);
  }
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint64_t e = static_cast<std::uint64_t>(expert_ids[j]);
    fill(w.w13.data() + j * w13_size, w13_size, seed, key(kW13), e, fan_in_scale(Din));
    fill(w.w2.data() + j * w2_size, w2_size, seed, key(kW2), e, fan_in_scale(I));
    if (c.has_expert_bias) {
      fill(w.b13.data() + j * R13, R13, seed, key(kB13), e, 0.5f * fan_in_scale(Din));
      fill(w.b2.data() + j * Din, Din, seed, key(kB2), e, 0.5f * fan_in_scale(I));
    }
  }
  if (c.has_shared()) {
    w.shared_w13 = make_matrix(c.shared_w13_rows(), D, seed, key(kSharedW13), fan_in_scale(D));
    w.shared_w2 = make_matrix(D, c.shared_intermediate_size, seed, key(kSharedW2),
                              fan_in_scale(c.shared_intermediate_size));
  }
  if (c.has_latent()) {
    w.latent_down = make_matrix(c.latent_size, D, seed, key(kLatentDown), fan_in_scale(D));
    w.latent_up = make_matrix(D, c.latent_size, seed, key(kLatentUp), fan_in_scale(c.latent_size));
  }
  return w;
}

LayerWeights slice_experts(const ModelConfig& c, const LayerWeights& full, const std::vector<int>& expert_ids) {
  EPMOE_ASSERT(full.num_local_experts() == c.num_experts, "slice_experts needs a layer with every expert");
  const size_t Din = c.expert_width(), I = c.moe_intermediate_size, R13 = c.w13_rows();
  LayerWeights w = full;
  w.expert_ids = expert_ids;
  w.w13.clear();
  w.w2.clear();
  w.b13.clear();
  w.b2.clear();
  for (int e : expert_ids) {
    const size_t i = static_cast<size_t>(e);
    w.w13.insert(w.w13.end(), full.w13.begin() + i * R13 * Din, full.w13.begin() + (i + 1) * R13 * Din);
    w.w2.insert(w.w2.end(), full.w2.begin() + i * Din * I, full.w2.begin() + (i + 1) * Din * I);
    if (!full.b13.empty()) {
      w.b13.insert(w.b13.end(), full.b13.begin() + i * R13, full.b13.begin() + (i + 1) * R13);
      w.b2.insert(w.b2.end(), full.b2.begin() + i * Din, full.b2.begin() + (i + 1) * Din);
    }
  }
  return w;
}

Matrix<float> generate_tokens(int num_tokens, int width, std::uint64_t seed, std::int64_t first_token) {
  Matrix<float> x(num_tokens, width);
  for (int t = 0; t < num_tokens; ++t)
    fill(x.row(t), width, seed, synthetic::kTokens, static_cast<std::uint64_t>(first_token + t), 1.0f);
  return x;
}

void LayerWeights::check_shapes(const ModelConfig& c, const std::string& source) const {
  const std::size_t n = expert_ids.size();
  const std::size_t D = c.hidden_size, Din = c.expert_width(), I = c.moe_intermediate_size, R13 = c.w13_rows();
  auto expect = [&](bool ok, const char* name, std::size_t found, std::size_t wanted) {
    EPMOE_REQUIRE(ok, ErrorKind::Input, source, ": tensor '", name, "' has ", found, " elements, expected ", wanted,
                  " for ", c.summary());
  };
  expect(router_weight.rows() == c.num_experts && router_weight.cols() == c.hidden_size, "router/weight",
         router_weight.size(), c.num_experts * D);
  expect(router_bias.size() == (c.has_router_bias ? c.num_experts : 0u), "router/bias", router_bias.size(),
         c.has_router_bias ? c.num_experts : 0);
  expect(correction_bias.size() == (c.has_correction_bias ? c.num_experts : 0u), "router/e_score_correction_bias",
         correction_bias.size(), c.has_correction_bias ? c.num_experts : 0);
  expect(w13.size() == n * R13 * Din, "experts/w13", w13.size(), n * R13 * Din);
  expect(w2.size() == n * Din * I, "experts/w2", w2.size(), n * Din * I);
  expect(b13.size() == (c.has_expert_bias ? n * R13 : 0), "experts/b13", b13.size(), c.has_expert_bias ? n * R13 : 0);
  expect(b2.size() == (c.has_expert_bias ? n * Din : 0), "experts/b2", b2.size(), c.has_expert_bias ? n * Din : 0);
  if (c.has_shared()) {
    expect(shared_w13.rows() == c.shared_w13_rows() && shared_w13.cols() == c.hidden_size, "shared/w13",
           shared_w13.size(), static_cast<std::size_t>(c.shared_w13_rows()) * D);
    expect(shared_w2.rows() == c.hidden_size && shared_w2.cols() == c.shared_intermediate_size, "shared/w2",
           shared_w2.size(), D * c.shared_intermediate_size);
  }
  if (c.has_latent()) {
    expect(latent_down.rows() == c.latent_size && latent_down.cols() == c.hidden_size, "latent/down",
           latent_down.size(), static_cast<std::size_t>(c.latent_size) * D);
    expect(latent_up.rows() == c.hidden_size && latent_up.cols() == c.latent_size, "latent/up", latent_up.size(),
           D * c.latent_size);
  }
  for (std::size_t j = 1; j < n; ++j)
    EPMOE_REQUIRE(expert_ids[j] > expert_ids[j - 1], ErrorKind::Input, source, ": expert ids must ascend");
}

}  // namespace epmoe
