// CUTLASS grouped GEMM configuration "128x256c2" (cutlass_gemm.cuh): cooperative, 128 x 256 x 64 tiles, clusters of 2
// along M.
#include "cutlass_grouped.cuh"

namespace {
using Tile = cute::Shape<cute::_128, cute::_256, cute::_64>;
using Cluster = cute::Shape<cute::_2, cute::_1, cute::_1>;
using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
}  // namespace

EPMOE_CUTLASS_TILE_CONFIG(run_m128n256_c2x1, Tile, Cluster, Mainloop, Epilogue)
