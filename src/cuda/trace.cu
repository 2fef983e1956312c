#include "trace.cuh"

#include <time.h>

#include <cstdlib>
#include <cstring>

#include "check.cuh"
#include "device_clock.cuh"

namespace epmoe::cuda {
namespace {

__global__ void stamp_kernel(unsigned long long* slot) {
  *reinterpret_cast<volatile unsigned long long*>(slot) = global_ns();
}

std::int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

const char* const ForwardTrace::kGpuNames[kGpuPoints] = {
    "start", "routed", "layout", "post_entry", "post_written", "counts", "pushed", "payload", "experts", "combined"};
const char* const ForwardTrace::kHostNames[kHostPoints] = {"host_start", "host_dispatch", "host_counts"};

ForwardTrace::ForwardTrace() {
  const char* v = std::getenv("EPMOE_CUDA_TRACE");
  enabled_ = v && std::strcmp(v, "0") != 0;
  if (!enabled_) return;
  stamps_.reserve(kGpuPoints);  // page-locked: the stamp kernel writes it through the same address
  host_.assign(kHostPoints, 0);
  begin_forward();
}

void ForwardTrace::begin_forward() {
  if (!enabled_) return;
  std::memset(stamps_.data(), 0, kGpuPoints * sizeof(unsigned long long));
  std::fill(host_.begin(), host_.end(), 0);
}

void ForwardTrace::gpu(Gpu point, cudaStream_t stream) {
  if (!enabled_) return;
  stamp_kernel<<<1, 1, 0, stream>>>(stamps_.data() + point);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void ForwardTrace::host(Host point) {
  if (enabled_) host_[point] = realtime_ns();
}

void ForwardTrace::end_forward() {
  if (!enabled_) return;
  std::vector<std::int64_t> f(stamps_.data(), stamps_.data() + kGpuPoints);
  f.insert(f.end(), host_.begin(), host_.end());
  done_.push_back(std::move(f));
}

}  // namespace epmoe::cuda
