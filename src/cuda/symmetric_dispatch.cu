#include "symmetric_dispatch.cuh"

#include <nccl_device.h>

#include <algorithm>
#include <cstdio>

#include "device_clock.cuh"
#include "epmoe/error.hpp"
#include "pair_meta.cuh"
#include "row_math.cuh"
#include "sys_memory.cuh"

namespace epmoe::cuda {
namespace {

constexpr std::size_t kAlign = 4096;  // NCCL_WIN_REQUIRED_ALIGNMENT; every part of the window starts on it
constexpr int kPushThreads = 256;
constexpr int kMaxRanks = 4096;       // the push keeps one offset per destination in shared memory (32 KiB)
constexpr std::uint64_t kTimeoutNs = 60ull * 1000 * 1000 * 1000;
constexpr int kPayloadWait = 1000;    // timeout code offsets: counts wait < 1000 <= payload wait < 2000 <= back wait
constexpr int kBackWait = 2000;
constexpr int kBackThreads = 128;     // as weighted_sum's blocks (moe_kernels.cu)

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// A flags part of a window ([R] u64 at byte offset L.flags: rows arrived from rank r; L.back_flags: rows back
// from rank r).
__host__ __device__ __forceinline__ std::uint64_t* flag_words(char* window, std::size_t offset) {
  return reinterpret_cast<std::uint64_t*>(window + offset);
}
// A mailbox word: the count in the low half, the forward's tag in the high half (one 64-bit store writes both).
__host__ __device__ __forceinline__ std::uint64_t* mailbox_slot(char* window, const SymmetricLayout& L,
                                                             std::uint64_t epoch) {
  return reinterpret_cast<std::uint64_t*>(window + L.mailbox) + (epoch & 1) * L.mailbox_words();
}
__device__ __forceinline__ std::uint64_t mailbox_word(int count, std::uint64_t epoch) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(epoch)) << 32) | static_cast<std::uint32_t>(count);
}
__device__ __forceinline__ bool mailbox_current(std::uint64_t word, std::uint64_t epoch) {
  return static_cast<std::uint32_t>(word >> 32) == static_cast<std::uint32_t>(epoch);
}

__global__ void peer_bases_kernel(ncclWindow_t window, int ranks, char** peers) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < ranks) peers[r] = static_cast<char*>(ncclGetPeerPointer(window, 0, r));
}

// 1: this rank's counts [R, stride] into row `me` of every rank's mailbox slot, each count tagged with the forward
// in the same 64-bit store, so that a receiver knows a word is current by its tag alone: no flag, and no fence (a
// system-scope fence costs 0.1-0.25 ms while the GPUs are busy: EPMOE_CUDA_TRACE, docs/performance.md).
// `stamps` (EPMOE_CUDA_TRACE, else nullptr): the entry and the end of the stores.
__device__ __forceinline__ void post_counts(const int* __restrict__ sent, char* const* __restrict__ peers,
                                            const SymmetricLayout& L, int me, std::uint64_t epoch,
                                            unsigned long long* stamps) {
  if (stamps && threadIdx.x == 0) stamps[0] = global_ns();
  const int n = L.ranks * L.stride;
  for (int d = 0; d < L.ranks; ++d) {
    std::uint64_t* row = mailbox_slot(peers[d], L, epoch) + static_cast<std::size_t>(me) * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) store_relaxed_sys(row + i, mailbox_word(sent[i], epoch));
  }
  if (stamps) {
    __syncthreads();
    if (threadIdx.x == 0) stamps[1] = global_ns();
  }
}

// Gives up on a wait after 60 s: records the rank it waited for in the page-locked word (the host turns that into an
// error; the first code wins). True when this thread should stop. Every waiting thread reaches its own 60 s, so the
// spin reads only the GPU clock, never the page-locked word (a read over PCIe on each iteration).
__device__ __forceinline__ bool wait_gave_up(std::uint64_t start, int* timeout, int code) {
  if (global_ns() - start <= kTimeoutNs) return false;
  atomicCAS(timeout, 0, code);
  __threadfence_system();
  return true;
}

