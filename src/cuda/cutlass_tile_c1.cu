// CUTLASS grouped GEMM configuration "128x256" (cutlass_gemm.cuh): no clusters.
#include "cutlass_grouped.cuh"

template std::size_t epmoe::cuda::cutlass_detail::run_tile_128x256<1>(const Launch&, bool);
