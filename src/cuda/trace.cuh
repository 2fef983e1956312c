// EPMOE_CUDA_TRACE=1: timestamps of one forward's steps, to see where the ranks wait for each other. On the GPU a
// one-thread kernel writes %globaltimer (ns) into page-locked memory when the stream reaches the point; on the host
// CLOCK_REALTIME (ns), shared by the ranks of one machine. Off by default: then every call returns at once and the
// forward launches nothing more.
#pragma once

#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "resources.cuh"

namespace epmoe::cuda {

class ForwardTrace {
 public:
  // GPU points, in forward order.
  enum Gpu {
    kStart, kRouted, kLayout, kPostEntry, kPostWritten, kCounts, kPushed, kPayload, kExperts, kCombined, kGpuPoints
  };
  // Host points.
  enum Host { kHostStart, kHostDispatch, kHostCounts, kHostPoints };
  static const char* const kGpuNames[kGpuPoints];
  static const char* const kHostNames[kHostPoints];

  ForwardTrace();  // reads EPMOE_CUDA_TRACE
  bool enabled() const { return enabled_; }
  void begin_forward();  // clears this forward's stamps (the stream of the last one has been synchronized)
  void gpu(Gpu point, cudaStream_t stream);
  // Where a kernel of the forward writes the stamp of `point` itself (%globaltimer); nullptr when tracing is off.
  unsigned long long* slot(Gpu point) const { return enabled_ ? stamps_.data() + point : nullptr; }
  void host(Host point);
  // After the forward's stream synchronization: the forward's stamps, GPU points then host points (0: not reached).
  void end_forward();
  // Every finished forward: [forward][kGpuPoints + kHostPoints].
  const std::vector<std::vector<std::int64_t>>& forwards() const { return done_; }

 private:
  bool enabled_ = false;
  PinnedBuffer<unsigned long long> stamps_;
  std::vector<std::int64_t> host_;
  std::vector<std::vector<std::int64_t>> done_;
};

}  // namespace epmoe::cuda
