// Catch2 main for the GPU tests: every rank exits 77 (skipped) when any rank has no GPU or the node has more ranks
// than GPUs (NCCL refuses two ranks on one device), so CI reports a skip, never a pass (tests/mpi_catch.hpp).
#include "gpu_test_support.hpp"
#include "mpi_catch.hpp"

int main(int argc, char** argv) {
  return epmoe::testing::run_catch_under_mpi(argc, argv, epmoe::testing::gpu_skip_reason);
}
