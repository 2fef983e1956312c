// Each CUDA kernel against its CPU reference on fresh random data (never zeros), outputs poisoned before each run so
// that an unwritten element fails. Tolerances: exact where the kernel only moves data; bf16 output rounding
// (rel L2 <= 3e-3) where it computes; routing weights to 1e-5 relative (float32 with another summation order).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "catch.hpp"
#include "cpu/activation.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/routing.hpp"
#include "gpu_test_support.hpp"
#include "gemm.cuh"
#include "kernels.cuh"
#include "resources.cuh"
#ifdef EPMOE_HAVE_CUTLASS
#include <cstdlib>
#include <string>

#include "cutlass_gemm.cuh"
#endif

namespace epmoe::testing {
namespace {

using cuda::bf16;
using cuda::DeviceBuffer;

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& h) {
  DeviceBuffer<T> d(std::max<std::size_t>(h.size(), 1));
  if (!h.empty()) EPMOE_CUDA_CHECK(cudaMemcpy(d.data(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& d, std::size_t n) {
  std::vector<T> h(n);
  EPMOE_CUDA_CHECK(cudaDeviceSynchronize());
  if (n) EPMOE_CUDA_CHECK(cudaMemcpy(h.data(), d.data(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
template <class T>
void poison(DeviceBuffer<T>& d) {
  EPMOE_CUDA_CHECK(cudaMemset(d.data(), 0xff, d.bytes()));  // NaN for floats and bf16, -1 for ints
}
std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = __float2bfloat16(v[i]);
  return out;
}
std::vector<float> to_float(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = __bfloat162float(v[i]);
  return out;
}
std::vector<float> uniform(std::mt19937_64& rng, std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST_CASE("router_topk equals select_topk for every router variant", "[cuda][kernels][router]") {
  const MpiComm comm;
  std::mt19937_64 rng(fresh_seed(comm, "router_topk"));
  std::vector<ModelConfig> configs;
  for (const auto& name : mini_preset_names()) configs.push_back(make_preset(name));
  for (const char* name : {"deepseek-v3", "qwen3-30b-a3b", "gpt-oss-120b", "nemotron-3-super"})
    configs.push_back(make_preset(name));
  // Variants the presets do not cover: grouped softmax without correction bias, sigmoid without renormalization.
  ModelConfig v1 = make_preset("deepseek-mini");
  v1.scoring_func = ScoringFunc::Softmax;
  v1.has_correction_bias = false;
  configs.push_back(v1);
  ModelConfig v2 = make_preset("nemotron-mini");
  v2.norm_topk_prob = false;
  v2.has_router_bias = true;
  configs.push_back(v2);
  for (const ModelConfig& c : configs)
  for (const int parts : {1, 3}) {  // the logits, or three partial logits that router_topk sums
    const int T = 333, E = c.num_experts, K = c.top_k;
    const std::vector<float> given = uniform(rng, static_cast<std::size_t>(T) * E * parts, -3, 3);
    std::vector<float> logits = given;
    if (parts == 3) {
      logits.resize(static_cast<std::size_t>(T) * E);
      for (std::size_t t = 0; t < static_cast<std::size_t>(T); ++t)
        for (int e = 0; e < E; ++e) {
          const float* z = given.data() + t * 3 * E;
          logits[t * E + e] = (z[2 * E + e] + z[E + e]) + z[e];  // in fp32, in router_topk's order
        }
    }
    const std::vector<float> rb = c.has_router_bias ? uniform(rng, E, -0.5f, 0.5f) : std::vector<float>{};
    const std::vector<float> cb = c.has_correction_bias ? uniform(rng, E, -0.1f, 0.1f) : std::vector<float>{};
    Matrix<float> biased(T, E);
    for (int t = 0; t < T; ++t)
      for (int e = 0; e < E; ++e) biased.at(t, e) = logits[static_cast<std::size_t>(t) * E + e] + (rb.empty() ? 0 : rb[e]);
    const Routing ref = select_topk(c, biased, cb.empty() ? nullptr : cb.data());

    auto d_logits = to_device(given);
    auto d_rb = to_device(rb);
    auto d_cb = to_device(cb);
    DeviceBuffer<int> d_ids(static_cast<std::size_t>(T) * K);
    DeviceBuffer<float> d_w(static_cast<std::size_t>(T) * K);
    poison(d_ids);
    poison(d_w);
    cuda::RouterParams p{T, E, K, c.scoring_func == ScoringFunc::Sigmoid,
                         c.topk_method == TopkMethod::Grouped && c.n_group > 1, c.n_group, c.topk_group,
                         c.norm_topk_prob, parts};
    cuda::router_topk(d_logits.data(), rb.empty() ? nullptr : d_rb.data(), cb.empty() ? nullptr : d_cb.data(), p,
                      d_ids.data(), d_w.data(), nullptr);
    const std::vector<int> ids = to_host(d_ids, static_cast<std::size_t>(T) * K);
    const std::vector<float> w = to_host(d_w, static_cast<std::size_t>(T) * K);
    long differ = 0;
    double worst_weight = 0;
    for (int t = 0; t < T; ++t) {
      bool same = true;
      for (int k = 0; k < K; ++k) same = same && ids[static_cast<std::size_t>(t) * K + k] == ref.ids.at(t, k);
      if (!same) {
        ++differ;
        continue;
      }
      for (int k = 0; k < K; ++k) {
        const double r = ref.weights.at(t, k), g = w[static_cast<std::size_t>(t) * K + k];
        worst_weight = std::max(worst_weight, std::abs(g - r) / std::max(1e-6, std::abs(r)));
      }
    }
    INFO(c.summary() << ", " << parts << " logit parts: " << differ << " of " << T
                     << " tokens route differently; worst weight error " << worst_weight);
    // Random float logits have no exact ties; only a last-bit difference of exp() could flip one, rarely.
    CHECK(differ <= T / 100);
    CHECK(worst_weight <= 1e-5);
  }
}

TEST_CASE("convert_f32_to_bf16 rounds and tells whether every input was a bf16", "[cuda][kernels][router]") {
  // The router takes its bf16x3 GEMMs only on input that is bf16 already: one value with low bits must say so.
  const MpiComm comm;
  std::mt19937_64 rng(fresh_seed(comm, "convert_f32_to_bf16"));
  const std::size_t n = 100003;
  std::vector<float> x = uniform(rng, n, -3.0f, 3.0f);
  for (float& v : x) v = __bfloat162float(__float2bfloat16(v));
  cuda::PinnedBuffer<int> flag;
  flag.reserve(1);
  for (const bool perturb : {false, true}) {
    std::vector<float> in = x;
    const std::size_t at = std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    if (perturb) in[at] = std::nextafter(in[at], 10.0f);  // one ulp of fp32: no longer a bf16
    DeviceBuffer<float> d_in = to_device(in);
    DeviceBuffer<bf16> d_out(n);
    poison(d_out);
    flag.data()[0] = 0;
    cuda::convert_f32_to_bf16(d_in.data(), d_out.data(), n, nullptr, flag.data());
    const std::vector<float> out = to_float(to_host(d_out, n));
    INFO("perturbed " << perturb << " at " << at);
    CHECK(*reinterpret_cast<volatile int*>(flag.data()) == (perturb ? 1 : 0));
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < n; ++i) wrong += out[i] != __bfloat162float(__float2bfloat16(in[i]));
    CHECK(wrong == 0);
  }
}

TEST_CASE("the router's logits from three bf16 parts are as exact as the fp32 GEMM's", "[cuda][kernels][router]") {
  // x bf16 (as the layer's activations are), w fp32: the sum of router_logit_parts_bf16x3's three partial logits
  // (in router_topk's order) and linear_f32 against float64, each
  // logit's error over sum_i |x_i w_i|, within an fp32 dot product's worst case k * 2^-24 (6e-5 here; typically
  // sqrt(k) * 2^-24). One bf16 part alone (w rounded to bf16) errs by up to 2^-9: the test's check that it can fail.
  const MpiComm comm;
  std::mt19937_64 rng(fresh_seed(comm, "router_logit_parts_bf16x3"));
  const int m = 96, n = 160, k = 1000;
  std::vector<float> x = uniform(rng, static_cast<std::size_t>(m) * k, -2.0f, 2.0f);
  for (float& v : x) v = __bfloat162float(__float2bfloat16(v));
  const std::vector<float> w = uniform(rng, static_cast<std::size_t>(n) * k, -0.05f, 0.05f);
  DeviceBuffer<float> d_x32 = to_device(x), d_w = to_device(w);
  DeviceBuffer<bf16> d_x = to_device(to_bf16(x)), d_parts(3 * w.size());
  DeviceBuffer<float> d_split(static_cast<std::size_t>(m) * 3 * n), d_fp32(static_cast<std::size_t>(m) * n);
  poison(d_split);
  poison(d_fp32);
  poison(d_parts);
  cuda::CublasHandle cublas;
  cuda::split_f32_to_bf16x3(d_w.data(), d_parts.data(), w.size(), nullptr);
  cuda::router_logit_parts_bf16x3(cublas.get(), m, n, k, d_x.data(), k, d_parts.data(), d_split.data(), 3 * n);
  cuda::linear_f32(cublas.get(), m, n, k, d_x32.data(), k, d_w.data(), k, d_fp32.data(), n);
  const std::vector<float> split = to_host(d_split, d_split.size()), fp32 = to_host(d_fp32, d_fp32.size());
  const std::vector<float> parts = to_float(to_host(d_parts, d_parts.size()));
  double err_split = 0, err_fp32 = 0, err_hi = 0, parts_err = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double sum = static_cast<double>(parts[i]) + parts[w.size() + i] + parts[2 * w.size() + i];
    parts_err = std::max(parts_err, std::abs(sum - w[i]) / std::abs(w[i]));
  }
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < n; ++c) {
      double exact = 0, scale = 0, hi = 0;
      for (int i = 0; i < k; ++i) {
        const double xi = x[static_cast<std::size_t>(r) * k + i], wi = w[static_cast<std::size_t>(c) * k + i];
        exact += xi * wi;
        scale += std::abs(xi * wi);
        hi += xi * parts[static_cast<std::size_t>(c) * k + i];
      }
      const std::size_t o = static_cast<std::size_t>(r) * n + c;
      const float* z = split.data() + static_cast<std::size_t>(r) * 3 * n;
      const float logit = (z[2 * n + c] + z[n + c]) + z[c];
      err_split = std::max(err_split, std::abs(logit - exact) / scale);
      err_fp32 = std::max(err_fp32, std::abs(fp32[o] - exact) / scale);
      err_hi = std::max(err_hi, std::abs(static_cast<float>(hi) - exact) / scale);
    }
  std::printf("# router logits, max error over sum |x w| (k = %d): bf16x3 %.3g, fp32 %.3g, bf16 alone %.3g; parts %.3g\n",
              k, err_split, err_fp32, err_hi, parts_err);
  INFO("parts " << parts_err << ", bf16x3 " << err_split << ", fp32 " << err_fp32 << ", bf16 alone " << err_hi);
  CHECK(parts_err <= std::ldexp(1.0, -26));
  const double bound = k * std::ldexp(1.0, -24);
  CHECK(err_split <= bound);
  CHECK(err_fp32 <= bound);
  CHECK(err_hi > 1e-4);
}

TEST_CASE("bias_activation equals the CPU activation", "[cuda][kernels][activation]") {
  const MpiComm comm;
  std::mt19937_64 rng(fresh_seed(comm, "bias_activation"));
  for (Activation kind : {Activation::Silu, Activation::Gelu, Activation::SwigluOai, Activation::Relu2}) {
    // inter: the 16-byte path, the scalar path, more columns than a block's threads; each with and without a bias.
    // Variant 6: more rows than the grid's 65535 tiles of up to 32 rows, so that threads stride over the tiles.
    for (int variant = 0; variant < 7; ++variant) {
      const int inter = std::array<int, 4>{96, 90, 2880, 8}[variant / 2];
      const bool has_bias = variant % 2 == 0;
      // Each row's expert at random (runs of one expert, as in the layout, and changes within a thread's rows),
      // about one row in six padding (-1: left alone).
      const bool gated = kind != Activation::Relu2;
      const int rows = variant == 6 ? 65535 * 32 + 157 : 157, h_cols = gated ? 2 * inter : inter, n = 5;
      const std::vector<float> h = to_float(to_bf16(uniform(rng, static_cast<std::size_t>(rows) * h_cols, -9, 9)));
      std::vector<float> bias = uniform(rng, static_cast<std::size_t>(n) * h_cols, -1, 1);
      if (!has_bias) std::fill(bias.begin(), bias.end(), 0.0f);
      std::vector<int> expert(rows);
      for (int i = 0; i < rows; ++i) {
        const bool same = i > 0 && expert[i - 1] >= 0 && rng() % 2;
        expert[i] = rng() % 6 == 0 ? -1 : same ? expert[i - 1] : static_cast<int>(rng() % n);
      }
      const cpu::ActivationParams cp{kind, 1.702f, 7.0f};
      std::vector<float> ref(static_cast<std::size_t>(rows) * inter);
      for (int i = 0; i < rows; ++i)
        for (int j = 0; j < inter; ++j) {
          if (expert[i] < 0) continue;
          const float* hr = &h[static_cast<std::size_t>(i) * h_cols];
          const float* b = &bias[static_cast<std::size_t>(expert[i]) * h_cols];
          ref[static_cast<std::size_t>(i) * inter + j] =
              cpu::activate_one(cp, hr[j] + b[j], gated ? hr[inter + j] + b[inter + j] : 0.0f);
        }
      auto d_h = to_device(to_bf16(h));
      auto d_b = to_device(bias);
      auto d_expert = to_device(expert);
      DeviceBuffer<bf16> d_a(ref.size());
      poison(d_a);
      const std::vector<bf16> before = to_host(d_a, ref.size());
      cuda::bias_activation(d_h.data(), rows, h_cols, inter, has_bias ? d_b.data() : nullptr, d_expert.data(),
                            cuda::ActivationParams{kind, 1.702f, 7.0f}, d_a.data(), nullptr);
      const std::vector<bf16> after = to_host(d_a, ref.size());
      std::vector<float> got = to_float(after);
      bool padding_untouched = true;
      for (int i = 0; i < rows; ++i)
        for (int j = 0; j < inter && expert[i] < 0; ++j) {
          const std::size_t q = static_cast<std::size_t>(i) * inter + j;
          padding_untouched = padding_untouched && std::memcmp(&after[q], &before[q], sizeof(bf16)) == 0;
          got[q] = 0.0f;  // compared apart
        }
      const double err = rel_l2(got, ref);
      INFO(to_string(kind) << " inter " << inter << (has_bias ? " bias" : "") << ": rel_l2 " << err);
      CHECK(err <= 3e-3);
      CHECK(padding_untouched);
    }
  }
}

TEST_CASE("pair scatter with padding and weighted sum equal the CPU loops", "[cuda][kernels][experts]") {
  const MpiComm comm;
  std::mt19937_64 rng(fresh_seed(comm, "experts kernels"));
  for (int width : {168, 180}) {
    for (int padded : {width, 256}) {
      const int N = 211, K = 6, n = 7;
      // Rows with 0..K pairs on distinct local experts.
      std::vector<int> meta(static_cast<std::size_t>(N) * 2 * K);
      for (int i = 0; i < N; ++i) {
        std::vector<int> experts(n);
        std::iota(experts.begin(), experts.end(), 0);
        std::shuffle(experts.begin(), experts.end(), rng);
        const int used = static_cast<int>(rng() % (K + 1));
        for (int k = 0; k < K; ++k) {
          const float w = std::uniform_real_distribution<float>(0.05f, 1.0f)(rng);
          int bits;
          std::memcpy(&bits, &w, sizeof bits);
          meta[static_cast<std::size_t>(i) * 2 * K + k] = k < used ? bits : 0;
          meta[static_cast<std::size_t>(i) * 2 * K + K + k] = k < used ? experts[k] : -1;
        }
      }
      const std::vector<float> rows = to_float(to_bf16(uniform(rng, static_cast<std::size_t>(N) * width, -1, 1)));
      auto d_meta = to_device(meta);
      auto d_rows = to_device(to_bf16(rows));
      const std::size_t slots = static_cast<std::size_t>(N) * K;
      std::vector<int> counts(n, 0);
      for (std::size_t q = 0; q < slots; ++q) {
        const int e = meta[(q / K) * 2 * K + K + q % K];
        if (e >= 0) ++counts[e];
      }
      DeviceBuffer<int> pair_pos(slots);
      std::vector<int> pos;
      // A grouped layout (expert e's block longer than its pairs by e) and the compact one (blocks = counts).
      for (int extra : {1, 0}) {
        std::vector<int> base(n + 1, 0);
        for (int e = 0; e < n; ++e) base[e + 1] = base[e] + counts[e] + extra * e;
        const int layout_rows = base[n];
        auto d_base = to_device(base);
        auto d_cursor = to_device(std::vector<int>(n + 1, 0));
        DeviceBuffer<bf16> x_sorted(static_cast<std::size_t>(layout_rows) * padded);
        auto d_row_expert = to_device(std::vector<int>(layout_rows, -1));
        poison(x_sorted);
        poison(pair_pos);
        cuda::scatter_pairs(d_rows.data(), N, width, padded, d_meta.data(), K,
                            cuda::ExpertRows{d_base.data(), d_cursor.data()}, x_sorted.data(), pair_pos.data(),
                            d_row_expert.data(), nullptr);
        const std::vector<float> xs = to_float(to_host(x_sorted, x_sorted.size()));
        pos = to_host(pair_pos, slots);
        const std::vector<int> row_expert = to_host(d_row_expert, layout_rows), cursor = to_host(d_cursor, n);
        // Every valid slot owns one distinct row among the first counts[e] of its block, holding its token's row
        // padded with zeros; unused slots say -1; the block's other rows stay -1 in row_expert.
        std::vector<int> owner_slot(layout_rows, -1);
        bool ok = true;
        for (std::size_t q = 0; q < slots; ++q) {
          const int e = meta[(q / K) * 2 * K + K + q % K], r = pos[q];
          if (e < 0) {
            ok = ok && r == -1;
            continue;
          }
          ok = ok && r >= base[e] && r < base[e] + counts[e] && owner_slot[r] == -1 && row_expert[r] == e;
          if (!ok) break;
          owner_slot[r] = static_cast<int>(q);
          for (int c = 0; c < padded; ++c) {
            const float want = c < width ? rows[(q / K) * width + c] : 0.0f;
            ok = ok && xs[static_cast<std::size_t>(r) * padded + c] == want;
          }
        }
        for (int r = 0; r < layout_rows; ++r) ok = ok && (owner_slot[r] == -1) == (row_expert[r] == -1);
        for (int e = 0; e < n; ++e) ok = ok && cursor[e] == counts[e];
        INFO("width " << width << " padded " << padded << (extra ? " grouped" : " compact") << " layout");
        CHECK(ok);
      }
      const int pairs = std::accumulate(counts.begin(), counts.end(), 0);

      // Weighted sum: y as if the experts had run, b2 padded, scale applied once.
      const std::vector<float> y = to_float(to_bf16(uniform(rng, static_cast<std::size_t>(pairs) * padded, -2, 2)));
      const std::vector<float> b2 = uniform(rng, static_cast<std::size_t>(n) * padded, -0.3f, 0.3f);
      const float scale = 2.5f;
      std::vector<float> ref(static_cast<std::size_t>(N) * width, 0.0f);
      for (int i = 0; i < N; ++i)
        for (int k = 0; k < K; ++k) {
          const int e = meta[static_cast<std::size_t>(i) * 2 * K + K + k];
          if (e < 0) continue;
          float w;
          std::memcpy(&w, &meta[static_cast<std::size_t>(i) * 2 * K + k], sizeof w);
          const int p = pos[static_cast<std::size_t>(i) * K + k];
          for (int c = 0; c < width; ++c)
            ref[static_cast<std::size_t>(i) * width + c] +=
                scale * w * (y[static_cast<std::size_t>(p) * padded + c] + b2[static_cast<std::size_t>(e) * padded + c]);
        }
      auto d_y = to_device(to_bf16(y));
      auto d_b2 = to_device(b2);
      DeviceBuffer<bf16> out(ref.size());
      poison(out);
      cuda::weighted_sum(d_y.data(), padded, pair_pos.data(), d_meta.data(), N, K, width, d_b2.data(), scale,
                         out.data(), nullptr);
      const double err = rel_l2(to_float(to_host(out, ref.size())), ref);
      INFO("width " << width << " padded " << padded << " weighted_sum rel_l2 " << err);
      CHECK(err <= 3e-3);
    }
  }
}

// T tokens with K of E experts each, round-robin over R ranks.
static void check_dispatch_kernels(std::mt19937_64& rng, int T, int K, int E, int R) {
  const int width = 96, max_local = E / R;
  INFO("T " << T << " K " << K << " E " << E << " R " << R);
  std::vector<int> owner(E), local(E);
  for (int e = 0; e < E; ++e) {
    owner[e] = e % R;  // round-robin
    local[e] = e / R;
  }
  std::vector<int> ids(static_cast<std::size_t>(T) * K);
  for (int t = 0; t < T; ++t) {
    std::vector<int> all(E);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    for (int k = 0; k < K; ++k) ids[static_cast<std::size_t>(t) * K + k] = all[k];
  }
  const std::vector<float> weights = uniform(rng, ids.size(), 0.01f, 1.0f);
  const std::vector<float> xr = to_float(to_bf16(uniform(rng, static_cast<std::size_t>(T) * width, -1, 1)));
  auto d_ids = to_device(ids);
  auto d_w = to_device(weights);
  auto d_owner = to_device(owner);
  auto d_local = to_device(local);
  auto d_x = to_device(to_bf16(xr));
  DeviceBuffer<int> flags(static_cast<std::size_t>(R) * T), positions(static_cast<std::size_t>(R) * T),
      counts(static_cast<std::size_t>(R) * (1 + max_local));
  DeviceBuffer<unsigned char> temp;
  poison(flags);
  poison(positions);
  poison(counts);  // dispatch_layout writes every entry
  cuda::dispatch_layout(d_ids.data(), T, K, d_owner.data(), d_local.data(), R, max_local, flags.data(),
                        positions.data(), counts.data(), temp, nullptr);
  // CPU bookkeeping: rows destination-major, token order within a destination.
  std::vector<int> want_counts(static_cast<std::size_t>(R) * (1 + max_local), 0);
  std::vector<std::pair<int, int>> rows;  // (rank, token)
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      bool needs = false;
      for (int k = 0; k < K; ++k) {
        const int e = ids[static_cast<std::size_t>(t) * K + k];
        if (owner[e] == r) {
          needs = true;
          ++want_counts[r * (1 + max_local) + 1 + local[e]];
        }
      }
      if (needs) {
        rows.push_back({r, t});
        ++want_counts[r * (1 + max_local)];
      }
    }
  CHECK(to_host(counts, want_counts.size()) == want_counts);
  const int sent = static_cast<int>(rows.size());
  // flags, and positions: the exclusive scan of the flags, destination-major.
  std::vector<int> want_flags(static_cast<std::size_t>(R) * T, 0), want_positions(want_flags.size());
  for (const auto& [r, t] : rows) want_flags[static_cast<std::size_t>(r) * T + t] = 1;
  std::exclusive_scan(want_flags.begin(), want_flags.end(), want_positions.begin(), 0);
  CHECK(to_host(flags, want_flags.size()) == want_flags);
  CHECK(to_host(positions, want_positions.size()) == want_positions);
  DeviceBuffer<bf16> send_rows(static_cast<std::size_t>(sent) * width);
  DeviceBuffer<int> send_meta(static_cast<std::size_t>(sent) * 2 * K);
  poison(send_rows);
  poison(send_meta);
  cuda::pack_dispatch(d_x.data(), width, d_ids.data(), d_w.data(), T, K, d_owner.data(), d_local.data(), R,
                      flags.data(), positions.data(), send_rows.data(), send_meta.data(), nullptr);
  const std::vector<float> got_rows = to_float(to_host(send_rows, static_cast<std::size_t>(sent) * width));
  const std::vector<int> got_meta = to_host(send_meta, static_cast<std::size_t>(sent) * 2 * K);
  bool pack_ok = true;
  for (int p = 0; p < sent; ++p) {
    const auto [r, t] = rows[p];
    for (int c = 0; c < width; ++c)
      pack_ok = pack_ok && got_rows[static_cast<std::size_t>(p) * width + c] == xr[static_cast<std::size_t>(t) * width + c];
    int slot = 0;
    for (int k = 0; k < K; ++k) {
      const int e = ids[static_cast<std::size_t>(t) * K + k];
      if (owner[e] != r) continue;
      float w;
      std::memcpy(&w, &got_meta[static_cast<std::size_t>(p) * 2 * K + slot], sizeof w);
      pack_ok = pack_ok && w == weights[static_cast<std::size_t>(t) * K + k] &&
                got_meta[static_cast<std::size_t>(p) * 2 * K + K + slot] == local[e];
      ++slot;
    }
    for (; slot < K; ++slot) pack_ok = pack_ok && got_meta[static_cast<std::size_t>(p) * 2 * K + K + slot] == -1;
  }
  CHECK(pack_ok);
  // Combine: each returned row is the sent row scaled by (rank + 1); the home rank sums them per token.
  std::vector<float> back(static_cast<std::size_t>(sent) * width);
  std::vector<float> want(static_cast<std::size_t>(T) * width, 0.0f);
  for (int p = 0; p < sent; ++p) {
    const auto [r, t] = rows[p];
    for (int c = 0; c < width; ++c) {
      back[static_cast<std::size_t>(p) * width + c] = round_bf16((r + 1) * xr[static_cast<std::size_t>(t) * width + c]);
      want[static_cast<std::size_t>(t) * width + c] += back[static_cast<std::size_t>(p) * width + c];
    }
  }
  auto d_back = to_device(to_bf16(back));
  DeviceBuffer<bf16> routed(want.size());
  poison(routed);
  cuda::combine_sum(d_back.data(), width, flags.data(), positions.data(), T, R, routed.data(), nullptr);
  const double err = rel_l2(to_float(to_host(routed, want.size())), want);
  INFO("combine_sum rel_l2 " << err);
  CHECK(err <= 3e-3);
}

TEST_CASE("dispatch layout, pack and home-rank combine equal the CPU bookkeeping", "[cuda][kernels][dispatch]") {
  const MpiComm comm;
  std::mt19937_64 rng(fresh_seed(comm, "dispatch kernels"));
  // Few and many tokens, ranks and experts per rank.
  check_dispatch_kernels(rng, 173, 4, 24, 3);
  check_dispatch_kernels(rng, 5000, 8, 64, 8);
  check_dispatch_kernels(rng, 300, 2, 80, 40);
}

TEST_CASE("the device counter generator equals the host one bit for bit", "[cuda][kernels][synthetic]") {
  const MpiComm comm;
  const std::uint64_t seed = fresh_seed(comm, "counter generator");
  const int rows = 37, cols = 53, ld = 64;
  DeviceBuffer<bf16> d(static_cast<std::size_t>(rows) * ld);
  DeviceBuffer<float> f(static_cast<std::size_t>(rows) * ld);
  poison(d);
  poison(f);
  cuda::fill_counter_uniform(d.data(), rows, cols, ld, seed, 0x104, 17, 0.123f, nullptr);
  cuda::fill_counter_uniform(f.data(), rows, cols, ld, seed, 0x104, 17, 0.123f, nullptr);
  const std::vector<float> got = to_float(to_host(d, d.size()));
  const std::vector<float> got_f = to_host(f, f.size());
  bool ok = true;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const float want = 0.123f * counter_uniform(seed, 0x104, 17, static_cast<std::uint64_t>(r) * cols + c);
      ok = ok && got_f[static_cast<std::size_t>(r) * ld + c] == want &&
           got[static_cast<std::size_t>(r) * ld + c] == round_bf16(want);
    }
  CHECK(ok);
}

#ifdef EPMOE_HAVE_CUTLASS
TEST_CASE("the CUTLASS grouped GEMM equals the CPU product for ragged groups and strided rows",
          "[cuda][kernels][cutlass]") {
  const MpiComm comm;
  std::mt19937_64 rng(fresh_seed(comm, "cutlass grouped gemm"));
  // Widths not multiples of the tiles (n 264 vs 256 and 128, k 200 vs 64); leading dimensions past the widths;
  // row counts from 1 to past two tiles, each group's rows at an odd offset of one buffer (as the experts' blocks).
  const int n = 264, k = 200, ldx = 208, ldw = 216, ldo = 280, groups = 37;
  std::vector<int> m(groups), first(groups + 1, 0);
  for (int g = 0; g < groups; ++g) {
    m[g] = g == 0 ? 1 : g == 1 ? 513 : 1 + static_cast<int>(rng() % 300);
    first[g + 1] = first[g] + m[g] + 3;
  }
  const int rows = first[groups];
  const std::vector<float> x = to_float(to_bf16(uniform(rng, static_cast<std::size_t>(rows) * ldx, -1, 1)));
  const std::vector<float> w = to_float(to_bf16(uniform(rng, static_cast<std::size_t>(groups) * n * ldw, -1, 1)));
  auto d_x = to_device(to_bf16(x));
  auto d_w = to_device(to_bf16(w));
  // Every tile configuration, and the scheduler's other order and a swizzle.
  const char* configs[][3] = {{"128x256", "m", "1"}, {"128x256c2", "m", "1"}, {"128x256", "n", "2"},
                              {"128x256c2", "n", "4"}};
  for (const auto& config : configs) {
    const std::string tile = std::string(config[0]) + " raster " + config[1] + " swizzle " + config[2];
    setenv("EPMOE_CUDA_CUTLASS_TILE", config[0], 1);
    setenv("EPMOE_CUDA_CUTLASS_RASTER", config[1], 1);
    setenv("EPMOE_CUDA_CUTLASS_SWIZZLE", config[2], 1);
    cuda::CutlassGroupedGemm gemm(groups + 5);
    unsetenv("EPMOE_CUDA_CUTLASS_TILE");
    unsetenv("EPMOE_CUDA_CUTLASS_RASTER");
    unsetenv("EPMOE_CUDA_CUTLASS_SWIZZLE");
    DeviceBuffer<bf16> out(static_cast<std::size_t>(rows) * ldo);
    poison(out);
    const cuda::CutlassShape shape{n, k, ldx, ldw, ldo};
    std::vector<unsigned char> host(gemm.block_bytes());
    for (int g = 0; g < groups; ++g)
      gemm.set_group(host.data(), g, m[g], d_x.data() + static_cast<std::size_t>(first[g]) * ldx,
                     d_w.data() + static_cast<std::size_t>(g) * n * ldw,
                     out.data() + static_cast<std::size_t>(first[g]) * ldo, shape);
    DeviceBuffer<unsigned char> device(host.size());
    EPMOE_CUDA_CHECK(cudaMemcpy(device.data(), host.data(), host.size(), cudaMemcpyHostToDevice));
    gemm.run(device.data(), host.data(), groups, nullptr);
    const std::vector<float> got = to_float(to_host(out, out.size()));
    double worst = 0;
    bool untouched = true;  // rows between groups and columns past n keep the poison (NaN)
    for (int g = 0; g < groups; ++g) {
      std::vector<float> ref(static_cast<std::size_t>(m[g]) * n), mine(ref.size());
      for (int i = 0; i < m[g]; ++i) {
        const std::size_t r = static_cast<std::size_t>(first[g] + i);
        for (int j = 0; j < n; ++j) {
          double acc = 0;
          for (int q = 0; q < k; ++q)
            acc += static_cast<double>(x[r * ldx + q]) * w[(static_cast<std::size_t>(g) * n + j) * ldw + q];
          ref[static_cast<std::size_t>(i) * n + j] = static_cast<float>(acc);
          mine[static_cast<std::size_t>(i) * n + j] = got[r * ldo + j];
        }
        for (int j = n; j < ldo; ++j) untouched = untouched && std::isnan(got[r * ldo + j]);
      }
      for (int gap = first[g] + m[g]; gap < first[g + 1]; ++gap)
        for (int j = 0; j < ldo; ++j) untouched = untouched && std::isnan(got[static_cast<std::size_t>(gap) * ldo + j]);
      worst = std::max(worst, rel_l2(mine, ref));
    }
    INFO("tile " << tile << ": worst group rel_l2 " << worst);
    CHECK(worst <= 3e-3);
    CHECK(untouched);
    CHECK(cuda::CutlassGroupedGemm::supports(shape));
    CHECK_FALSE(cuda::CutlassGroupedGemm::supports(cuda::CutlassShape{n, 180, ldx, ldw, ldo}));
  }
}
#endif

}  // namespace epmoe::testing
