// A rank's layer weights on the device, in the layouts the kernels want: experts bf16 and padded to the plan's width
// Dp with zeros ([n, R13, Dp] and [n, Dp, I]), expert biases fp32 (b2 padded to Dp), router fp32 (and split in three
// bf16 parts), shared expert sliced to this rank's share of the intermediate width in allreduce mode, latent
// projections bf16.
#pragma once

#include <cstdint>

#include "epmoe/config.hpp"
#include "epmoe/plan.hpp"
#include "epmoe/weights.hpp"
#include "kernels.cuh"
#include "resources.cuh"

namespace epmoe::cuda {

struct DeviceWeights {
  int num_local = 0;
  int shared_inter = 0;  // columns of this rank's shared slice (Is, or Is / R-ish in allreduce mode)
  DeviceBuffer<float> router_weight, router_bias, correction_bias;
  DeviceBuffer<bf16> router_split;  // [3, E, D]: router_weight's bf16 parts hi, mid, lo (split_f32_to_bf16x3)
  DeviceBuffer<bf16> w13, w2;
  DeviceBuffer<float> b13, b2;
  DeviceBuffer<bf16> shared_w13, shared_w2;
  DeviceBuffer<bf16> latent_down, latent_up;

  std::size_t bytes() const;
};

// This rank's contiguous share [lo, hi) of the shared intermediate width (the whole width in alltoall mode).
void shared_slice(const ModelConfig& model, const UnpadPlan& plan, int rank, int num_ranks, int& lo, int& hi);

// From a host shard (float32, unpadded): rounded to bf16 (router kept fp32), padded, sliced, uploaded.
DeviceWeights upload_weights(const ModelConfig& model, const UnpadPlan& plan, int rank, int num_ranks,
                             const LayerWeights& shard);
// Generated on the device with the counter generator of generate_layer_weights(): equal to upload_weights() of
// generate_layer_weights(model, seed, layer, expert_ids).
DeviceWeights generate_weights(const ModelConfig& model, const UnpadPlan& plan, int rank, int num_ranks,
                               const std::vector<int>& expert_ids, std::uint64_t seed, int layer,
                               cudaStream_t stream);

}  // namespace epmoe::cuda
