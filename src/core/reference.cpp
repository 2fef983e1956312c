// The float64 dense reference: the checkpoint contract's "Semantics of one layer", step by step, in plain loops.
#include "epmoe/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include "epmoe/error.hpp"

namespace epmoe {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// y[o] = sum_i w[o, i] * x[i] (+ b[o]); w is [out, in] row-major.
std::vector<double> linear(const float* w, const float* b, int out, int in, const std::vector<double>& x) {
  std::vector<double> y(out);
  for (int o = 0; o < out; ++o) {
    double acc = b ? b[o] : 0.0;
    const float* row = w + static_cast<std::size_t>(o) * in;
    for (int i = 0; i < in; ++i) acc += static_cast<double>(row[i]) * x[i];
    y[o] = acc;
  }
  return y;
}

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// act(h) for an MLP whose first projection produced h (2I values for gated activations, I for relu2).
std::vector<double> activate(const ModelConfig& c, const std::vector<double>& h, int inter) {
  std::vector<double> a(inter);
  for (int j = 0; j < inter; ++j) {
    switch (c.activation) {
      case Activation::Silu: {
        const double g = h[j], u = h[inter + j];
        a[j] = g * sigmoid(g) * u;
        break;
      }
      case Activation::Gelu: {
        const double g = h[j], u = h[inter + j];
        a[j] = 0.5 * g * (1.0 + std::erf(g / std::sqrt(2.0))) * u;
        break;
      }
      case Activation::SwigluOai: {
        const double limit = c.swiglu_limit;
        const double g = std::min(h[j], limit);
        const double u = std::max(-limit, std::min(h[inter + j], limit));
        a[j] = (u + 1.0) * g * sigmoid(static_cast<double>(c.swiglu_alpha) * g);
        break;
      }
      case Activation::Relu2: {
        const double r = std::max(h[j], 0.0);
        a[j] = r * r;
        break;
      }
    }
  }
  return a;
}

std::vector<double> to_double(const float* p, int n) { return std::vector<double>(p, p + n); }

}  // namespace

ReferenceRouting reference_route(const ModelConfig& c, const LayerWeights& w, const Matrix<float>& x) {
  const int T = x.rows(), E = c.num_experts, K = c.top_k;
  ReferenceRouting r{Matrix<int>(T, K), Matrix<double>(T, K), Matrix<double>(T, E)};
  for (int t = 0; t < T; ++t) {
    const std::vector<double> xt = to_double(x.row(t), c.hidden_size);
    std::vector<double> logits = linear(w.router_weight.data(), nullptr, E, c.hidden_size, xt);
    if (!w.router_bias.empty())
      for (int e = 0; e < E; ++e) logits[e] += w.router_bias[e];
    std::vector<double> scores(E);
    if (c.scoring_func == ScoringFunc::Softmax) {
      const double m = *std::max_element(logits.begin(), logits.end());
      double sum = 0;
      for (int e = 0; e < E; ++e) sum += scores[e] = std::exp(logits[e] - m);
      for (double& s : scores) s /= sum;
    } else {
      for (int e = 0; e < E; ++e) scores[e] = sigmoid(logits[e]);
    }
    std::vector<double> sel(E);
    for (int e = 0; e < E; ++e) sel[e] = scores[e] + (w.correction_bias.empty() ? 0.0 : w.correction_bias[e]);

    if (c.topk_method == TopkMethod::Grouped && c.n_group > 1) {
      const int gs = E / c.n_group;
      std::vector<std::pair<double, int>> groups;
      for (int g = 0; g < c.n_group; ++g) {
        std::vector<double> v(sel.begin() + g * gs, sel.begin() + (g + 1) * gs);
        std::sort(v.rbegin(), v.rend());
        const double score = w.correction_bias.empty() ? v[0] : v[0] + v[1];
        groups.push_back({-score, g});  // ascending sort of (-score, id): best first, lower id on ties
      }
      std::sort(groups.begin(), groups.end());
      std::vector<bool> keep(c.n_group, false);
      for (int i = 0; i < c.topk_group; ++i) keep[groups[i].second] = true;
      for (int e = 0; e < E; ++e)
        if (!keep[e / gs]) sel[e] = kNegInf;
    }
    std::vector<std::pair<double, int>> ranked;
    for (int e = 0; e < E; ++e) ranked.push_back({-sel[e], e});
    std::sort(ranked.begin(), ranked.end());
    double sum = 0;
    for (int k = 0; k < K; ++k) {
      r.ids.at(t, k) = ranked[k].second;
      sum += r.weights.at(t, k) = scores[ranked[k].second];
    }
    if (c.norm_topk_prob)
      for (int k = 0; k < K; ++k) r.weights.at(t, k) /= sum;
    for (int e = 0; e < E; ++e) r.selection_scores.at(t, e) = sel[e];
  }
  return r;
}

