// The CUDA backend of one MoE layer: bf16 weights and activations, fp32 accumulation, router in fp32, NCCL between
// ranks (one rank per GPU). Kernel details stay in src/cuda; this header is all a caller needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/layer.hpp"
#include "epmoe/weights.hpp"

namespace epmoe {

struct CudaOptions {
  // Tokens per rank the device buffers are sized for at start. A larger forward() grows them (with a log line on
  // stderr); the steady state allocates nothing.
  int max_tokens = 4096;
  // Two ranks on one GPU is refused unless this is set (it works, but the timings mean little).
  bool allow_shared_gpu = false;
};

// False when no CUDA device is visible (no driver, no GPU): GPU tests then exit 77 (skipped).
bool cuda_device_available();

// The values EPMOE_CUDA_EXPERT_GEMM takes in this build (src/cuda/gemm.cuh): grouped and streams, and cutlass where
// the CUTLASS grouped GEMM was built (CUTLASS headers found, sm_90 a target).
std::vector<std::string> cuda_expert_gemm_choices();

// GPU name, PCI bus id and memory of the device this process uses (local rank % device count), for reports.
std::string cuda_device_description();

// `shard` holds this rank's experts (ExpertPlacement::experts_of(rank)) and the full router, shared and latent
// weights, in float32; they are rounded to bf16 on upload (the router stays float32).
std::unique_ptr<LayerRunner> make_cuda_layer(const ModelConfig& model, const ParallelConfig& parallel,
                                             const MpiComm& comm, const LayerWeights& shard,
                                             const CudaOptions& options);

// The same layer with synthetic weights generated on the device by the counter generator of
// generate_layer_weights() (src/core/weights.cpp): equal to uploading generate_layer_weights(model, seed, layer,
// this rank's experts), so that model-sized presets need neither a file nor host memory for the experts.
std::unique_ptr<LayerRunner> make_cuda_layer_synthetic(const ModelConfig& model, const ParallelConfig& parallel,
                                                       const MpiComm& comm, std::uint64_t seed, int layer,
                                                       const CudaOptions& options);

// The layer as it runs inside a model: again on the input the last forward() put on the device, right after the
// previous forward's GPU work (no copy in, no barrier before it), its output left on the device. Phase times and
// the trace as forward(). The benchmarks time it: forward() also copies the input in and the output out (117 MB each
// way at deepseek-v3's shape, 4096 tokens), which leaves NVLink idle long enough to fall asleep (docs/performance.md).
// `gpu_lead_seconds` > 0: the layer's stream first idles that long on the GPU (outside the timed forward), so that
// the host has queued the forward's first stages before the GPU starts them, as inside a model, where the previous
// layer's work keeps the GPU busy meanwhile; without it a forward after a host barrier starts on an idle GPU and its
// route runs only as fast as the host launches it, which skews the ranks' arrival at the dispatch.
void cuda_layer_forward_resident(LayerRunner& runner, double gpu_lead_seconds = 0);

// What the last forward() of a CUDA layer moved and holds (this rank). `runner` must come from make_cuda_layer*.
struct CudaLayerStats {
  std::size_t dispatch_bytes_sent = 0;  // payload bytes this rank sent in the dispatch (rows + pair metadata)
  std::size_t combine_bytes_sent = 0;   // payload bytes this rank sent back in the combine
  std::size_t rows_received = 0;        // token rows this rank's experts processed
  std::size_t pairs_processed = 0;      // (row, local expert) pairs, i.e. rows of the grouped GEMMs
  std::size_t gemm_rows = 0;            // rows the experts' GEMMs computed (pairs + padding of the grouped layout)
  int gemm_buckets = 0;                 // GEMM calls per weight matrix (grouped: buckets of similar experts)
  bool symmetric_dispatch = false;      // the dispatch wrote into NCCL symmetric windows (EPMOE_CUDA_DISPATCH)
  bool symmetric_combine = false;       // and the combine's weighted sums went home through them (EPMOE_CUDA_COMBINE)
  int symmetric_window_tokens = 0;      // tokens per source rank its window holds (grows when the counts need it)
  std::size_t device_bytes = 0;         // device memory held by the layer (weights + workspaces)
  std::size_t weight_bytes = 0;         // of which weights
};
CudaLayerStats cuda_layer_stats(const LayerRunner& runner);

// With EPMOE_CUDA_TRACE=1 in the environment: for every forward() so far, the times (ns) at which this rank reached
// each point of the forward: first `gpu_points` GPU points (%globaltimer, when the stream got there), then host
// points (CLOCK_REALTIME); 0 where a forward did not reach a point. Empty when tracing is off. For finding where the
// ranks wait for each other; tracing adds a one-thread kernel per GPU point.
struct CudaTrace {
  std::vector<std::string> points;
  int gpu_points = 0;
  std::vector<std::vector<std::int64_t>> forwards;
};
CudaTrace cuda_layer_trace(LayerRunner& runner);

// Ceilings measured on this machine in the same run, for the benchmark (every rank must call it; collective).
struct CudaCeilings {
  // Dense cuBLAS bf16 GEMMs (fp32 accumulation) of the expert phase's total shape: [rows, Dp] x w13^T then
  // [rows, I] x w2^T with rows = tokens_per_rank * top_k, as if every pair went to one expert.
  double gemm_flops = 0;    // 2 * rows * (w13_rows * Dp + Dp * I)
  // The same GEMMs' median differed by up to 14% between the four GPUs of one 4 x H200 machine, and between runs of
  // one GPU (power and clocks): the fastest GPU's median is the ceiling that flatters the layer least.
  double gemm_seconds = 0;          // median over repeats, fastest rank (the highest rate: the ceiling)
  double gemm_seconds_slowest = 0;  // median over repeats, slowest rank (the spread between GPUs)
  double gemm_tflops() const { return gemm_seconds > 0 ? gemm_flops / gemm_seconds * 1e-12 : 0; }
  // Equal-split ncclAlltoAll of `alltoall_bytes` per rank (bytes / ranks to each peer, itself included).
  double alltoall_bytes = 0;
  double alltoall_seconds = 0;  // median over repeats, slowest rank (the collective is as slow as it)
  double alltoall_gbps() const { return alltoall_seconds > 0 ? alltoall_bytes / alltoall_seconds * 1e-9 : 0; }
};
CudaCeilings measure_cuda_ceilings(const ModelConfig& model, const ParallelConfig& parallel, int tokens_per_rank,
                                   const MpiComm& comm, std::size_t alltoall_bytes_per_rank,
                                   const CudaOptions& options, int repeats = 20);

}  // namespace epmoe
