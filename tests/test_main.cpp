// Catch2 main for every epmoe test binary: MPI is initialised around the session, and the exit code is the worst
// over all ranks, so a failure on any rank fails the test.
#include <mpi.h>

#if EPMOE_CATCH2_MAJOR == 3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include "epmoe/error.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  epmoe::set_error_rank(rank);
  const int local = Catch::Session().run(argc, argv);
  int worst = 0;
  MPI_Allreduce(&local, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
