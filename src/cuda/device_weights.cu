#include "device_weights.cuh"

#include "../core/counter_rng.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace epmoe::cuda {
namespace {

template <class T>
DeviceBuffer<T> upload(const std::vector<T>& host, const char* name) {
  DeviceBuffer<T> d(host.size(), name);
  if (!host.empty()) EPMOE_CUDA_CHECK(cudaMemcpy(d.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

DeviceBuffer<bf16> upload_bf16(const float* data, std::size_t n, const char* name) {
  std::vector<bf16> h(n);
  for (std::size_t i = 0; i < n; ++i) h[i] = __float2bfloat16(data[i]);
  return upload(h, name);
}

// The router's weight as three bf16 parts for router_logit_parts_bf16x3 (gemm.cuh).
void split_router(DeviceWeights& w, cudaStream_t stream) {
  w.router_split = DeviceBuffer<bf16>(3 * w.router_weight.size(), "router_split");
  split_f32_to_bf16x3(w.router_weight.data(), w.router_split.data(), w.router_weight.size(), stream);
}

}  // namespace

std::size_t DeviceWeights::bytes() const {
  return router_weight.bytes() + router_split.bytes() + router_bias.bytes() + correction_bias.bytes() + w13.bytes() +
         w2.bytes() + b13.bytes() + b2.bytes() + shared_w13.bytes() + shared_w2.bytes() + latent_down.bytes() +
         latent_up.bytes();
}

void shared_slice(const ModelConfig& model, const UnpadPlan& plan, int rank, int num_ranks, int& lo, int& hi) {
  const int Is = model.shared_intermediate_size;
  const bool sliced = plan.shape.mode == Mode::AllReduce;
  lo = sliced ? static_cast<int>(static_cast<long>(Is) * rank / num_ranks) : 0;
  hi = sliced ? static_cast<int>(static_cast<long>(Is) * (rank + 1) / num_ranks) : Is;
}

DeviceWeights upload_weights(const ModelConfig& model, const UnpadPlan& plan, int rank, int num_ranks,
                             const LayerWeights& shard) {
  const int D = model.hidden_size, Din = model.expert_width(), Dp = plan.expert_width_padded;
  const int I = model.moe_intermediate_size, R13 = model.w13_rows(), n = shard.num_local_experts();
  DeviceWeights w;
  w.num_local = n;
  w.router_weight = upload(shard.router_weight.storage(), "router_weight");
  w.router_bias = upload(shard.router_bias, "router_bias");
  w.correction_bias = upload(shard.correction_bias, "correction_bias");
  split_router(w, nullptr);
  EPMOE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> w13(static_cast<std::size_t>(n) * R13 * Dp, 0.0f), w2(static_cast<std::size_t>(n) * Dp * I, 0.0f);
  for (int j = 0; j < n; ++j) {
    for (int r = 0; r < R13; ++r)
      std::copy_n(shard.w13.data() + (static_cast<std::size_t>(j) * R13 + r) * Din, Din,
                  w13.data() + (static_cast<std::size_t>(j) * R13 + r) * Dp);
    std::copy_n(shard.w2.data() + static_cast<std::size_t>(j) * Din * I, static_cast<std::size_t>(Din) * I,
                w2.data() + static_cast<std::size_t>(j) * Dp * I);
  }
  w.w13 = upload_bf16(w13.data(), w13.size(), "w13");
  w.w2 = upload_bf16(w2.data(), w2.size(), "w2");
  if (model.has_expert_bias) {
    std::vector<float> b2(static_cast<std::size_t>(n) * Dp, 0.0f);
    for (int j = 0; j < n; ++j)
      std::copy_n(shard.b2.data() + static_cast<std::size_t>(j) * Din, Din, b2.data() + static_cast<std::size_t>(j) * Dp);
    w.b13 = upload(shard.b13, "b13");
    w.b2 = upload(b2, "b2");
  }
  if (model.has_shared()) {
    int lo = 0, hi = 0;
    shared_slice(model, plan, rank, num_ranks, lo, hi);
    const int Is = model.shared_intermediate_size, inter = hi - lo, parts = model.gated() ? 2 : 1;
    w.shared_inter = inter;
    std::vector<float> s13(static_cast<std::size_t>(parts) * inter * D), s2(static_cast<std::size_t>(D) * inter);
    for (int p = 0; p < parts; ++p)
      for (int i = 0; i < inter; ++i)
        std::copy_n(shard.shared_w13.row(p * Is + lo + i), D, s13.data() + (static_cast<std::size_t>(p) * inter + i) * D);
    for (int d = 0; d < D; ++d)
      std::copy_n(shard.shared_w2.row(d) + lo, inter, s2.data() + static_cast<std::size_t>(d) * inter);
    w.shared_w13 = upload_bf16(s13.data(), s13.size(), "shared_w13");
    w.shared_w2 = upload_bf16(s2.data(), s2.size(), "shared_w2");
  }
  if (model.has_latent()) {
    w.latent_down = upload_bf16(shard.latent_down.data(), shard.latent_down.size(), "latent_down");
    w.latent_up = upload_bf16(shard.latent_up.data(), shard.latent_up.size(), "latent_up");
  }
  return w;
}

DeviceWeights generate_weights(const ModelConfig& c, const UnpadPlan& plan, int rank, int num_ranks,
                               const std::vector<int>& expert_ids, std::uint64_t seed, int layer,
                               cudaStream_t stream) {
  using namespace synthetic;  // the generator and tensor ids of src/core/weights.cpp
  auto key = [layer](TensorId id) { return tensor_key(layer, id); };
  const int D = c.hidden_size, Din = c.expert_width(), Dp = plan.expert_width_padded;
  const int I = c.moe_intermediate_size, R13 = c.w13_rows(), E = c.num_experts;
  const int n = static_cast<int>(expert_ids.size());
  DeviceWeights w;
  w.num_local = n;
  w.router_weight = DeviceBuffer<float>(static_cast<std::size_t>(E) * D, "router_weight");
  fill_counter_uniform(w.router_weight.data(), E, D, D, seed, key(kRouterWeight), 0, 2.0f * fan_in_scale(D), stream);
  split_router(w, stream);
  if (c.has_router_bias) {
    w.router_bias = DeviceBuffer<float>(E, "router_bias");
    fill_counter_uniform(w.router_bias.data(), 1, E, E, seed, key(kRouterBias), 0, 0.5f, stream);
  }
  if (c.has_correction_bias) {
    w.correction_bias = DeviceBuffer<float>(E, "correction_bias");
    fill_counter_uniform(w.correction_bias.data(), 1, E, E, seed, key(kCorrectionBias), 0, 0.1f, stream);
  }
  w.w13 = DeviceBuffer<bf16>(static_cast<std::size_t>(n) * R13 * Dp, "w13");
  w.w2 = DeviceBuffer<bf16>(static_cast<std::size_t>(n) * Dp * I, "w2");
  EPMOE_CUDA_CHECK(cudaMemsetAsync(w.w13.data(), 0, w.w13.bytes(), stream));
  EPMOE_CUDA_CHECK(cudaMemsetAsync(w.w2.data(), 0, w.w2.bytes(), stream));
  if (c.has_expert_bias) {
    w.b13 = DeviceBuffer<float>(static_cast<std::size_t>(n) * R13, "b13");
    w.b2 = DeviceBuffer<float>(static_cast<std::size_t>(n) * Dp, "b2");
    EPMOE_CUDA_CHECK(cudaMemsetAsync(w.b2.data(), 0, w.b2.bytes(), stream));
  }
  for (int j = 0; j < n; ++j) {
    const std::uint64_t e = static_cast<std::uint64_t>(expert_ids[j]);
    fill_counter_uniform(w.w13.data() + static_cast<std::size_t>(j) * R13 * Dp, R13, Din, Dp, seed, key(kW13), e,
                         fan_in_scale(Din), stream);
    fill_counter_uniform(w.w2.data() + static_cast<std::size_t>(j) * Dp * I, Din, I, I, seed, key(kW2), e,
                         fan_in_scale(I), stream);
    if (c.has_expert_bias) {
      fill_counter_uniform(w.b13.data() + static_cast<std::size_t>(j) * R13, 1, R13, R13, seed, key(kB13), e,
                           0.5f * fan_in_scale(Din), stream);
      fill_counter_uniform(w.b2.data() + static_cast<std::size_t>(j) * Dp, 1, Din, Din, seed, key(kB2), e,
                           0.5f * fan_in_scale(I), stream);
    }
  }
  if (c.has_shared()) {
    int lo = 0, hi = 0;
    shared_slice(c, plan, rank, num_ranks, lo, hi);
    const int Is = c.shared_intermediate_size, inter = hi - lo, parts = c.gated() ? 2 : 1;
    w.shared_inter = inter;
    // Generate the whole shared expert, then keep this rank's slice (rows of w13, columns of w2).
    DeviceBuffer<bf16> full13(static_cast<std::size_t>(parts) * Is * D, "shared_w13 (full)");
    DeviceBuffer<bf16> full2(static_cast<std::size_t>(D) * Is, "shared_w2 (full)");
    fill_counter_uniform(full13.data(), parts * Is, D, D, seed, key(kSharedW13), 0, fan_in_scale(D), stream);
    fill_counter_uniform(full2.data(), D, Is, Is, seed, key(kSharedW2), 0, fan_in_scale(Is), stream);
    w.shared_w13 = DeviceBuffer<bf16>(static_cast<std::size_t>(parts) * inter * D, "shared_w13");
    w.shared_w2 = DeviceBuffer<bf16>(static_cast<std::size_t>(D) * inter, "shared_w2");
    for (int p = 0; p < parts; ++p)
      EPMOE_CUDA_CHECK(cudaMemcpyAsync(w.shared_w13.data() + static_cast<std::size_t>(p) * inter * D,
                                       full13.data() + (static_cast<std::size_t>(p) * Is + lo) * D,
                                       static_cast<std::size_t>(inter) * D * sizeof(bf16), cudaMemcpyDeviceToDevice,
                                       stream));
    EPMOE_CUDA_CHECK(cudaMemcpy2DAsync(w.shared_w2.data(), inter * sizeof(bf16), full2.data() + lo, Is * sizeof(bf16),
                                       inter * sizeof(bf16), D, cudaMemcpyDeviceToDevice, stream));
    EPMOE_CUDA_CHECK(cudaStreamSynchronize(stream));  // before the full buffers are freed
  }
  if (c.has_latent()) {
    const int L = c.latent_size;
    w.latent_down = DeviceBuffer<bf16>(static_cast<std::size_t>(L) * D, "latent_down");
    w.latent_up = DeviceBuffer<bf16>(static_cast<std::size_t>(D) * L, "latent_up");
    fill_counter_uniform(w.latent_down.data(), L, D, D, seed, key(kLatentDown), 0, fan_in_scale(D), stream);
    fill_counter_uniform(w.latent_up.data(), D, L, L, seed, key(kLatentUp), 0, fan_in_scale(L), stream);
  }
  EPMOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return w;
}

}  // namespace epmoe::cuda
