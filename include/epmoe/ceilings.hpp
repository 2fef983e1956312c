// What the hardware can do at the benchmark's shapes, measured in the same run: the ceiling each phase is judged
// against (docs/benchmarking.md). The CUDA backend has its own (cuda_layer.hpp); both report in these units.
#pragma once

#include <cstddef>

#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"

namespace epmoe {

struct CpuCeilings {
  // Dense CBLAS sgemm of the expert phase's total shape: [rows, Dp] x w13^T then [rows, I] x w2^T,
  // rows = tokens_per_rank * top_k, as if every pair went to one expert.
  double gemm_flops = 0;
  double gemm_seconds = 0;  // median over repeats, max over ranks
  double gemm_tflops() const { return gemm_seconds > 0 ? gemm_flops / gemm_seconds * 1e-12 : 0; }
  // Equal-split MPI_Alltoall of `alltoall_bytes` per rank (bytes / ranks to each rank, itself included).
  double alltoall_bytes = 0;
  double alltoall_seconds = 0;  // median over repeats, max over ranks
  double alltoall_gbps() const { return alltoall_seconds > 0 ? alltoall_bytes / alltoall_seconds * 1e-9 : 0; }
};

// Collective: every rank calls it.
CpuCeilings measure_cpu_ceilings(const ModelConfig& model, const ParallelConfig& parallel, int tokens_per_rank,
                                 const MpiComm& comm, std::size_t alltoall_bytes_per_rank, int repeats = 5);

}  // namespace epmoe
