// Activations of the expert MLPs in float32, on rows of h = [gate | up] (gated) or h (relu2).
#pragma once

#include <algorithm>
#include <cmath>

#include "epmoe/config.hpp"

namespace epmoe::cpu {

struct ActivationParams {
  Activation kind;
  float alpha;  // swigluoai
  float limit;  // swigluoai
};

inline float activate_one(const ActivationParams& p, float gate, float up) {
  switch (p.kind) {
    case Activation::Silu: return gate / (1.0f + std::exp(-gate)) * up;
    case Activation::Gelu: return 0.5f * gate * (1.0f + std::erf(gate * 0.70710678118654752f)) * up;
    case Activation::SwigluOai: {
      const float g = std::min(gate, p.limit);
      const float u = std::max(-p.limit, std::min(up, p.limit));
      return (u + 1.0f) * g / (1.0f + std::exp(-p.alpha * g));
    }
    case Activation::Relu2: {
      const float r = std::max(gate, 0.0f);
      return r * r;
    }
  }
  return 0.0f;
}

// a[r, j] = act(h[r, j], h[r, inter + j]) for r < rows, j < inter. h rows have h_stride elements.
inline void activate_rows(const ActivationParams& p, const float* h, int h_stride, int rows, int inter, float* a) {
  const bool gated = p.kind != Activation::Relu2;
  for (int r = 0; r < rows; ++r) {
    const float* hr = h + static_cast<long>(r) * h_stride;
    float* ar = a + static_cast<long>(r) * inter;
    for (int j = 0; j < inter; ++j) ar[j] = activate_one(p, hr[j], gated ? hr[inter + j] : 0.0f);
  }
}

}  // namespace epmoe::cpu
