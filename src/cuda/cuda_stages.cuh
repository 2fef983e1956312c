// The CUDA backend's stages of one MoE layer: forward_layer() (src/core/forward_layer.hpp) calls them in order, as it
// calls the CPU backend's. Activations are bf16 device rows in workspaces this class owns: a stage returns a handle
// to its own output buffer, so the steady state allocates nothing. The layer runs on one stream, with side streams
// joined back by events (the shared expert, the dispatch's pack, the buckets of the grouped GEMMs); the count
// exchange of the dispatch (or the pair counts of select_local) is the one host synchronization of a layer.
#pragma once

#include <memory>
#include <vector>

#include "device_weights.cuh"
#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/layer.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/plan.hpp"
#include "gemm.cuh"
#include "kernels.cuh"
#include "nccl_comm.cuh"
#include "resources.cuh"
#include "symmetric_dispatch.cuh"

namespace epmoe::cuda {

// A non-owning handle to [rows, cols] contiguous bf16 rows in a stage's workspace.
struct DeviceRows {
  bf16* data = nullptr;
  int rows = 0;
  int cols = 0;
  std::size_t size() const { return static_cast<std::size_t>(rows) * cols; }
};

struct DeviceRouting {
  const int* ids = nullptr;        // [T, K] global expert ids
  const float* weights = nullptr;  // [T, K] without the routed scaling factor
  int tokens = 0;
};

// Token rows for this rank's experts with their pairs (meta: see kernels.cuh), plus how they travelled.
struct DeviceBatch {
  DeviceRows rows;                  // [N, Din]
  const int* meta = nullptr;        // [N, 2K]
  std::vector<int> expert_offsets;  // host: [n + 1], pairs of local expert j are [offsets[j], offsets[j+1])
  int home_tokens = 0;
  std::vector<std::size_t> rows_from, rows_to;  // alltoall: rows received from / sent to each rank
};

// The experts' output for the combine: the trimmed weighted sums [N, Din] of the received rows, or, where the
// combine forms those sums itself on their way home (the symmetric combine), what it sums: each pair's output.
struct DevicePartial {
  DeviceRows rows;                 // [N, Din]; data == nullptr when the sums are the combine's
  const bf16* pair_out = nullptr;  // [GEMM rows, padded]: pair k of row i is row pair_pos[i * K + k]
  int padded = 0;
  const int* pair_pos = nullptr;   // [N, K]
  const int* meta = nullptr;       // [N, 2K]
};

// How the combine moves the rows home (EPMOE_CUDA_COMBINE = auto | nccl | symmetric; auto: symmetric where the
// dispatch is): the weighted sums into a local buffer, then NCCL send/recv; or each sum stored straight into its home
// rank's window as it is formed (SymmetricDispatch::send_back).
enum class CombinePath { Nccl, Symmetric };

// Records (phase, start, stop) event pairs on a stream; collect() adds the elapsed times once the stream is done.
// Phases may nest (a part of a stage, such as the dispatch's payload exchange): begin() returns the slot that end()
// closes. A slot begun but never ended (a throw abandoned the forward) is dropped.
class PhaseClock {
 public:
  explicit PhaseClock(PhaseTimes& times);
  int begin(double PhaseTimes::*phase, cudaStream_t stream);
  void end(int slot, cudaStream_t stream);
  void collect();  // after the stream has been synchronized

