// Catch2 main for the CPU test binaries (tests/mpi_catch.hpp).
#include "mpi_catch.hpp"

int main(int argc, char** argv) { return epmoe::testing::run_catch_under_mpi(argc, argv); }
