#include "gpu_test_support.hpp"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "epmoe/cuda_layer.hpp"

namespace epmoe::testing {

const char* gpu_skip_reason() {
  if (!cuda_device_available()) return "no CUDA device visible";
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local_size = 1;
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  int devices = 0;
  cudaGetDeviceCount(&devices);
  static std::string reason;
  if (local_size > devices) {
    reason = std::to_string(local_size) + " ranks on this node but " + std::to_string(devices) +
             " GPU(s): NCCL needs one GPU per rank";
    return reason.c_str();
  }
  return nullptr;
}

std::uint64_t fresh_seed(const MpiComm& comm, const char* what) {
  unsigned long long seed = 0;
  if (comm.rank() == 0) {
    if (const char* env = std::getenv("EPMOE_TEST_SEED"))
      seed = std::strtoull(env, nullptr, 0);
    else
      seed = static_cast<unsigned long long>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::printf("# %s: seed %llu (EPMOE_TEST_SEED=%llu reproduces it)\n", what, seed, seed);
  }
  MPI_Bcast(&seed, 1, MPI_UNSIGNED_LONG_LONG, 0, comm.handle());
  return seed;
}

float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }
void round_bf16(float* data, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) data[i] = round_bf16(data[i]);
}
void round_bf16(Matrix<float>& m) { round_bf16(m.data(), m.size()); }

void round_gpu_weights(LayerWeights& w) {
  round_bf16(w.w13.data(), w.w13.size());
  round_bf16(w.w2.data(), w.w2.size());
  round_bf16(w.shared_w13);
  round_bf16(w.shared_w2);
  round_bf16(w.latent_down);
  round_bf16(w.latent_up);
}

double rel_l2(const float* a, const float* b, std::size_t n) {
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    err += d * d;
    ref += static_cast<double>(b[i]) * b[i];
    if (!std::isfinite(a[i])) return INFINITY;
  }
  return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}
double rel_l2(const std::vector<float>& a, const std::vector<float>& b) { return rel_l2(a.data(), b.data(), a.size()); }

}  // namespace epmoe::testing
