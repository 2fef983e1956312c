// Runs the Catch2 session of a test binary under MPI: every epmoe test main calls this.
#pragma once

namespace epmoe::testing {

// MPI_Init, the Catch2 session, MPI_Finalize; returns the worst exit code over all ranks, so a failure on any rank
// fails the test. When `skip_reason` is given and returns non-null on any rank (no GPU, say), every rank returns 77
// (CTest's SKIP_RETURN_CODE) before Catch2 runs: a skip, never a silent pass.
int run_catch_under_mpi(int argc, char** argv, const char* (*skip_reason)() = nullptr);

}  // namespace epmoe::testing
