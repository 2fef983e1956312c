// The weights of one MoE layer in float32, unpadded, in nn.Linear orientation [out_features, in_features].
// A LayerWeights holds either a whole layer or one rank's shard: the router, shared and latent tensors in full,
// the routed experts only for `expert_ids`.
#pragma once

#include <cstdint>
#include <vector>

#include "epmoe/config.hpp"
#include "epmoe/tensor.hpp"

namespace epmoe {

struct LayerWeights {
  Matrix<float> router_weight;          // [E, D]
  std::vector<float> router_bias;       // [E], empty when the model has none
  std::vector<float> correction_bias;   // [E], empty when the model has none
  std::vector<int> expert_ids;          // global ids of the experts held, ascending
  std::vector<float> w13;               // [n, w13_rows, Din]
  std::vector<float> w2;                // [n, Din, I]
  std::vector<float> b13;               // [n, w13_rows] or empty
  std::vector<float> b2;                // [n, Din] or empty
  Matrix<float> shared_w13;             // [shared_w13_rows, D] or empty
  Matrix<float> shared_w2;              // [D, Is] or empty
  Matrix<float> latent_down;            // [L, D] or empty
  Matrix<float> latent_up;              // [D, L] or empty

  int num_local_experts() const { return static_cast<int>(expert_ids.size()); }
  // Throws ErrorKind::Input naming `source` if a tensor's size disagrees with `config`.
  void check_shapes(const ModelConfig& config, const std::string& source) const;
};

// Synthetic weights from a counter-based generator: element i of tensor t of expert e in layer l depends only on
// (seed, l, t, e, i), so a shard generated for some experts equals the same slice of the whole layer, on any rank.
// Values are uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] (biases: the same scale, halved).
// Which tensors of a layer to produce: all (the routed experts `expert_ids`), or the router's alone (balanced
// placement measures the loads with it before it knows which experts a rank holds; `expert_ids` must be empty).
enum class LayerParts { All, RouterOnly };
LayerWeights generate_layer_weights(const ModelConfig& config, std::uint64_t seed, int layer,
                                    const std::vector<int>& expert_ids, LayerParts parts = LayerParts::All);
std::vector<int> all_experts(const ModelConfig& config);

// The shard of `full` (which holds every expert) that holds `expert_ids`: router, shared and latent in full.
LayerWeights slice_experts(const ModelConfig& config, const LayerWeights& full, const std::vector<int>& expert_ids);

// The same generator for token tensors: uniform in [-1, 1], element (t, c) of global token t.
Matrix<float> generate_tokens(int num_tokens, int width, std::uint64_t seed, std::int64_t first_token = 0);

// A uniform float in [-1, 1) from the counter (seed, a, b, c): the generator behind the two functions above.
float counter_uniform(std::uint64_t seed, std::uint64_t a, std::uint64_t b, std::uint64_t c);

}  // namespace epmoe
