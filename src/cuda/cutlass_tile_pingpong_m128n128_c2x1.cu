// CUTLASS grouped GEMM configuration "pingpong" (cutlass_gemm.cuh): ping-pong, 128 x 128 x 64 tiles, clusters of 2
// along M.
#include "cutlass_grouped.cuh"

namespace {
using Tile = cute::Shape<cute::_128, cute::_128, cute::_64>;
using Cluster = cute::Shape<cute::_2, cute::_1, cute::_1>;
using Mainloop = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpong;
using Epilogue = cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong;
}  // namespace

EPMOE_CUTLASS_TILE_CONFIG(run_pingpong_m128n128_c2x1, Tile, Cluster, Mainloop, Epilogue)