// 2: until every word of this forward's mailbox slot carries its tag (all R ranks' counts are here).
__device__ __forceinline__ void wait_counts(const std::uint64_t* slot, int words, int per_rank, std::uint64_t epoch,
                                            int* timeout) {
  const std::uint64_t start = global_ns();
  for (int i = threadIdx.x; i < words; i += blockDim.x) {
    while (!mailbox_current(load_relaxed_sys(slot + i), epoch)) {
      if (wait_gave_up(start, timeout, 1 + i / per_rank)) return;
      __nanosleep(64);
    }
  }
}

// Steps 1 and 2 in one kernel (as two kernels they took the same time), then whether some rank receives or sends
// more rows than a window holds: every rank computes the same answer from the same counts, without talking
// (`overflow`: 0, or 1 and steps 3 to 6 do nothing; SymmetricDispatch::host_counts grows the windows and runs the
// dispatch again). And the bases of step 5 (`bases` [2R]: SymmetricDispatch::bases_).
__global__ void post_wait_counts_kernel(const int* __restrict__ sent, char* const* __restrict__ peers,
                                        SymmetricLayout L, int me, std::uint64_t epoch, unsigned long long* stamps,
                                        const std::uint64_t* slot, int* timeout, int* overflow, std::size_t* bases) {
  post_counts(sent, peers, L, me, epoch, stamps);
  wait_counts(slot, L.mailbox_words(), L.ranks * L.stride, epoch, timeout);
  __shared__ int over;
  if (threadIdx.x == 0) over = 0;
  __syncthreads();
  const auto row_count = [slot](std::size_t word) { return static_cast<std::uint32_t>(load_relaxed_sys(slot + word)); };
  for (int r = threadIdx.x; r < L.ranks; r += blockDim.x) {  // a rank per thread: O(R) each, not O(R^2) in one
    if (L.rows_needed(r, row_count) > L.row_capacity) atomicOr(&over, 1);
    bases[r] = L.rows_from(r, me, row_count);
    bases[L.ranks + r] = L.rows_to(r, me, row_count);
  }
  __syncthreads();
  if (threadIdx.x == 0) *overflow = over;
}

// 4: until flags[r] >= epoch for every rank r (acquire).
__global__ void wait_flags_kernel(const std::uint64_t* flags, int ranks, std::uint64_t epoch, int code,
                                  int* timeout, const int* overflow) {
  if (*overflow) return;  // nobody pushed
  for (int r = threadIdx.x; r < ranks; r += blockDim.x) {
    const std::uint64_t start = global_ns();
    while (load_acquire_sys(flags + r) < epoch) {
      if (wait_gave_up(start, timeout, code + 1 + r)) return;
      __nanosleep(64);
    }
  }
}

// The warp copies n bf16 elements; 16-byte accesses when both rows allow them.
__device__ __forceinline__ void warp_copy_row(bf16* __restrict__ dst, const bf16* __restrict__ src, int n, int lane) {
  if ((n & 7) == 0 && (reinterpret_cast<std::uintptr_t>(dst) & 15) == 0 &&
      (reinterpret_cast<std::uintptr_t>(src) & 15) == 0) {
    const uint4* s = reinterpret_cast<const uint4*>(src);
    uint4* d = reinterpret_cast<uint4*>(dst);
    for (int i = lane; i < n / 8; i += 32) d[i] = s[i];
  } else {
    for (int i = lane; i < n; i += 32) dst[i] = src[i];
  }
}

// The end of steps 3 and 5: each block makes its stores visible system-wide; the last block to finish then sets
// this rank's word of every rank's flags (at byte offset `flags` of the windows) to the forward's number.
__device__ __forceinline__ void raise_flags_when_done(char* const* __restrict__ peers, const SymmetricLayout& L,
                                                      std::size_t flags, int me, std::uint64_t epoch,
                                                      unsigned int* ticket) {
  __threadfence_system();
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int done = atomicAdd(ticket, 1u);
    if (done == gridDim.x - 1) {  // every block's rows are visible system-wide: tell the receivers
      *ticket = 0;
      __threadfence_system();
      for (int d = 0; d < L.ranks; ++d) store_release_sys(flag_words(peers[d], flags) + me, epoch);
    }
  }
}