Matrix<double> reference_layer(const ModelConfig& c, const LayerWeights& w, const Matrix<float>& x,
                               const Matrix<int>* forced_ids) {
  std::vector<int> local(c.num_experts, -1);  // global expert id -> index in `w`
  for (int j = 0; j < w.num_local_experts(); ++j) local[w.expert_ids[j]] = j;
  EPMOE_ASSERT(x.cols() == c.hidden_size, "input width ", x.cols());
  const int T = x.rows(), D = c.hidden_size, Din = c.expert_width(), I = c.moe_intermediate_size, K = c.top_k;
  const int R13 = c.w13_rows();
  const ReferenceRouting routing = reference_route(c, w, x);
  Matrix<double> out(T, D);
  for (int t = 0; t < T; ++t) {
    const std::vector<double> xt = to_double(x.row(t), D);
    // Step 3 with forced ids: weights are the unbiased reference scores of the given experts.
    std::vector<int> ids(K);
    std::vector<double> weights(K);
    for (int k = 0; k < K; ++k) {
      ids[k] = routing.ids.at(t, k);
      weights[k] = routing.weights.at(t, k);
    }
    if (forced_ids) {
      std::vector<double> logits = linear(w.router_weight.data(), nullptr, c.num_experts, D, xt);
      if (!w.router_bias.empty())
        for (int e = 0; e < c.num_experts; ++e) logits[e] += w.router_bias[e];
      const double m = *std::max_element(logits.begin(), logits.end());
      double z = 0;
      for (double l : logits) z += std::exp(l - m);
      double sum = 0;
      for (int k = 0; k < K; ++k) {
        ids[k] = forced_ids->at(t, k);
        const double l = logits[ids[k]];
        sum += weights[k] = c.scoring_func == ScoringFunc::Softmax ? std::exp(l - m) / z : sigmoid(l);
      }
      if (c.norm_topk_prob)
        for (double& v : weights) v /= sum;
    }
    // Step 4: routed input.
    const std::vector<double> xr =
        c.has_latent() ? linear(w.latent_down.data(), nullptr, c.latent_size, D, xt) : xt;
    // Steps 5-6: experts and the weighted sum, scaled once.
    std::vector<double> routed(Din, 0.0);
    for (int k = 0; k < K; ++k) {
      const int e = local[ids[k]];
      EPMOE_ASSERT(e >= 0, "the reference was given no weights for expert ", ids[k]);
      const float* w13 = w.w13.data() + static_cast<std::size_t>(e) * R13 * Din;
      const float* w2 = w.w2.data() + static_cast<std::size_t>(e) * Din * I;
      const float* b13 = w.b13.empty() ? nullptr : w.b13.data() + static_cast<std::size_t>(e) * R13;
      const float* b2 = w.b2.empty() ? nullptr : w.b2.data() + static_cast<std::size_t>(e) * Din;
      const std::vector<double> y = linear(w2, b2, Din, I, activate(c, linear(w13, b13, R13, Din, xr), I));
      for (int i = 0; i < Din; ++i) routed[i] += weights[k] * y[i];
    }
    for (double& v : routed) v *= c.routed_scaling_factor;
    std::vector<double> result =
        c.has_latent() ? linear(w.latent_up.data(), nullptr, D, c.latent_size, routed) : routed;
    // Step 7: shared expert on the original input.
    if (c.has_shared()) {
      const int Is = c.shared_intermediate_size;
      const std::vector<double> s = linear(
          w.shared_w2.data(), nullptr, D, Is,
          activate(c, linear(w.shared_w13.data(), nullptr, c.shared_w13_rows(), D, xt), Is));
      for (int i = 0; i < D; ++i) result[i] += s[i];
    }
    std::copy(result.begin(), result.end(), out.row(t));
  }
  return out;
}

