// The experts' GEMMs as one CUTLASS Hopper grouped GEMM (pointer-array, TMA, warp-specialized, persistent):
//   out_g[m_g, n] = x_g[m_g, k] . w_g[n, k]^T   for every group g (bf16 operands and output, fp32 accumulation),
// in one launch whatever the groups' row counts are, so that the experts need no padding to a common row count.
// Built only where the CUTLASS headers were found and sm_90 is a target (then EPMOE_HAVE_CUTLASS is defined and
// the kernels are compiled for sm_90a); elsewhere asking for it is a usage error, never a silent fallback.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels.cuh"

namespace epmoe::cuda {

// The tile configuration (EPMOE_CUDA_CUTLASS_TILE; one translation unit each, cutlass_tile_*.cu). Both are
// cooperative (two consumer warp groups per 128 x 256 x 64 tile). Measured on 4 x H200 at 4096 tokens per rank
// (docs/performance.md): these two were the fastest of four; 256 x 128 tiles were 1-10% slower and ping-pong
// 128 x 128 tiles 15-40% slower.
enum class CutlassTile {
  M128N256,   // "128x256" (default): no clusters
  M128N256C2  // "128x256c2": clusters of 2 along M (the weights' tile multicast to both CTAs)
};

// The persistent scheduler's tile order (EPMOE_CUDA_CUTLASS_RASTER = m | n, EPMOE_CUDA_CUTLASS_SWIZZLE = 1 | 2 | 4 |
// 8): along M, consecutive tiles share the weights' columns; the swizzle groups that many tiles across.
struct CutlassSchedule {
  bool raster_along_n = false;
  int swizzle = 1;
};

// What every group of one GEMM shares: the widths and the leading dimensions.
struct CutlassShape {
  int n, k, ldx, ldw, ldo;
};

// One grouped GEMM's arguments in one block of memory, written on the host and used on the device after a copy:
// problem shapes, pointer arrays and strides of up to max_groups groups. Its layout depends only on max_groups.
class CutlassGroupedGemm {
 public:
  // The tile configuration and schedule from the environment.
  explicit CutlassGroupedGemm(int max_groups);

  // Bytes of one argument block (a multiple of 16).
  std::size_t block_bytes() const { return block_bytes_; }
  // TMA needs 16-byte aligned rows: every leading dimension and k a multiple of 8 elements.
  static bool supports(const CutlassShape& shape);
  // Writes group g's arguments into the host block: m > 0 rows of x (stride ldx) times w (stride ldw) into out.
  void set_group(void* host_block, int g, int m, const bf16* x, const bf16* w, bf16* out,
                 const CutlassShape& shape) const;
  // Launches the GEMM on `stream`: device_block is a copy of host_block (the host one gives the scheduler the
  // problem shapes; the kernel reads the device one).
  void run(const void* device_block, const void* host_block, int groups, cudaStream_t stream);

 private:
  CutlassTile tile_;
  CutlassSchedule schedule_;
  int max_groups_;
  int sm_count_;
  std::size_t block_bytes_;
  DeviceBuffer<unsigned char> workspace_;
};

}  // namespace epmoe::cuda
