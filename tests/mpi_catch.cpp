#include "mpi_catch.hpp"

#include <mpi.h>

#include <cstdio>
#include <exception>

#if EPMOE_CATCH2_MAJOR == 3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include "epmoe/error.hpp"

namespace epmoe::testing {

int run_catch_under_mpi(int argc, char** argv, const char* (*skip_reason)()) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  set_error_rank(rank);
  const char* why = skip_reason ? skip_reason() : nullptr;
  int skip = why != nullptr, any_skip = 0;
  MPI_Allreduce(&skip, &any_skip, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_skip) {
    if (why) std::printf("# rank %d: skipping: %s\n", rank, why);
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

}  // namespace epmoe::testing