// 3: a warp per (token, destination) row, destinations innermost (a token's row is read once from L2 for all of
// them). Row p of this rank for destination d goes to d's window at base[d] + p, base[d] = the rows that lower ranks
// send to d (from the mailbox, step 2 complete). The last block raises the payload flags.
__global__ void push_kernel(const bf16* __restrict__ xr, const int* __restrict__ ids,
                            const float* __restrict__ weights, int T, const int* __restrict__ owner,
                            const int* __restrict__ local, const int* __restrict__ flags,
                            const int* __restrict__ positions, char* const* __restrict__ peers, SymmetricLayout L,
                            int me, std::uint64_t epoch, unsigned int* ticket, const int* overflow) {
  extern __shared__ std::size_t base[];  // [R]
  if (*overflow) return;  // some window is too small: every rank skips, grows it and pushes again
  const int R = L.ranks, K = L.top_k, width = L.width;
  {
    const std::uint64_t* mail = mailbox_slot(peers[me], L, epoch);  // current: step 2 is complete
    const auto row_count = [mail](std::size_t word) {
      return static_cast<std::uint32_t>(load_relaxed_sys(mail + word));
    };
    for (int d = threadIdx.x; d < R; d += blockDim.x) base[d] = L.rows_from(me, d, row_count);
  }
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const std::size_t warps = static_cast<std::size_t>(gridDim.x) * (blockDim.x / 32);
  const std::size_t items = static_cast<std::size_t>(T) * R;
  for (std::size_t w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; w < items; w += warps) {
    const int t = static_cast<int>(w / R), d = static_cast<int>(w % R);
    const std::size_t fr = static_cast<std::size_t>(d) * T + t;
    if (!flags[fr]) continue;
    const std::size_t p = base[d] + positions[fr] - positions[static_cast<std::size_t>(d) * T];
    char* win = peers[d];
    warp_copy_row(reinterpret_cast<bf16*>(win + L.rows) + p * width, xr + static_cast<std::size_t>(t) * width, width,
                  lane);
    write_pair_meta(reinterpret_cast<int*>(win + L.meta) + p * 2 * K, ids, weights, t, K, owner, local, d, lane);
  }
  raise_flags_when_done(peers, L, L.flags, me, epoch, ticket);
}

// 5: the received rows of home h (bases[h] <= i < bases[h + 1]) go to h's back rows at bases[R + h] + (i - bases[h]).
// The blocks take the homes in turn (index j is row j / R of home (me + 1 + j) % R), so that at any moment every
// rank writes to every home, as an all-to-all's schedule does. In the rows' order all ranks sent to home 0 first,
// then to home 1, ..., queueing on one GPU's NVLink ingress at a time: qwen3-30b-a3b's combine at 4 ranks took
// 0.29 ms against 0.19 (session 12). The turns run to R x the most rows of one home: where one home sent far more
// rows than the others (ranks with very different token counts), most turns are skipped, a cost the rows' order did
// not have; measured there (4 x H200, session 13) this combine still beat the NCCL one (docs/performance.md). Then
// the last block raises the back flags.
template <int V>
__global__ void send_back_kernel(const bf16* __restrict__ y, int padded, const int* __restrict__ pair_pos,
                                 const int* __restrict__ meta, int N, const float* __restrict__ b2, float scale,
                                 char* const* __restrict__ peers, SymmetricLayout L,
                                 const std::size_t* __restrict__ bases, int me, std::uint64_t epoch,
                                 unsigned int* ticket) {
  const int R = L.ranks;
  const auto rows_of = [&](int h) { return (h + 1 < R ? bases[h + 1] : static_cast<std::size_t>(N)) - bases[h]; };
  std::size_t most = 0;  // the most rows of one home
  for (int h = 0; h < R; ++h) most = max(most, rows_of(h));
  for (std::size_t j = blockIdx.x; j < most * R; j += gridDim.x) {
    const int h = static_cast<int>((me + 1 + j) % R);
    const std::size_t k = j / R;
    if (k >= rows_of(h)) continue;  // home h has fewer rows (the same for every thread of the block)
    bf16* dst = reinterpret_cast<bf16*>(peers[h] + L.back) + (bases[R + h] + k) * L.width;
    weighted_sum_row<V>(y, padded, pair_pos, meta, L.top_k, L.width, b2, scale, bases[h] + k, dst);
  }
  raise_flags_when_done(peers, L, L.back_flags, me, epoch, ticket);
}

}  // namespace

