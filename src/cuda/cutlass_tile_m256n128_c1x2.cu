// CUTLASS grouped GEMM configuration "256x128" (cutlass_gemm.cuh): cooperative, 256 x 128 x 64 tiles, clusters of 2
// along N.
#include "cutlass_grouped.cuh"

namespace {
using Tile = cute::Shape<cute::_256, cute::_128, cute::_64>;
using Cluster = cute::Shape<cute::_1, cute::_2, cute::_1>;
using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
}  // namespace

EPMOE_CUTLASS_TILE_CONFIG(run_m256n128_c1x2, Tile, Cluster, Mainloop, Epilogue)