bool VerifyReport::passed(double tolerance) const {
  return !nonfinite && rel_l2_error <= tolerance && near_tie_tokens == topk_mismatched_tokens;
}

std::string VerifyReport::describe() const {
  std::ostringstream out;
  out << "rel_l2_error=" << rel_l2_error << " max_abs_error=" << max_abs_error;
  if (routing_forced)
    out << " (" << tokens << " tokens, expert choice imposed: top-k agreement not measured)";
  else
    out << " topk_agreement=" << topk_agreement() * 100.0 << "% (" << topk_mismatched_tokens << " of " << tokens
        << " tokens differ, " << near_tie_tokens << " of them near-ties)";
  out << (nonfinite ? " NON-FINITE OUTPUT" : "");
  return out.str();
}

VerifyReport verify_layer(const ModelConfig& c, const LayerWeights& w, const Matrix<float>& x,
                          const Matrix<float>& output, const Matrix<int>& ids, double tie_tolerance,
                          bool routing_forced) {
  const int T = x.rows(), K = c.top_k;
  EPMOE_ASSERT(output.rows() == T && output.cols() == c.hidden_size && ids.rows() == T && ids.cols() == K,
               "verify shapes");
  VerifyReport report;
  report.tokens = T;
  report.routing_forced = routing_forced;
  const ReferenceRouting routing = reference_route(c, w, x);
  // A token whose expert set differs is a near-tie when every expert the backend chose scores within
  // tie_tolerance of the reference's K-th best selection score.
  bool any_mismatch = routing_forced;
  for (int t = 0; t < T && !routing_forced; ++t) {
    std::vector<int> a(ids.row(t), ids.row(t) + K), b(routing.ids.row(t), routing.ids.row(t) + K);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a == b) continue;
    any_mismatch = true;
    ++report.topk_mismatched_tokens;
    const double kth = routing.selection_scores.at(t, routing.ids.at(t, K - 1));
    bool tie = true;
    for (int e : a) {
      if (e < 0 || e >= c.num_experts) {
        tie = false;
        break;
      }
      const double s = routing.selection_scores.at(t, e);
      if (!(s >= kth - tie_tolerance)) tie = false;
    }
    if (tie) ++report.near_tie_tokens;
  }
  // Near-ties are checked with the backend's own choice, so the output error still measures the arithmetic.
  Matrix<int> safe_ids = ids;
  for (int& e : safe_ids.storage()) e = std::min(std::max(e, 0), c.num_experts - 1);
  const Matrix<double> ref = reference_layer(c, w, x, any_mismatch ? &safe_ids : nullptr);
  double err2 = 0, ref2 = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double o = output.data()[i];
    if (!std::isfinite(o)) report.nonfinite = true;
    const double d = o - ref.data()[i];
    err2 += d * d;
    ref2 += ref.data()[i] * ref.data()[i];
    report.max_abs_error = std::max(report.max_abs_error, std::abs(d));
  }
  report.rel_l2_error = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  if (report.nonfinite) report.rel_l2_error = std::numeric_limits<double>::infinity();
  return report;
}

}  // namespace epmoe
