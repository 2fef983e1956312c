// The dispatch's exchange without the host in the middle (EPMOE_CUDA_DISPATCH=symmetric): every rank owns one NCCL
// symmetric window (ncclMemAlloc + ncclCommWindowRegister) that all ranks of the node reach by load and store over
// NVLink (NCCL's LSA team), and the kernels of the dispatch write straight into the receivers' windows:
//
//   1. post counts:  this rank's sent counts [R, 1 + max_local] go to every rank's mailbox (all ranks then know every
//                    rank's row count for every destination), each count with the forward's tag in one 64-bit
//                    store (relaxed, system scope): a word is current when its tag is, so there is no flag to raise
//                    and no fence to pay (a system-scope fence cost 0.1-0.25 ms on deepseek-v3's busy GPUs);
//   2. wait:         in the same kernel, until every word of this forward's mailbox slot here carries its tag;
//   3. push:         each (token, destination) row and its pair metadata go into the destination's window at
//                    (rows of lower ranks for that destination) + (its position among this rank's rows for it), so
//                    a receiver's rows are contiguous and in source-rank order, exactly as the NCCL all-to-all-v lays
//                    them out; the last block to finish raises a flag per receiver;
//   4. wait:         until every rank's rows have arrived here.
// Beside 3, on a stream of its own, the mailbox goes to the host (the host waits for the counts, the layer's one host
// synchronization, while the rows move, instead of before), and step 4 runs there too (see wait_rows()).
// The combine runs over the same windows (EPMOE_CUDA_COMBINE, CudaStages::combine):
//   5. send back:    blocks striding over the received rows form each row's weighted sum over its pairs (the
//                    arithmetic of the experts' weighted_sum, so the outputs are bit-identical) and store the
//                    trimmed row straight into its home rank's combine rows, at (rows the home sent to ranks below
//                    this one) + (the row's index among the home's rows here): the place the home's send layout gave
//                    it, so the home's combine_sum reads its window as it reads NCCL's receive buffer; the last block
//                    raises a flag per home rank;
//   6. wait:         until every rank's rows are back here.
//
// Reuse of the window across forwards is safe without further barriers: a rank posts the counts of forward e + 1
// only after its own forward e has finished (stream order), and no rank pushes forward e + 1 before it has every
// rank's counts of e + 1; the mailbox alternates between two slots (a rank is at most one forward ahead of another
// when it posts). The combine rows likewise: a rank sends forward e's rows back to a home only after it has received
// that home's rows of e (step 4), which the home pushes only after its forward e - 1, combine_sum included, is done.
// Flags and mailbox words carry the forward's number (epoch; the words its low 32 bits), so they never need
// resetting.
#pragma once

#include <nccl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "epmoe/comm.hpp"
#include "kernels.cuh"
#include "nccl_comm.cuh"
#include "resources.cuh"
#include "trace.cuh"

namespace epmoe::cuda {

// Byte offsets of the parts of every rank's window (the same on all ranks).
struct SymmetricLayout {
  // rows [row_capacity, width] bf16 and meta [row_capacity, 2K] int: the dispatch's received rows; back
  // [row_capacity, width] bf16: the combine's rows coming home; mailbox: two count slots; flags, back_flags: [R] u64.
  std::size_t rows = 0, meta = 0, back = 0, mailbox = 0, flags = 0, back_flags = 0, bytes = 0;
  std::size_t row_capacity = 0;  // rows a window receives (and a rank sends) at most: ranks x token capacity
  int ranks = 0, stride = 0;     // stride = 1 + max_local: one rank's counts for one destination
  bool combine = false;          // the window has back rows (the symmetric combine); else that part is empty
  int width = 0, top_k = 0;
  // One mailbox slot: [source, destination, stride] 64-bit words (count, forward tag).
  __host__ __device__ int mailbox_words() const { return ranks * ranks * stride; }
  // The slot's word (or host count) where `source`'s counts for `destination` start; the first is the row count.
  __host__ __device__ std::size_t counts_at(int source, int destination) const {
    return (static_cast<std::size_t>(source) * ranks + destination) * stride;
  }
  // The rows `destination` receives from the sources [0, sources), given the row count at each counts_at() index.
  template <class RowCount>
  __host__ __device__ std::size_t rows_from(int sources, int destination, RowCount row_count) const {
    std::size_t rows = 0;
    for (int s = 0; s < sources; ++s) rows += row_count(counts_at(s, destination));
    return rows;
  }
  // The rows `source` sends to the destinations [0, destinations).
  template <class RowCount>
  __host__ __device__ std::size_t rows_to(int source, int destinations, RowCount row_count) const {
    std::size_t rows = 0;
    for (int d = 0; d < destinations; ++d) rows += row_count(counts_at(source, d));
    return rows;
  }
  // The rows rank r's window must hold: those it receives, or, with the combine, those it sends if more.
  template <class RowCount>
  __host__ __device__ std::size_t rows_needed(int r, RowCount row_count) const {
    const std::size_t in = rows_from(ranks, r, row_count), out = combine ? rows_to(r, ranks, row_count) : 0;
    return in > out ? in : out;
  }
};

class SymmetricDispatch {
 public:
  // Whether every rank of `nccl` is in this rank's LSA team (load/store reachable). Not collective.
  static bool available(const NcclComm& nccl, std::string* why);
  // Collective over `comm`/`nccl`: allocates and registers the window for `token_capacity` tokens per rank, with
  // back rows for the combine (steps 5 and 6) when `combine`.
  SymmetricDispatch(const MpiComm& comm, const NcclComm& nccl, int width, int top_k, int max_local,
                    int token_capacity, bool combine);
  ~SymmetricDispatch();
  SymmetricDispatch(const SymmetricDispatch&) = delete;
  SymmetricDispatch& operator=(const SymmetricDispatch&) = delete;

