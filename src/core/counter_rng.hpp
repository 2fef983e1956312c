// The counter-based generator behind synthetic weights and tokens (part of the synthetic-weight contract): element
// i of tensor t of expert e in layer l is a function of (seed, l, t, e, i) alone. Shared by the host
// (src/core/weights.cpp) and the device (src/cuda/), so that both produce the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define EPMOE_HOST_DEVICE __host__ __device__
#else
#define EPMOE_HOST_DEVICE
#endif

namespace epmoe::synthetic {

enum TensorId : std::uint64_t {
  kRouterWeight = 1,
  kRouterBias,
  kCorrectionBias,
  kW13,
  kW2,
  kB13,
  kB2,
  kSharedW13,
  kSharedW2,
  kLatentDown,
  kLatentUp,
  kTokens = 0xF00D,
  kRoutingSkew = 0xB1A5,
};

// The counter's first word for tensor `id` of `layer`.
EPMOE_HOST_DEVICE inline std::uint64_t tensor_key(int layer, TensorId id) {
  return (static_cast<std::uint64_t>(layer) << 8) | id;
}

EPMOE_HOST_DEVICE inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A uniform float in [-1, 1) with 24 random bits.
EPMOE_HOST_DEVICE inline float counter_uniform(std::uint64_t seed, std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  const std::uint64_t h = mix(seed ^ mix(a ^ mix(b ^ mix(c))));
  return static_cast<float>(static_cast<std::int64_t>(h >> 40) - (1ll << 23)) / static_cast<float>(1 << 23);
}

// Weights are uniform in [-s, s] with s = sqrt(3 / fan_in) (unit variance for unit-variance inputs).
inline float fan_in_scale(int fan_in) { return std::sqrt(3.0f / static_cast<float>(fan_in)); }

}  // namespace epmoe::synthetic