bool SymmetricDispatch::available(const NcclComm& nccl, std::string* why) {
  const ncclTeam_t lsa = ncclTeamLsa(nccl.get());
  if (lsa.nRanks == nccl.size()) return true;
  if (why)
    *why = "only " + std::to_string(lsa.nRanks) + " of the " + std::to_string(nccl.size()) +
           " ranks reach this rank's GPU memory by load/store (NCCL's LSA team)";
  return false;
}

SymmetricDispatch::SymmetricDispatch(const MpiComm& comm, const NcclComm& nccl, int width, int top_k, int max_local,
                                     int token_capacity, bool combine)
    : comm_(comm), nccl_(nccl) {
  EPMOE_REQUIRE(comm.size() <= kMaxRanks, ErrorKind::Config, "the symmetric dispatch supports at most ", kMaxRanks,
                " ranks");
  EPMOE_REQUIRE(top_k <= 32, ErrorKind::Config, "the symmetric dispatch supports top_k <= 32, got ", top_k);
  layout_.ranks = comm.size();
  layout_.stride = 1 + max_local;
  layout_.width = width;
  layout_.top_k = top_k;
  layout_.combine = combine;
  int device = 0;
  EPMOE_CUDA_CHECK(cudaGetDevice(&device));
  EPMOE_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  peers_ = DeviceBuffer<char*>(layout_.ranks, "symmetric_peers");
  ticket_ = DeviceBuffer<unsigned int>(2, "symmetric_ticket");
  EPMOE_CUDA_CHECK(cudaMemset(ticket_.data(), 0, 2 * sizeof(unsigned int)));
  bases_ = DeviceBuffer<std::size_t>(2 * static_cast<std::size_t>(layout_.ranks), "symmetric_bases");
  host_words_.reserve(layout_.mailbox_words());
  host_counts_.resize(layout_.mailbox_words());
  overflow_ = DeviceBuffer<int>(1, "symmetric_overflow");
  timeout_.reserve(1);  // page-locked: the wait kernels write it through the same address (unified addressing)
  timeout_.data()[0] = 0;
  allocate(std::max(1, token_capacity));
}

SymmetricDispatch::~SymmetricDispatch() {
  cudaDeviceSynchronize();
  release();
}

void SymmetricDispatch::allocate(int token_capacity) {
  SymmetricLayout& L = layout_;
  L.row_capacity = static_cast<std::size_t>(L.ranks) * token_capacity;
  std::size_t at = 0;
  L.rows = at;
  at = round_up(at + L.row_capacity * L.width * sizeof(bf16), kAlign);
  L.meta = at;
  at = round_up(at + L.row_capacity * 2 * L.top_k * sizeof(int), kAlign);
  L.back = at;
  at = round_up(at + (L.combine ? L.row_capacity * L.width * sizeof(bf16) : 0), kAlign);
  L.mailbox = at;
  at = round_up(at + 2 * static_cast<std::size_t>(L.mailbox_words()) * sizeof(std::uint64_t), kAlign);
  L.flags = at;
  at = round_up(at + static_cast<std::size_t>(L.ranks) * sizeof(std::uint64_t), kAlign);
  L.back_flags = at;
  at = round_up(at + static_cast<std::size_t>(L.ranks) * sizeof(std::uint64_t), kAlign);
  L.bytes = at;
  // A single rank's window is its own memory: nothing to register (and NCCL makes no LSA window for one rank).
  if (L.ranks == 1)
    EPMOE_CUDA_CHECK(cudaMalloc(&window_, L.bytes));
  else
    EPMOE_NCCL_CHECK(ncclMemAlloc(&window_, L.bytes));
  // Zero mailbox and flags (epochs start at 1) before any rank can write into them: the registration below is
  // collective, and no rank posts before it has registered.
  EPMOE_CUDA_CHECK(cudaMemset(static_cast<char*>(window_) + L.mailbox, 0, L.bytes - L.mailbox));
  EPMOE_CUDA_CHECK(cudaDeviceSynchronize());
  if (L.ranks == 1) {
    char* self = static_cast<char*>(window_);
    EPMOE_CUDA_CHECK(cudaMemcpy(peers_.data(), &self, sizeof self, cudaMemcpyHostToDevice));
  } else {
    EPMOE_NCCL_CHECK(ncclCommWindowRegister(nccl_.get(), window_, L.bytes, &handle_, NCCL_WIN_COLL_SYMMETRIC));
    peer_bases_kernel<<<1, std::max(32, ((L.ranks + 31) / 32) * 32)>>>(handle_, L.ranks, peers_.data());
    EPMOE_CUDA_LAUNCH_CHECK();
    EPMOE_CUDA_CHECK(cudaDeviceSynchronize());
  }
  comm_.barrier();  // every rank's window is zeroed and registered before anyone writes into it
  token_capacity_ = token_capacity;
}

