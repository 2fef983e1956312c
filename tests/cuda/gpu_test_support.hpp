// Helpers of the GPU tests: skip decisions, fresh seeds, bf16 rounding of the reference's inputs, comparisons.
#pragma once

#include <cstdint>
#include <vector>

#include "epmoe/comm.hpp"
#include "epmoe/tensor.hpp"
#include "epmoe/weights.hpp"

namespace epmoe::testing {

// Null when the GPU tests can run here; else why not (no GPU, or more ranks on this node than GPUs).
const char* gpu_skip_reason();

// A seed fresh for every run (EPMOE_TEST_SEED overrides it), the same on every rank; printed by rank 0.
std::uint64_t fresh_seed(const MpiComm& comm, const char* what);

float round_bf16(float v);
void round_bf16(float* data, std::size_t n);
void round_bf16(Matrix<float>& m);
// What the GPU computes with: every bf16 tensor rounded (router weight and biases stay float32).
void round_gpu_weights(LayerWeights& w);

// ||a - b|| / ||b|| (b the reference).
double rel_l2(const float* a, const float* b, std::size_t n);
double rel_l2(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace epmoe::testing
