// The GPU's global nanosecond clock (%globaltimer), for the waits' timeouts and the trace's stamps.
#pragma once

#include <cstdint>

namespace epmoe::cuda {

__device__ __forceinline__ std::uint64_t global_ns() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

}  // namespace epmoe::cuda
