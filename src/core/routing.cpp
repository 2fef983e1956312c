// Top-k selection in float32: the CPU backend's router and the reference the GPU top-k kernel is tested against.
#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <vector>

#include "epmoe/error.hpp"
#include "counter_rng.hpp"
#include "epmoe/routing.hpp"
#include "epmoe/weights.hpp"

namespace epmoe {
namespace {

// Strict "a ranks before b": higher score first, lower index on ties.
inline bool ranks_before(float score_a, int a, float score_b, int b) {
  return score_a > score_b || (score_a == score_b && a < b);
}

// Step 1's scores of one token's logits: softmax (max-subtracted) or sigmoid.
void scores_of(const ModelConfig& c, const float* z, std::vector<float>& scores) {
  const int E = c.num_experts;
  if (c.scoring_func == ScoringFunc::Softmax) {
    const float m = *std::max_element(z, z + E);
    float sum = 0;
    for (int e = 0; e < E; ++e) sum += (scores[e] = std::exp(z[e] - m));
    for (int e = 0; e < E; ++e) scores[e] /= sum;
  } else {
    for (int e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-z[e]));
  }
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
    scores_of(c, logits.row(t), scores);
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

Routing routing_for_ids(const ModelConfig& c, const Matrix<float>& logits, const Matrix<int>& ids) {
  const int T = logits.rows(), K = c.top_k;
  EPMOE_REQUIRE(ids.rows() == T && ids.cols() == K, ErrorKind::Input, "forced expert ids are [", ids.rows(), ", ",
                ids.cols(), "], expected [", T, ", ", K, "]");
  Routing r{ids, Matrix<float>(T, K)};
  std::vector<float> scores(c.num_experts);
  for (int t = 0; t < T; ++t) {
    scores_of(c, logits.row(t), scores);
    float sum = 0;
    for (int k = 0; k < K; ++k) {
      const int e = ids.at(t, k);
      EPMOE_REQUIRE(e >= 0 && e < c.num_experts, ErrorKind::Input, "forced expert id ", e, " out of range");
      sum += (r.weights.at(t, k) = scores[e]);
    }
    if (c.norm_topk_prob)
      for (int k = 0; k < K; ++k) r.weights.at(t, k) /= sum;
  }
  return r;
}

std::string RoutingSkew::text() const {
  switch (kind) {
    case Kind::Real: return "real";
    case Kind::Uniform: return "uniform";
    case Kind::Zipf: return "zipf:" + std::to_string(param);
    case Kind::Hot: return "hot:" + std::to_string(param);
  }
  return "?";
}

RoutingSkew parse_routing_skew(const std::string& text, const std::string& flag) {
  RoutingSkew s;
  auto number = [&](const std::string& v, double lo, double hi) {
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    EPMOE_REQUIRE(!v.empty() && end && *end == '\0' && x >= lo && x <= hi, ErrorKind::Usage, flag, ": '", text,
                  "' needs a number in [", lo, ", ", hi, "] after the colon");
    return x;
  };
  if (text == "real") return s;
  if (text == "uniform") {
    s.kind = RoutingSkew::Kind::Uniform;
  } else if (text.rfind("zipf:", 0) == 0) {
    s.kind = RoutingSkew::Kind::Zipf;
    s.param = number(text.substr(5), 0.0, 10.0);
  } else if (text.rfind("hot:", 0) == 0) {
    s.kind = RoutingSkew::Kind::Hot;
    s.param = number(text.substr(4), 0.0, 1.0);
  } else {
    EPMOE_THROW(ErrorKind::Usage, flag, ": unknown routing '", text, "'; accepted: real, uniform, zipf:S, hot:P");
  }
  return s;
}

Matrix<int> synthetic_expert_ids(const ModelConfig& c, const RoutingSkew& skew, int num_tokens, long first_token,
                                 std::uint64_t seed) {
  EPMOE_ASSERT(skew.kind != RoutingSkew::Kind::Real, "synthetic ids need a skew");
  const int E = c.num_experts, K = c.top_k;
  std::vector<double> base(E, 1.0);
  if (skew.kind == RoutingSkew::Kind::Zipf)
    for (int e = 0; e < E; ++e) base[e] = 1.0 / std::pow(e + 1.0, skew.param);
  Matrix<int> ids(num_tokens, K);
  std::vector<double> w;
  for (int t = 0; t < num_tokens; ++t) {
    const std::uint64_t token = static_cast<std::uint64_t>(first_token + t);
    auto draw = [&](std::uint64_t i) { return 0.5 * (1.0 + synthetic::counter_uniform(seed, synthetic::kRoutingSkew, token, i)); };
    w = base;
    int k = 0;
    if (skew.kind == RoutingSkew::Kind::Hot && draw(1000) < skew.param) {
      ids.at(t, k++) = 0;
      w[0] = 0;
    }
    // K distinct experts, each drawn with probability proportional to its remaining weight.
    for (; k < K; ++k) {
      double total = 0;
      for (double v : w) total += v;
      double u = draw(static_cast<std::uint64_t>(k)) * total;
      int e = 0;
      while (e < E - 1 && (w[e] == 0 || u >= w[e])) {
        u -= w[e];
        ++e;
      }
      while (w[e] == 0) e = (e + 1) % E;
      ids.at(t, k) = e;
      w[e] = 0;
    }
  }
  return ids;
}

}  // namespace epmoe
