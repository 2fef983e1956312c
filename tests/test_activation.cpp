// The CPU activations against their float64 definitions (checkpoint contract, step 5).
#include <cmath>

#include "catch.hpp"
#include "cpu/activation.hpp"

using namespace epmoe;

namespace {
double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }
double expected(Activation a, double g, double u, double alpha, double limit) {
  switch (a) {
    case Activation::Silu: return g * sigmoid(g) * u;
    case Activation::Gelu: return 0.5 * g * (1.0 + std::erf(g / std::sqrt(2.0))) * u;
    case Activation::SwigluOai: {
      const double gc = std::min(g, limit), uc = std::max(-limit, std::min(u, limit));
      return (uc + 1.0) * gc * sigmoid(alpha * gc);
    }
    case Activation::Relu2: return g > 0 ? g * g : 0.0;
  }
  return 0;
}
}  // namespace

TEST_CASE("activations match their definitions, including swigluoai's clamps and (up + 1)", "[activation]") {
  for (Activation a : {Activation::Silu, Activation::Gelu, Activation::SwigluOai, Activation::Relu2}) {
    const cpu::ActivationParams p{a, 1.702f, 7.0f};
    for (float g = -12.0f; g <= 12.0f; g += 0.37f) {
      for (float u : {-11.0f, -7.5f, -1.0f, -0.2f, 0.0f, 0.6f, 3.0f, 9.0f}) {
        CAPTURE(to_string(a), g, u);
        const double want = expected(a, g, u, 1.702, 7.0);
        const double got = cpu::activate_one(p, g, u);
        REQUIRE(std::abs(got - want) <= 1e-5 * std::max(1.0, std::abs(want)));
      }
    }
  }
  // Spot values that pin the clamp semantics: gate clamps from above only, up clamps on both sides.
  const cpu::ActivationParams oai{Activation::SwigluOai, 1.702f, 7.0f};
  REQUIRE(std::abs(cpu::activate_one(oai, 10.0f, 0.0f) - cpu::activate_one(oai, 7.0f, 0.0f)) < 1e-6f);
  REQUIRE(cpu::activate_one(oai, -10.0f, 0.0f) != cpu::activate_one(oai, -7.0f, 0.0f));
  REQUIRE(std::abs(cpu::activate_one(oai, 1.0f, 20.0f) - cpu::activate_one(oai, 1.0f, 7.0f)) < 1e-6f);
  REQUIRE(std::abs(cpu::activate_one(oai, 1.0f, -20.0f) - cpu::activate_one(oai, 1.0f, -7.0f)) < 1e-6f);
}

TEST_CASE("activate_rows handles gated [gate | up] rows and non-gated rows", "[activation]") {
  const int inter = 3;
  const float h[2 * 2 * inter] = {1, -2, 3, 0.5f, 0.25f, -1, -1, 2, 0, 4, 5, 6};
  float a[2 * inter];
  cpu::activate_rows({Activation::Silu, 0, 0}, h, 2 * inter, 2, inter, a);
  REQUIRE(std::abs(a[1] - expected(Activation::Silu, -2, 0.25, 0, 0)) < 1e-6);
  REQUIRE(std::abs(a[5] - expected(Activation::Silu, 0, 6, 0, 0)) < 1e-6);
  cpu::activate_rows({Activation::Relu2, 0, 0}, h, 2 * inter, 2, inter, a);
  REQUIRE(a[0] == 1.0f);
  REQUIRE(a[1] == 0.0f);
  REQUIRE(a[4] == 4.0f);
}
