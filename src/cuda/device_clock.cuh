// The GPU's global nanosecond clock (%globaltimer), for the waits' timeouts and the trace's stamps.
#pragma once

#include <cstdint>

namespace epmoe::cuda {

__device__ __forceinline__ std::uint64_t global_ns() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Returns once `ns` nanoseconds have passed since the call (one thread is enough: it only holds its stream).
__device__ __forceinline__ void hold_for_ns(std::uint64_t ns) {
  const std::uint64_t start = global_ns();
  while (global_ns() - start < ns) __nanosleep(1000);
}

}  // namespace epmoe::cuda