  // Starts forward number e + 1 (host only, not collective: no rank waits for another before the count exchange).
  void begin_forward();
  // Steps 1 and 2 on `stream`, then the mailbox's copy to the host on the window's own stream.
  void exchange_counts(const int* sent_counts, cudaStream_t stream, ForwardTrace& trace);
  // Step 3 on `stream` (same arguments as pack_dispatch, whose layout they follow).
  void push(const bf16* xr, const int* ids, const float* weights, int num_tokens, const int* expert_owner,
            const int* expert_local, const int* flags, const int* positions, cudaStream_t stream,
            ForwardTrace& trace);
  // Step 4, the wait for every rank's rows, in two calls around the work that should start once this rank's rows
  // are sent (the shared expert, EPMOE_CUDA_SHARED_START=pushed). wait_rows(), right after push(), runs the wait on
  // the window's own stream behind the mailbox copy but not behind this rank's push, so the wait is on an SM before
  // the push ends; on the push's stream it started only then, beside the shared expert's GEMMs, which could take
  // every SM for their whole run first (4 x H200, deepseek-v3, balanced placement: dispatch 0.81 ms against 0.58).
  // join_rows() makes the push's stream wait for it.
  void wait_rows();
  void join_rows();
  // Waits for the mailbox copy: [source, destination, stride] ints of this forward. Throws when a rank timed out.
  // When some rank receives (or sends) more rows than a window holds (every rank sees it in the same counts, and
  // steps 3 and 4 then did nothing), grows every rank's window (collective, with a log line) and runs this forward's
  // exchange_counts, push, wait_rows and join_rows again, with their last arguments.
  const int* host_counts();
  int token_capacity() const { return token_capacity_; }
  // Throws if a wait of an earlier forward timed out (call after a stream synchronization).
  void check_timeouts() const;

  // Step 5 on `stream`, for this forward's received rows (after wait_rows): row i's weighted sum over its pairs,
  // as weighted_sum (kernels.cuh) computes it from the same arguments, stored into its home rank's window.
  void send_back(const bf16* y, int padded, const int* pair_pos, const int* meta, int num_rows, const float* b2,
                 float scale, cudaStream_t stream);
  // Step 6 on `stream`: until every rank's rows are back here, in back_rows().
  void wait_back(cudaStream_t stream);

  bf16* rows() const;       // this rank's received rows [row_capacity, width]
  const int* meta() const;  // and their metadata [row_capacity, 2K]
  // The combine's rows back home, at the positions of this rank's send layout (as NCCL's receive buffer holds them).
  const bf16* back_rows() const;
  const SymmetricLayout& layout() const { return layout_; }
  std::size_t bytes() const { return layout_.bytes; }

 private:
  void allocate(int token_capacity);
  void release() noexcept;
  void grow(std::size_t rows, cudaStream_t stream);  // to hold `rows` rows per window at least
  // Steps 4 and 6: on `stream`, until every rank's flag at byte `flags_at` of the window carries this forward.
  void wait_flags(std::size_t flags_at, int code, cudaStream_t stream);
  struct ExchangeArgs {
    const int* sent = nullptr;
    cudaStream_t stream = nullptr;
    ForwardTrace* trace = nullptr;
  };
  struct PushArgs {
    const bf16* xr = nullptr;
    const int* ids = nullptr;
    const float* weights = nullptr;
    int num_tokens = 0;
    const int *owner = nullptr, *local = nullptr, *flags = nullptr, *positions = nullptr;
    cudaStream_t stream = nullptr;
    ForwardTrace* trace = nullptr;
  };
  ExchangeArgs last_exchange_;  // this forward's, for a run after growing
  PushArgs last_push_;

  MpiComm comm_;
  const NcclComm& nccl_;
  SymmetricLayout layout_;
  std::uint64_t epoch_ = 0;
  int token_capacity_ = 0;
  void* window_ = nullptr;  // ncclMemAlloc
  ncclWindow_t handle_ = nullptr;
  DeviceBuffer<char*> peers_;          // [R] every rank's window, as this GPU addresses it
  DeviceBuffer<unsigned int> ticket_;  // [2]: the push's and the send-back's last-block detection
  // [2R] from the counts of the forward: bases_[h] = the first of the rows here from rank h, bases_[R + h] = the
  // rows h sends to ranks below this one (where those rows go in h's back rows).
  DeviceBuffer<std::size_t> bases_;
  DeviceBuffer<int> overflow_;         // 1 when this forward's counts do not fit some rank's window
  PinnedBuffer<std::uint64_t> host_words_;  // the mailbox slot of the forward, as copied
  std::vector<int> host_counts_;             // its counts
  // 0, or 1 + the rank a wait gave up on (+ 1000: the payload wait; + 2000: the combine's wait).
  PinnedBuffer<int> timeout_;
  Stream copy_stream_;
  Event counts_arrived_{false}, counts_copied_{false}, rows_arrived_{false};
  int sm_count_ = 0;
};

}  // namespace epmoe::cuda
