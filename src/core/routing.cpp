// Top-k selection in float32: the CPU backend's router and the reference the GPU top-k kernel is tested against.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "epmoe/error.hpp"
#include "epmoe/routing.hpp"

namespace epmoe {
namespace {

// Strict "a ranks before b": higher score first, lower index on ties.
inline bool ranks_before(float score_a, int a, float score_b, int b) {
  return score_a > score_b || (score_a == score_b && a < b);
}

}  // namespace

Routing select_topk(const ModelConfig& c, const Matrix<float>& logits, const float* correction_bias) {
  const int T = logits.rows(), E = c.num_experts, K = c.top_k;
  EPMOE_ASSERT(logits.cols() == E, "logits width ", logits.cols(), " != num_experts ", E);
  Routing r{Matrix<int>(T, K), Matrix<float>(T, K)};
  std::vector<float> scores(E), selection(E), group_score;
  std::vector<int> order(E), group_order;
  const bool grouped = c.topk_method == TopkMethod::Grouped && c.n_group > 1;
  const int group_size = E / c.n_group;
  for (int t = 0; t < T; ++t) {
    const float* z = logits.row(t);
    if (c.scoring_func == ScoringFunc::Softmax) {
      const float m = *std::max_element(z, z + E);
      float sum = 0;
      for (int e = 0; e < E; ++e) sum += (scores[e] = std::exp(z[e] - m));
      for (int e = 0; e < E; ++e) scores[e] /= sum;
    } else {
      for (int e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-z[e]));
    }
    for (int e = 0; e < E; ++e) selection[e] = scores[e] + (correction_bias ? correction_bias[e] : 0.0f);

    if (grouped) {
      group_score.assign(c.n_group, 0.0f);
      for (int g = 0; g < c.n_group; ++g) {
        const float* s = selection.data() + g * group_size;
        float best = -std::numeric_limits<float>::infinity(), second = best;
        for (int i = 0; i < group_size; ++i) {
          if (s[i] > best) {
            second = best;
            best = s[i];
          } else if (s[i] > second) {
            second = s[i];
          }
        }
        group_score[g] = correction_bias ? best + second : best;
      }
      group_order.resize(c.n_group);
      for (int g = 0; g < c.n_group; ++g) group_order[g] = g;
      std::partial_sort(group_order.begin(), group_order.begin() + c.topk_group, group_order.end(),
                        [&](int a, int b) { return ranks_before(group_score[a], a, group_score[b], b); });
      std::vector<char> keep(c.n_group, 0);
      for (int i = 0; i < c.topk_group; ++i) keep[group_order[i]] = 1;
      for (int e = 0; e < E; ++e)
        if (!keep[e / group_size]) selection[e] = -std::numeric_limits<float>::infinity();
    }

    for (int e = 0; e < E; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&](int a, int b) { return ranks_before(selection[a], a, selection[b], b); });
    float sum = 0;
    for (int k = 0; k < K; ++k) {
      r.ids.at(t, k) = order[k];
      sum += (r.weights.at(t, k) = scores[order[k]]);
    }
    if (c.norm_topk_prob)
      for (int k = 0; k < K; ++k) r.weights.at(t, k) /= sum;
  }
  return r;
}

}  // namespace epmoe
