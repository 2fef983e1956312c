// CUTLASS grouped GEMM configuration "128x256c2" (cutlass_gemm.cuh): clusters of 2 along M.
#include "cutlass_grouped.cuh"

template std::size_t epmoe::cuda::cutlass_detail::run_tile_128x256<2>(const Launch&, bool);