 private:
  PhaseTimes& times_;
  std::vector<Event> events_;
  std::vector<double PhaseTimes::*> phases_;
  std::vector<char> ended_;
  int used_ = 0;
};

// How the dispatch's count exchange runs (EPMOE_CUDA_COUNT_EXCHANGE = mpi | nccl; default mpi): the sent counts
// to the host and MPI_Alltoall there, or an NCCL all-to-all on the device and both counts to the host.
enum class CountExchange { Mpi, Nccl };
CountExchange count_exchange_from_env();

// Where the overlapped shared expert (alltoall mode) starts on its side stream (EPMOE_CUDA_SHARED_START = pushed |
// push | route | experts; default pushed): once this rank's rows are sent (symmetric dispatch: beside the wait for
// the other ranks' rows; NCCL dispatch: as experts), once the dispatch's counts are known (beside the push), with
// the router, or once the dispatch is done (beside the experts' GEMMs). The layer is compute-bound, so the shared
// expert's GEMMs cost about their own time wherever they run: deepseek-v3 on 2 x H200 (session 10) took 7.31-7.59
// ms at 4096 tokens per rank from every start, within the runs' noise. But beside the push they take the push
// kernel's SMs (the dispatch at 43-47% of NCCL's equal-split rate), and beside the router they double its time on
// the critical path (sessions 7-8); pushed leaves the dispatch alone (92-99%) and still overlaps the wait.
enum class SharedStart { Route, Push, Experts, Pushed };
SharedStart shared_start_from_env();

class CudaStages {
 public:
  using Rows = DeviceRows;
  using Routing = DeviceRouting;
  using Batch = DeviceBatch;
  using Partial = DevicePartial;

  CudaStages(const ModelConfig& model, const UnpadPlan& plan, const ParallelConfig& parallel, const MpiComm& comm,
             const NcclComm& nccl, DeviceWeights weights, int max_tokens, PhaseTimes& times);

  // Copies this rank's tokens in (fp32 for the router, bf16 for the rest) and synchronizes the stream; not timed.
  // Returns the bf16 rows.
  Rows stage_input(const Matrix<float>& x);
  // Copies the layer output and the routing out (synchronizes the stream).
  void fetch_output(const Rows& out, Matrix<float>& result, epmoe::Routing& routing);
  // The end of a forward whose output stays on the device: waits for the stream, then reports a dispatch timeout
  // and collects the phase times (fetch_output ends with it too).
  void finish_forward();

  // alltoall mode with a shared expert: route(), dispatch() or experts(), as EPMOE_CUDA_SHARED_START says, starts
  // the shared expert on a second stream (start_shared_expert); shared_expert() then only waits for it.
  Routing route(const Rows& x);
  // Imposes the expert choice of the following forwards ([T, K] global ids), or restores the router's (nullptr).
  void force_expert_ids(const Matrix<int>* ids) {
    forced_ = ids != nullptr;
    if (ids) forced_ids_ = *ids;
  }
  Rows latent_down(const Rows& x);
  Batch dispatch(const Rows& xr, const Routing& routing);
  Batch select_local(const Rows& xr, const Routing& routing);
  Partial experts(const Batch& batch);
  Rows combine(const Partial& partial, const Batch& batch);
  Rows latent_up(const Rows& routed);
  Rows shared_expert(const Rows& x);
  void add_into(Rows& dst, const Rows& src);
  void all_reduce(Rows& routed, Rows* shared);

  cudaStream_t stream() const { return stream_.get(); }
  PhaseClock& clock() { return clock_; }
  std::size_t device_bytes() const;
  std::size_t weight_bytes() const { return weights_.bytes(); }
  bool symmetric_dispatch() const { return symmetric_ != nullptr; }
  bool symmetric_combine() const { return combine_path_ == CombinePath::Symmetric; }
  int symmetric_window_tokens() const { return symmetric_ ? symmetric_->token_capacity() : 0; }
  std::size_t last_dispatch_bytes = 0, last_combine_bytes = 0, last_rows_received = 0, last_pairs = 0;
  const ExpertGemm& expert_gemm() const { return *expert_gemm_; }
  ForwardTrace& trace() { return trace_; }