void SymmetricDispatch::release() noexcept {
  if (handle_) ncclCommWindowDeregister(nccl_.get(), handle_);
  if (window_ && layout_.ranks == 1) cudaFree(window_);
  else if (window_) ncclMemFree(window_);
  handle_ = nullptr;
  window_ = nullptr;
}

void SymmetricDispatch::begin_forward() { ++epoch_; }

void SymmetricDispatch::grow(std::size_t rows, cudaStream_t stream) {
  const int R = layout_.ranks;
  const int tokens = static_cast<int>((rows + R - 1) / R);
  const int capacity = tokens + tokens / 4 + 16;  // headroom: routing noise between forwards does not grow it again
  if (comm_.rank() == 0)
    std::fprintf(stderr,
                 "# epmoe cuda: growing the symmetric dispatch window from %d to %d tokens per rank (a rank receives "
                 "or sends %zu rows, %zu fit)\n",
                 token_capacity_, capacity, rows, layout_.row_capacity);
  // Every rank stops using the old windows (its own GPU work done, then everyone's) before they go.
  EPMOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  EPMOE_CUDA_CHECK(cudaDeviceSynchronize());
  comm_.barrier();
  release();
  allocate(capacity);
  epoch_ = 1;
}

void SymmetricDispatch::exchange_counts(const int* sent_counts, cudaStream_t stream, ForwardTrace& trace) {
  last_exchange_ = {sent_counts, stream, &trace};
  const SymmetricLayout& L = layout_;
  const int me = comm_.rank();
  const std::uint64_t* slot = mailbox_slot(static_cast<char*>(window_), L, epoch_);
  static_assert(ForwardTrace::kPostWritten == ForwardTrace::kPostEntry + 1, "post_counts stamps two adjacent slots");
  post_wait_counts_kernel<<<1, 256, 0, stream>>>(sent_counts, peers_.data(), L, me, epoch_,
                                                 trace.slot(ForwardTrace::kPostEntry), slot, timeout_.data(),
                                                 overflow_.data(), bases_.data());
  EPMOE_CUDA_LAUNCH_CHECK();
  counts_arrived_.record(stream);
  EPMOE_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_.get(), counts_arrived_.get(), 0));
  EPMOE_CUDA_CHECK(cudaMemcpyAsync(host_words_.data(), slot, L.mailbox_words() * sizeof(std::uint64_t),
                                   cudaMemcpyDeviceToHost, copy_stream_.get()));
  counts_copied_.record(copy_stream_.get());
}

void SymmetricDispatch::push(const bf16* xr, const int* ids, const float* weights, int num_tokens,
                             const int* expert_owner, const int* expert_local, const int* flags, const int* positions,
                             cudaStream_t stream, ForwardTrace& trace) {
  last_push_ = {xr, ids, weights, num_tokens, expert_owner, expert_local, flags, positions, stream, &trace};
  const SymmetricLayout& L = layout_;
  const std::size_t items = static_cast<std::size_t>(num_tokens) * L.ranks;
  const std::size_t warps_per_block = kPushThreads / 32;
  const int blocks = static_cast<int>(std::clamp<std::size_t>((items + warps_per_block - 1) / warps_per_block, 1,
                                                              2 * static_cast<std::size_t>(sm_count_)));
  push_kernel<<<blocks, kPushThreads, L.ranks * sizeof(std::size_t), stream>>>(
      xr, ids, weights, num_tokens, expert_owner, expert_local, flags, positions, peers_.data(), L, comm_.rank(),
      epoch_, ticket_.data(), overflow_.data());
  EPMOE_CUDA_LAUNCH_CHECK();
  trace.gpu(ForwardTrace::kPushed, stream);
}

