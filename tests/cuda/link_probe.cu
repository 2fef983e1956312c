// epmoe_link_probe: how long a 64-bit store takes to cross NVLink, after the link was idle for a while.
//
// Diagnostic for the count exchange of the symmetric dispatch (docs/performance.md): one process, two GPUs with
// peer access. GPU b runs an echo kernel that waits for a word in its own memory and answers with a store into
// GPU a's memory; GPU a's ping kernel stores the word into b's memory and waits for the answer. One ping kernel does
// kRounds round trips; the first follows the gap, the others follow it within microseconds. Before each trial the
// GPUs are left alone for the gap in one of three ways:
//   idle  the host sleeps (no GPU work);
//   spin  both GPUs run a one-thread kernel for the gap (the GPUs busy, no NVLink traffic);
//   pcie  both GPUs copy 64 MB in and out of pageable host memory (what the benchmark's staging does between two
//         forwards; the gap is as long as the copies take).
// Prints per gap and way the median over trials of the first round trip and of the later ones, in microseconds, on
// GPU a's %globaltimer.
//   epmoe_link_probe [--a 0] [--b 1] [--trials 15]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../../src/core/stats.hpp"
#include "device_clock.cuh"
#include "sys_memory.cuh"

namespace {

using epmoe::median;
using epmoe::cuda::global_ns;
using epmoe::cuda::hold_for_ns;
using epmoe::cuda::load_relaxed_sys;
using epmoe::cuda::store_relaxed_sys;

constexpr int kRounds = 8;
constexpr std::uint64_t kTimeoutNs = 2'000'000'000ull;  // a round trip that takes 2 s is a failure

#define PROBE_CHECK(call)                                                                                      \
  do {                                                                                                         \
    cudaError_t e_ = (call);                                                                                   \
    if (e_ != cudaSuccess) {                                                                                   \
      std::fprintf(stderr, "epmoe_link_probe: %s failed: %s (%s:%d)\n", #call, cudaGetErrorString(e_), __FILE__, \
                   __LINE__);                                                                                  \
      std::exit(1);                                                                                            \
    }                                                                                                          \
  } while (0)

// Waits until *box == tag; false after kTimeoutNs.
__device__ bool wait_word(const std::uint64_t* box, std::uint64_t tag) {
  const std::uint64_t start = global_ns();
  while (load_relaxed_sys(box) != tag)
    if (global_ns() - start > kTimeoutNs) return false;
  return true;
}

// On GPU b: `started` (mapped host memory) tells the host it runs; then kRounds times: wait, answer.
__global__ void echo_kernel(const std::uint64_t* my_box, std::uint64_t* peer_box, std::uint64_t tag,
                            volatile int* started, int* failed) {
  *started = 1;
  __threadfence_system();
  for (int i = 0; i < kRounds; ++i) {
    if (!wait_word(my_box, tag + i)) {
      *failed = 1;
      return;
    }
    store_relaxed_sys(peer_box, tag + i);
  }
}

// On GPU a: kRounds round trips, each timed.
__global__ void ping_kernel(std::uint64_t* peer_box, const std::uint64_t* my_box, std::uint64_t tag,
                            unsigned long long* rtt_ns, int* failed) {
  for (int i = 0; i < kRounds; ++i) {
    const std::uint64_t t0 = global_ns();
    store_relaxed_sys(peer_box, tag + i);
    if (!wait_word(my_box, tag + i)) {
      *failed = 1;
      return;
    }
    rtt_ns[i] = global_ns() - t0;
  }
}

__global__ void spin_kernel(std::uint64_t ns) {
  hold_for_ns(ns);
}

int arg_int(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2) {
    std::fprintf(stderr, "epmoe_link_probe: needs two GPUs, found %d\n", devices);
    return 77;
  }
  const int a = arg_int(argc, argv, "--a", 0), b = arg_int(argc, argv, "--b", 1);
  const int trials = arg_int(argc, argv, "--trials", 15);
  if (a == b || a < 0 || b < 0 || a >= devices || b >= devices || trials < 1) {
    std::fprintf(stderr, "epmoe_link_probe: --a and --b must be two different GPUs of 0..%d, --trials >= 1\n",
                 devices - 1);
    return 2;
  }
  int can_ab = 0, can_ba = 0;
  PROBE_CHECK(cudaDeviceCanAccessPeer(&can_ab, a, b));
  PROBE_CHECK(cudaDeviceCanAccessPeer(&can_ba, b, a));
  if (!can_ab || !can_ba) {
    std::fprintf(stderr, "epmoe_link_probe: GPUs %d and %d have no peer access\n", a, b);
    return 1;
  }