 private:
  void reserve_tokens(int tokens);
  // The symmetric dispatch where EPMOE_CUDA_DISPATCH and the machine allow it (collective), and combine_path_
  // (EPMOE_CUDA_COMBINE).
  void make_symmetric_dispatch(int max_tokens);
  // Room for `rows` rows of the experts' GEMM buffers (x_sorted, h, a, y); a new x_sorted is zeroed on `stream`, so
  // that the padding rows of the grouped layout read defined values.
  void reserve_gemm_rows(std::size_t rows, bool log, cudaStream_t stream);
  // In alltoall mode with a shared expert, at the point EPMOE_CUDA_SHARED_START names: the shared expert on the side
  // stream, from the staged input, once the main stream has reached this point; shared_expert() joins it.
  void start_shared_expert(SharedStart at);
  // The shared expert's GEMMs and activation on `stream` with `handle`, into `out` [T, D].
  void run_shared_expert(const Rows& x, bf16* out, cublasHandle_t handle, cudaStream_t stream);
  // The dispatch's counts through the host (EPMOE_CUDA_DISPATCH=nccl): the pack on its own stream, the count
  // exchange (MPI or NCCL), the host waits; fills sent/got [R, 1 + max_local]; ends the clock's counts_slot.
  void exchange_counts_host(const Rows& xr, const Routing& routing, int* sent, int* got, int counts_slot);
  // Pair ordering by local expert and the host offsets from per-expert counts (shared by both modes).
  std::vector<int> offsets_from_counts(const int* counts) const;

  const ModelConfig& model_;
  const UnpadPlan& plan_;
  const NcclComm& nccl_;
  MpiComm comm_;  // rank, size and the count exchange (a copy of the handle: the communicator outlives the layer)
  CountExchange count_exchange_;
  SharedStart shared_start_;
  RouterGemm router_gemm_;
  bool x_bf16_ = false;  // every value of the staged input is a bf16 (route() may use router_logit_parts_bf16x3)
  PinnedBuffer<int> not_bf16_;  // the conversion kernel's answer to it
  // EPMOE_CUDA_DISPATCH = auto (symmetric where every rank is reachable by load/store) | nccl | symmetric: with
  // it, the dispatch writes into the receivers' NCCL symmetric windows; without, grouped ncclSend/ncclRecv.
  std::unique_ptr<SymmetricDispatch> symmetric_;
  CombinePath combine_path_ = CombinePath::Nccl;  // Symmetric only with symmetric_ in alltoall mode
  ExpertPlacement placement_;
  int max_local_;
  DeviceWeights weights_;
  Stream stream_;
  CublasHandle cublas_;
  std::unique_ptr<ExpertGemm> expert_gemm_;
  Stream side_stream_;
  CublasHandle side_cublas_;
  Stream pack_stream_;  // the dispatch's pack, beside the count exchange
  Event input_ready_{false}, shared_ready_{false}, counts_ready_{false}, layout_ready_{false}, packed_{false};
  bool shared_in_flight_ = false;
  PhaseClock clock_;
  ForwardTrace trace_;  // EPMOE_CUDA_TRACE
  ActivationParams act_;
  int token_capacity_ = 0;
  int token_rows_ = 0;  // rows of this forward's staged input (route() sets it)

  DeviceBuffer<int> owner_, local_;  // [E] placement on the device
  // Token-sized workspaces.
  DeviceBuffer<float> x_f32_, logits_, routing_weights_, out_f32_;
  DeviceBuffer<bf16> x_, latent_x_, routed_, up_, shared_out_, reduce_;
  DeviceBuffer<int> ids_, flags_, positions_, meta_local_;
  bool forced_ = false;
  Matrix<int> forced_ids_;  // host copy of the imposed choice
  DeviceBuffer<bf16> shared_h_, shared_a_;
  // Dispatch and experts workspaces (grow with the traffic).
  DeviceBuffer<bf16> send_rows_, recv_rows_, partial_, back_;
  DeviceBuffer<int> send_meta_, recv_meta_;
  DeviceBuffer<int> counts_;  // [2, R, 1 + max_local]: sent, then (NCCL count exchange) received counts
  DeviceBuffer<int> local_counts_;
  PinnedBuffer<int> counts_host_;
  DeviceBuffer<int> pair_pos_;    // [N, K]: the GEMM row of each received pair (-1: unused slot)
  DeviceBuffer<int> row_expert_;  // per GEMM row: its local expert, -1 for the padding rows of a block
  DeviceBuffer<bf16> x_sorted_, h_, a_, y_;  // the experts' GEMM rows, in the layout ExpertGemm planned
  DeviceBuffer<unsigned char> cub_temp_;
};

}  // namespace epmoe::cuda