void SymmetricDispatch::send_back(const bf16* y, int padded, const int* pair_pos, const int* meta, int num_rows,
                                  const float* b2, float scale, cudaStream_t stream) {
  const SymmetricLayout& L = layout_;
  EPMOE_ASSERT(L.combine, "send_back on a window made without back rows");
  // Blocks stride over the rows (a block per row would make each of tens of thousands of blocks fence and count).
  const int blocks = std::clamp(num_rows, 1, 8 * sm_count_);
  const auto kernel = vec8_ok({padded, L.width}) ? send_back_kernel<8> : send_back_kernel<1>;
  kernel<<<blocks, kBackThreads, 0, stream>>>(y, padded, pair_pos, meta, num_rows, b2, scale, peers_.data(), L,
                                              bases_.data(), comm_.rank(), epoch_, ticket_.data() + 1);
  EPMOE_CUDA_LAUNCH_CHECK();
}

void SymmetricDispatch::wait_flags(std::size_t flags_at, int code, cudaStream_t stream) {
  const SymmetricLayout& L = layout_;
  wait_flags_kernel<<<1, 32 * ((L.ranks + 31) / 32), 0, stream>>>(
      flag_words(static_cast<char*>(window_), flags_at), L.ranks, epoch_, code, timeout_.data(), overflow_.data());
  EPMOE_CUDA_LAUNCH_CHECK();
}

void SymmetricDispatch::wait_back(cudaStream_t stream) {
  wait_flags(layout_.back_flags, kBackWait, stream);
}

void SymmetricDispatch::wait_rows() {
  wait_flags(layout_.flags, kPayloadWait, copy_stream_.get());
  rows_arrived_.record(copy_stream_.get());
}

void SymmetricDispatch::join_rows() {
  EPMOE_CUDA_CHECK(cudaStreamWaitEvent(last_push_.stream, rows_arrived_.get(), 0));
}

const int* SymmetricDispatch::host_counts() {
  for (;;) {
    EPMOE_CUDA_CHECK(cudaEventSynchronize(counts_copied_.get()));
    check_timeouts();
    for (std::size_t i = 0; i < host_counts_.size(); ++i)
      host_counts_[i] = static_cast<int>(static_cast<std::uint32_t>(host_words_.data()[i]));
    // The kernels' overflow test, on the same counts (every rank reaches the same answer).
    const auto row_count = [this](std::size_t i) { return static_cast<std::size_t>(host_counts_[i]); };
    std::size_t most = 0;
    for (int r = 0; r < layout_.ranks; ++r) most = std::max(most, layout_.rows_needed(r, row_count));
    if (most <= layout_.row_capacity) return host_counts_.data();
    // Steps 3 and 4 did nothing on any rank: grow every window, then this forward's dispatch again.
    const PushArgs p = last_push_;
    grow(most, p.stream);
    exchange_counts(last_exchange_.sent, last_exchange_.stream, *last_exchange_.trace);
    push(p.xr, p.ids, p.weights, p.num_tokens, p.owner, p.local, p.flags, p.positions, p.stream, *p.trace);
    wait_rows();
    join_rows();
  }
}

void SymmetricDispatch::check_timeouts() const {
  const int code = *reinterpret_cast<volatile const int*>(timeout_.data());
  if (code == 0) return;
  const int offset = code > kBackWait ? kBackWait : code > kPayloadWait ? kPayloadWait : 0;
  const char* what = offset == kBackWait      ? "combine rows"
                     : offset == kPayloadWait ? "dispatch rows"
                                              : "dispatch counts";
  const int peer = code - 1 - offset;
  EPMOE_THROW(ErrorKind::Runtime, "rank ", comm_.rank(), " waited ", kTimeoutNs / 1000000000ull, " s for the ", what,
              " of rank ", peer,
              " (symmetric dispatch, forward ", epoch_,
              "): that rank stopped or fell behind; check its log, or run with EPMOE_CUDA_DISPATCH=nccl");
}

bf16* SymmetricDispatch::rows() const {
  return reinterpret_cast<bf16*>(static_cast<char*>(window_) + layout_.rows);
}

const int* SymmetricDispatch::meta() const {
  return reinterpret_cast<const int*>(static_cast<const char*>(window_) + layout_.meta);
}

const bf16* SymmetricDispatch::back_rows() const {
  return reinterpret_cast<const bf16*>(static_cast<const char*>(window_) + layout_.back);
}

}  // namespace epmoe::cuda
