#include "epmoe/ceilings.hpp"

#include <mpi.h>

#include <algorithm>
#include <vector>

#include "../core/stats.hpp"
#include "epmoe/weights.hpp"
#include "gemm.hpp"

namespace epmoe {
CpuCeilings measure_cpu_ceilings(const ModelConfig& m, const ParallelConfig& p, int tokens_per_rank,
                                 const MpiComm& comm, std::size_t alltoall_bytes_per_rank, int repeats) {
  CpuCeilings c;
  const int rows = std::max(1, tokens_per_rank * m.top_k);
  const int Dp = padded_width(m.expert_width(), p.pad_multiple), I = m.moe_intermediate_size, R13 = m.w13_rows();
  const Matrix<float> x = generate_tokens(rows, Dp, 1), w13 = generate_tokens(R13, Dp, 2), w2 = generate_tokens(Dp, I, 3);
  Matrix<float> h(rows, R13), y(rows, Dp);
  std::vector<double> gemm;
  for (int r = 0; r < repeats + 1; ++r) {
    comm.barrier();
    const double t0 = MPI_Wtime();
    cpu::gemm_nt(rows, R13, Dp, 1.0f, x.data(), Dp, w13.data(), Dp, 0.0f, h.data(), R13);
    cpu::gemm_nt(rows, Dp, I, 1.0f, h.data(), R13, w2.data(), I, 0.0f, y.data(), Dp);
    if (r) gemm.push_back(MPI_Wtime() - t0);  // the first is a warm-up
  }
  c.gemm_flops = 2.0 * rows * (static_cast<double>(R13) * Dp + static_cast<double>(Dp) * I);
  c.gemm_seconds = comm.max(median(gemm));

  const int n = comm.size();
  const std::size_t per_peer = std::max<std::size_t>(1, alltoall_bytes_per_rank / n / sizeof(float));
  std::vector<float> send(per_peer * n, 1.0f), recv(per_peer * n);
  std::vector<double> a2a;
  for (int r = 0; r < repeats + 1; ++r) {
    comm.barrier();
    const double t0 = MPI_Wtime();
    EPMOE_MPI_CHECK(MPI_Alltoall(send.data(), static_cast<int>(per_peer), MPI_FLOAT, recv.data(),
                                 static_cast<int>(per_peer), MPI_FLOAT, comm.handle()));
    if (r) a2a.push_back(MPI_Wtime() - t0);
  }
  c.alltoall_bytes = static_cast<double>(per_peer * n * sizeof(float));
  c.alltoall_seconds = comm.max(median(a2a));
  return c;
}

}  // namespace epmoe
