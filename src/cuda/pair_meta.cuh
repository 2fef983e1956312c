// Device helper shared by the two dispatches (pack_dispatch in moe_kernels.cu, push in symmetric_dispatch.cu): the
// pair metadata of one (token, destination rank) row, written by one warp.
#pragma once

#include <cstddef>

namespace epmoe::cuda {

// meta [2K] = [K weights (float bits) | K local expert ids]: the token's pairs whose expert lives on rank `dest`, in
// slot order, then (0, -1) for the unused slots. Lane k of the warp looks at slot k (K <= 32); all 32 lanes call.
__device__ __forceinline__ void write_pair_meta(int* meta, const int* __restrict__ ids,
                                                const float* __restrict__ weights, int t, int K,
                                                const int* __restrict__ owner, const int* __restrict__ local,
                                                int dest, int lane) {
  const int e = lane < K ? ids[static_cast<std::size_t>(t) * K + lane] : -1;
  const bool mine = e >= 0 && owner[e] == dest;
  const unsigned valid = __ballot_sync(0xffffffffu, mine);
  if (mine) {
    const int slot = __popc(valid & ((1u << lane) - 1));
    meta[slot] = __float_as_int(weights[static_cast<std::size_t>(t) * K + lane]);
    meta[K + slot] = local[e];
  }
  if (lane >= __popc(valid) && lane < K) {
    meta[lane] = __float_as_int(0.0f);
    meta[K + lane] = -1;
  }
}

}  // namespace epmoe::cuda
