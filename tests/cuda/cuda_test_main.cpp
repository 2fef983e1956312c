// Catch2 main for the GPU tests: exits 77 (CTest's SKIP_RETURN_CODE) before Catch2 runs when no GPU is visible or
// when this node has more ranks than GPUs (NCCL refuses two ranks on one device), so CI reports a skip, never a pass.
// The exit code is the worst over all ranks.
#include <mpi.h>

#include <cstdio>

#if EPMOE_CATCH2_MAJOR == 3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include "epmoe/cuda_layer.hpp"
#include "epmoe/error.hpp"
#include "gpu_test_support.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  epmoe::set_error_rank(rank);
  const char* why = epmoe::testing::gpu_skip_reason();
  int skip = why != nullptr, any_skip = 0;
  MPI_Allreduce(&skip, &any_skip, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_skip) {
    if (why) std::printf("# rank %d: skipping GPU tests: %s\n", rank, why);
    MPI_Finalize();
    return 77;
  }
  int local = 0;
  try {
    local = Catch::Session().run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int worst = 0;
  MPI_Allreduce(&local, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