  // Per GPU: its box (written by the other GPU), a failure word, the round trips, a stream, and 64 MB for the
  // pcie gap.
  const std::size_t kCopyBytes = 64u << 20;
  std::uint64_t* box[2];
  int* failed[2];
  unsigned long long* rtt = nullptr;
  cudaStream_t stream[2];
  void* copy_dev[2];
  const int dev[2] = {a, b};
  for (int i = 0; i < 2; ++i) {
    PROBE_CHECK(cudaSetDevice(dev[i]));
    PROBE_CHECK(cudaDeviceEnablePeerAccess(dev[1 - i], 0));
    PROBE_CHECK(cudaMalloc(&box[i], sizeof(std::uint64_t)));
    PROBE_CHECK(cudaMemset(box[i], 0, sizeof(std::uint64_t)));
    PROBE_CHECK(cudaMalloc(&failed[i], sizeof(int)));
    PROBE_CHECK(cudaMemset(failed[i], 0, sizeof(int)));
    PROBE_CHECK(cudaStreamCreateWithFlags(&stream[i], cudaStreamNonBlocking));
    PROBE_CHECK(cudaMalloc(&copy_dev[i], kCopyBytes));
  }
  PROBE_CHECK(cudaSetDevice(a));
  PROBE_CHECK(cudaMalloc(&rtt, kRounds * sizeof(unsigned long long)));
  int* started_host = nullptr;
  PROBE_CHECK(cudaHostAlloc(&started_host, sizeof(int), cudaHostAllocMapped | cudaHostAllocPortable));
  int* started_dev = nullptr;
  PROBE_CHECK(cudaHostGetDevicePointer(&started_dev, started_host, 0));
  std::vector<char> pageable(kCopyBytes, 1);

  cudaDeviceProp pa{}, pb{};
  PROBE_CHECK(cudaGetDeviceProperties(&pa, a));
  PROBE_CHECK(cudaGetDeviceProperties(&pb, b));
  std::printf("# epmoe_link_probe: GPU %d (%s, PCI %02x:%02x) <-> GPU %d (%s, PCI %02x:%02x), %d trials per row, "
              "%d round trips per trial\n",
              a, pa.name, pa.pciBusID, pa.pciDeviceID, b, pb.name, pb.pciBusID, pb.pciDeviceID, trials, kRounds);
  std::printf("%-6s %9s %12s %12s %12s\n", "gap", "gap_ms", "first_us", "later_us", "gap_real_ms");

  std::uint64_t tag = 16;
  const double gaps_ms[] = {0, 0.02, 0.1, 0.5, 1, 2, 5, 10, 20, 50};
  const char* ways[] = {"idle", "spin", "pcie"};
  for (const char* way : ways) {
    const bool pcie = std::strcmp(way, "pcie") == 0;
    for (double gap : gaps_ms) {
      if (pcie && gap != 0) break;  // the copies set the gap
      std::vector<double> first, later, real;
      for (int t = 0; t < trials + 1; ++t) {  // trial 0 warms up
        const auto g0 = std::chrono::steady_clock::now();
        if (pcie) {
          for (int i = 0; i < 2; ++i) {
            PROBE_CHECK(cudaSetDevice(dev[i]));
            PROBE_CHECK(cudaMemcpy(copy_dev[i], pageable.data(), kCopyBytes, cudaMemcpyHostToDevice));
            PROBE_CHECK(cudaMemcpy(pageable.data(), copy_dev[i], kCopyBytes, cudaMemcpyDeviceToHost));
          }
        } else if (std::strcmp(way, "spin") == 0 && gap > 0) {
          for (int i = 0; i < 2; ++i) {
            PROBE_CHECK(cudaSetDevice(dev[i]));
            spin_kernel<<<1, 1, 0, stream[i]>>>(static_cast<std::uint64_t>(gap * 1e6));
            PROBE_CHECK(cudaGetLastError());
          }
          for (int i = 0; i < 2; ++i) PROBE_CHECK(cudaStreamSynchronize(stream[i]));
        } else if (gap > 0) {
          std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(gap));
        }
        real.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - g0).count());
        *reinterpret_cast<volatile int*>(started_host) = 0;
        PROBE_CHECK(cudaSetDevice(b));
        echo_kernel<<<1, 1, 0, stream[1]>>>(box[1], box[0], tag, started_dev, failed[1]);
        PROBE_CHECK(cudaGetLastError());
        while (*reinterpret_cast<volatile int*>(started_host) == 0) {
        }
        PROBE_CHECK(cudaSetDevice(a));
        ping_kernel<<<1, 1, 0, stream[0]>>>(box[1], box[0], tag, rtt, failed[0]);
        PROBE_CHECK(cudaGetLastError());
        PROBE_CHECK(cudaStreamSynchronize(stream[0]));
        PROBE_CHECK(cudaSetDevice(b));
        PROBE_CHECK(cudaStreamSynchronize(stream[1]));
        int fail[2] = {0, 0};
        for (int i = 0; i < 2; ++i) {
          PROBE_CHECK(cudaSetDevice(dev[i]));
          PROBE_CHECK(cudaMemcpy(&fail[i], failed[i], sizeof(int), cudaMemcpyDeviceToHost));
        }
        if (fail[0] || fail[1]) {
          std::fprintf(stderr, "epmoe_link_probe: a round trip between GPUs %d and %d took over 2 s\n", a, b);
          return 1;
        }
        unsigned long long ns[kRounds];
        PROBE_CHECK(cudaSetDevice(a));
        PROBE_CHECK(cudaMemcpy(ns, rtt, sizeof ns, cudaMemcpyDeviceToHost));
        tag += kRounds;
        if (t == 0) {
          real.clear();
          continue;
        }
        first.push_back(ns[0] * 1e-3);
        std::vector<double> rest;
        for (int i = 1; i < kRounds; ++i) rest.push_back(ns[i] * 1e-3);
        later.push_back(median(rest));
      }
      std::printf("%-6s %9.2f %12.2f %12.2f %12.2f\n", way, gap, median(first), median(later), median(real));
    }
  }
  return 0;
}
