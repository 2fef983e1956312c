// The experts' GEMMs as one CUTLASS Hopper grouped GEMM (pointer-array, TMA, warp-specialized, persistent):
//   out_g[m_g, n] = x_g[m_g, k] . w_g[n, k]^T   for every group g (bf16 operands and output, fp32 accumulation),
// in one launch whatever the groups' row counts are, so that the experts need no padding to a common row count.
// Built only where the CUTLASS headers were found and sm_90 is a target (then EPMOE_HAVE_CUTLASS is defined and
// this file is compiled for sm_90a); elsewhere asking for it is a usage error, never a silent fallback.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels.cuh"

namespace epmoe::cuda {

// The tile configuration (EPMOE_CUDA_CUTLASS_TILE): both are cooperative (two consumer warp groups per CTA).
enum class CutlassTile {
  M128N256,  // 128 x 256 x 64 tiles, clusters of 2 along M (the weights' tile multicast to both CTAs)
  M256N128,  // 256 x 128 x 64 tiles, clusters of 2 along N (the rows' tile multicast)
};

// One grouped GEMM's arguments in one block of memory, written on the host and used on the device after a copy:
// problem shapes, pointer arrays and strides of up to max_groups groups. Its layout depends only on max_groups.
class CutlassGroupedGemm {
 public:
  explicit CutlassGroupedGemm(int max_groups);
  ~CutlassGroupedGemm();
  CutlassGroupedGemm(const CutlassGroupedGemm&) = delete;
  CutlassGroupedGemm& operator=(const CutlassGroupedGemm&) = delete;

  // Bytes of one argument block (a multiple of 16).
  std::size_t block_bytes() const { return block_bytes_; }
  // TMA needs 16-byte aligned rows: every leading dimension and k a multiple of 8 elements.
  static bool supports(int n, int k, int ldx, int ldw, int ldo);
  // Writes the arguments of `groups` groups into the host block; group g has m[g] > 0 rows.
  void fill(void* host_block, int groups, const int* m, const bf16* const* x, const bf16* const* w, bf16* const* out,
            int n, int k, int ldx, int ldw, int ldo) const;
  // Launches the GEMM on `stream`: device_block is a copy of host_block (the host one gives the scheduler the
  // problem shapes; the kernel reads the device one).
  void run(const void* device_block, const void* host_block, int groups, cudaStream_t stream);

 private:
  struct Impl;
  Impl* impl_;
  int max_groups_;
  std::size_t block_bytes_;
};

}  // namespace epmoe::cuda
