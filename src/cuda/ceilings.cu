// The ceilings the benchmark reports beside each phase, measured in the same run: dense cuBLAS bf16 GEMMs of the
// expert phase's total shape, and an equal-split ncclAlltoAll of the dispatch's bytes.
#include <algorithm>
#include <vector>

#include "../core/stats.hpp"
#include "epmoe/cuda_layer.hpp"
#include "gemm.cuh"
#include "kernels.cuh"
#include "nccl_comm.cuh"
#include "resources.cuh"

namespace epmoe {
namespace {

template <class Work>
double median_seconds(cudaStream_t stream, int repeats, Work work) {
  cuda::Event start, stop;
  for (int i = 0; i < 3; ++i) work();  // warm-up: handles, plans, first-touch
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    start.record(stream);
    work();
    stop.record(stream);
    EPMOE_CUDA_CHECK(cudaEventSynchronize(stop.get()));
    t.push_back(cuda::elapsed_seconds(start, stop));
  }
  return median(std::move(t));
}

// The dense GEMMs of the expert phase's total shape, operands allocated once (random: zeros run faster).
struct DenseGemm {
  int rows, Dp, I, R13;
  cuda::Stream stream;
  cuda::CublasHandle cublas;
  cuda::Event start, stop;
  cuda::DeviceBuffer<cuda::bf16> x, w13, h, a, w2, y;
  DenseGemm(const ModelConfig& model, const ParallelConfig& parallel, int tokens_per_rank)
      : rows(std::max(1, tokens_per_rank * model.top_k)),
        Dp(padded_width(model.expert_width(), parallel.pad_multiple)),
        I(model.moe_intermediate_size),
        R13(model.w13_rows()),
        x(static_cast<std::size_t>(rows) * Dp),
        w13(static_cast<std::size_t>(R13) * Dp),
        h(static_cast<std::size_t>(rows) * R13),
        a(static_cast<std::size_t>(rows) * I),
        w2(static_cast<std::size_t>(Dp) * I),
        y(static_cast<std::size_t>(rows) * Dp) {
    EPMOE_CUBLAS_CHECK(cublasSetStream(cublas.get(), stream.get()));
    cuda::fill_counter_uniform(x.data(), rows, Dp, Dp, 7, 1, 0, 1.0f, stream.get());
    cuda::fill_counter_uniform(w13.data(), R13, Dp, Dp, 7, 2, 0, 0.02f, stream.get());
    cuda::fill_counter_uniform(a.data(), rows, I, I, 7, 3, 0, 1.0f, stream.get());
    cuda::fill_counter_uniform(w2.data(), Dp, I, I, 7, 4, 0, 0.02f, stream.get());
  }
  double flops() const { return 2.0 * rows * (static_cast<double>(R13) * Dp + static_cast<double>(Dp) * I); }
  void run() {
    cuda::linear_bf16(cublas.get(), rows, R13, Dp, x.data(), Dp, w13.data(), Dp, h.data(), R13);
    cuda::linear_bf16(cublas.get(), rows, Dp, I, a.data(), I, w2.data(), I, y.data(), Dp);
  }
};

}  // namespace

CudaCeilings measure_cuda_ceilings(const ModelConfig& model, const ParallelConfig& parallel, int tokens_per_rank,
                                   const MpiComm& comm, std::size_t alltoall_bytes_per_rank,
                                   const CudaOptions& options, int repeats) {
  cuda::select_device(comm, options.allow_shared_gpu);
  CudaCeilings c;
  cuda::Stream stream;
  {
    DenseGemm dense(model, parallel, tokens_per_rank);
    const double mine = median_seconds(dense.stream.get(), repeats, [&] { dense.run(); });
    c.gemm_flops = dense.flops();
    // The fastest GPU's median: the ceiling that flatters the layer least (CudaCeilings).
    c.gemm_seconds = -comm.max(-mine);
    c.gemm_seconds_slowest = comm.max(mine);
  }
  {
    cuda::NcclComm nccl(comm);
    const std::size_t R = comm.size();
    // Each peer's chunk rounded up to 128 bytes, as the layer's own chunks (whole rows) are 16-byte aligned: NCCL
    // moves misaligned chunks much more slowly (4 x H200: deepseek-v3's 184 MB took 0.93 ms at the byte count as it
    // came, 0.48 ms aligned).
    constexpr std::size_t kAlign = 128 / sizeof(cuda::bf16);
    const std::size_t per_rank =
        std::max<std::size_t>(1, (alltoall_bytes_per_rank / sizeof(cuda::bf16) / R + kAlign - 1) / kAlign) * kAlign;
    cuda::DeviceBuffer<cuda::bf16> send(per_rank * R), recv(per_rank * R);
    cuda::fill_counter_uniform(send.data(), 1, static_cast<int>(per_rank * R), per_rank * R, 7, 5, comm.rank(),
                               1.0f, stream.get());
    comm.barrier();
    c.alltoall_bytes = static_cast<double>(per_rank * R * sizeof(cuda::bf16));
    c.alltoall_seconds = median_seconds(stream.get(), repeats, [&] {
      nccl.alltoall(send.contiguous_const(per_rank * R), recv.contiguous(per_rank * R), per_rank, stream.get());
    });
    // Every rank reports the slowest rank's median, as the layer's collective is as slow as its slowest member.
    c.alltoall_seconds = comm.max(c.alltoall_seconds);
  }
  return c;
}

}  // namespace epmoe
