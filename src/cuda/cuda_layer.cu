// LayerRunner for the CUDA backend: the CUDA stages driven by forward_layer(), exactly as cpu_layer.cpp drives the
// CPU stages. Copies in and out happen outside the timed phases; phase times come from CUDA events.
#include <cstdio>
#include <sstream>

#include "../core/forward_layer.hpp"
#include "cuda_stages.cuh"
#include "epmoe/cuda_layer.hpp"
#include "epmoe/error.hpp"
#include "epmoe/placement.hpp"

namespace epmoe {
namespace {

using cuda::CudaStages;
using cuda::DeviceWeights;

class CudaLayer final : public LayerRunner {
 public:
  // `make_weights` runs once the device is selected.
  template <class MakeWeights>
  CudaLayer(const ModelConfig& model, const ParallelConfig& parallel, const MpiComm& comm, const CudaOptions& options,
            MakeWeights make_weights)
      : model_(model),
        plan_(make_unpad_plan(model, parallel, comm.size())),
        comm_(comm),
        device_(cuda::select_device(comm, options.allow_shared_gpu)),
        nccl_(comm) {
    stages_ = std::make_unique<CudaStages>(model_, plan_, parallel, comm, nccl_, make_weights(plan_),
                                           options.max_tokens, times_);
    start_ = std::make_unique<cuda::Event>();
    stop_ = std::make_unique<cuda::Event>();
  }

  Matrix<float> forward(const Matrix<float>& x) override {
    EPMOE_REQUIRE(x.cols() == model_.hidden_size, ErrorKind::Input, "layer input has width ", x.cols(),
                  ", the model's hidden_size is ", model_.hidden_size);
    // The copy in is not part of the layer: it has finished here (stage_input synchronizes), and on every rank
    // before the timed region starts, so that one rank's slower host copy does not show up as the others waiting
    // in the dispatch.
    input_ = stages_->stage_input(x);
    staged_ = true;
    comm_.barrier();
    const CudaStages::Rows out = timed_forward();
    Matrix<float> result;
    stages_->fetch_output(out, result, last_routing_);
    stages_->trace().end_forward();
    times_.total += cuda::elapsed_seconds(*start_, *stop_);
    return result;
  }

  // See cuda_layer_forward_resident().
  void forward_resident(double gpu_lead_seconds) {
    EPMOE_REQUIRE(staged_, ErrorKind::Usage,
                  "cuda_layer_forward_resident() needs a forward() first: it runs the layer again on the input that "
                  "forward() put on the device");
    EPMOE_REQUIRE(gpu_lead_seconds >= 0 && gpu_lead_seconds <= 1, ErrorKind::Usage,
                  "the GPU lead of a resident forward must be in [0, 1] s, got ", gpu_lead_seconds);
    cuda::hold_stream(static_cast<std::uint64_t>(gpu_lead_seconds * 1e9), stages_->stream());
    timed_forward();
    stages_->finish_forward();
    stages_->trace().end_forward();
    times_.total += cuda::elapsed_seconds(*start_, *stop_);
  }
  const Routing& last_routing() const override { return last_routing_; }
  const UnpadPlan& plan() const override { return plan_; }
  PhaseTimes& times() override { return times_; }
  void force_expert_ids(const Matrix<int>* ids) override { stages_->force_expert_ids(ids); }

  CudaTrace trace() {
    CudaTrace t;
    cuda::ForwardTrace& f = stages_->trace();
    if (!f.enabled()) return t;
    for (const char* n : cuda::ForwardTrace::kGpuNames) t.points.emplace_back(n);
    for (const char* n : cuda::ForwardTrace::kHostNames) t.points.emplace_back(n);
    t.gpu_points = cuda::ForwardTrace::kGpuPoints;
    t.forwards = f.forwards();
    return t;
  }

  CudaLayerStats stats() const {
    CudaLayerStats s;
    s.dispatch_bytes_sent = stages_->last_dispatch_bytes;
    s.combine_bytes_sent = stages_->last_combine_bytes;
    s.rows_received = stages_->last_rows_received;
    s.pairs_processed = stages_->last_pairs;
    s.gemm_rows = stages_->expert_gemm().rows();
    s.gemm_buckets = stages_->expert_gemm().buckets();
    s.symmetric_dispatch = stages_->symmetric_dispatch();
    s.symmetric_combine = stages_->symmetric_combine();
    s.symmetric_window_tokens = stages_->symmetric_window_tokens();
    s.device_bytes = stages_->device_bytes();
    s.weight_bytes = stages_->weight_bytes();
    return s;
  }

 private:
  ModelConfig model_;
  UnpadPlan plan_;
  MpiComm comm_;
  PhaseTimes times_;
  int device_;  // selected before anything touches the GPU
  cuda::NcclComm nccl_;
  std::unique_ptr<CudaStages> stages_;
  std::unique_ptr<cuda::Event> start_, stop_;
  Routing last_routing_;
  CudaStages::Rows input_{};  // on the device: what the last forward() staged
  bool staged_ = false;

  // The layer between the start and stop events, on the staged input; the output stays on the device.
  CudaStages::Rows timed_forward() {
    stages_->trace().begin_forward();
    stages_->trace().host(cuda::ForwardTrace::kHostStart);
    start_->record(stages_->stream());
    stages_->trace().gpu(cuda::ForwardTrace::kStart, stages_->stream());
    const CudaStages::Rows out = forward_layer(*stages_, plan_, input_);
    stop_->record(stages_->stream());
    EPMOE_ASSERT(out.cols == model_.hidden_size && out.rows == input_.rows, "layer output shape");
    return out;
  }
};

}  // namespace

std::vector<std::string> cuda_expert_gemm_choices() {
#ifdef EPMOE_HAVE_CUTLASS
  return {"grouped", "streams", "cutlass"};
#else
  return {"grouped", "streams"};
#endif
}

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return false;
  }
  return count > 0;
}

std::string cuda_device_description() {
  int device = 0;
  EPMOE_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  EPMOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  char bus[32];
  std::snprintf(bus, sizeof bus, "%04x:%02x:%02x", prop.pciDomainID, prop.pciBusID, prop.pciDeviceID);
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  std::ostringstream out;
  out << prop.name << " (device " << device << ", PCI " << bus << ", " << prop.totalGlobalMem / (1024 * 1024)
      << " MiB, " << prop.multiProcessorCount << " SMs, CUDA runtime " << runtime / 1000 << "." << runtime % 1000 / 10
      << ", driver " << driver / 1000 << "." << driver % 1000 / 10 << ", NCCL " << NCCL_MAJOR << "." << NCCL_MINOR
      << "." << NCCL_PATCH << ")";
  return out.str();
}

std::unique_ptr<LayerRunner> make_cuda_layer(const ModelConfig& model, const ParallelConfig& parallel,
                                             const MpiComm& comm, const LayerWeights& shard,
                                             const CudaOptions& options) {
  parallel.validate(model, comm.size());
  const ExpertPlacement placement(model.num_experts, comm.size(), parallel);
  EPMOE_REQUIRE(shard.expert_ids == placement.experts_of(comm.rank()), ErrorKind::Input,
                "the weight shard of rank ", comm.rank(), " does not hold the experts its placement gives it");
  shard.check_shapes(model, "CUDA layer weights");
  return std::make_unique<CudaLayer>(model, parallel, comm, options, [&](const UnpadPlan& plan) {
    return cuda::upload_weights(model, plan, comm.rank(), comm.size(), shard);
  });
}

std::unique_ptr<LayerRunner> make_cuda_layer_synthetic(const ModelConfig& model, const ParallelConfig& parallel,
                                                       const MpiComm& comm, std::uint64_t seed, int layer,
                                                       const CudaOptions& options) {
  parallel.validate(model, comm.size());
  const ExpertPlacement placement(model.num_experts, comm.size(), parallel);
  const std::vector<int> experts = placement.experts_of(comm.rank());
  return std::make_unique<CudaLayer>(model, parallel, comm, options, [&](const UnpadPlan& plan) {
    cuda::Stream stream;
    return cuda::generate_weights(model, plan, comm.rank(), comm.size(), experts, seed, layer, stream.get());
  });
}

void cuda_layer_forward_resident(LayerRunner& runner, double gpu_lead_seconds) {
  auto* layer = dynamic_cast<CudaLayer*>(&runner);
  EPMOE_REQUIRE(layer != nullptr, ErrorKind::Usage,
                "cuda_layer_forward_resident() needs a layer made by make_cuda_layer*");
  layer->forward_resident(gpu_lead_seconds);
}

CudaTrace cuda_layer_trace(LayerRunner& runner) {
  auto* layer = dynamic_cast<CudaLayer*>(&runner);
  EPMOE_REQUIRE(layer != nullptr, ErrorKind::Usage, "cuda_layer_trace() needs a layer made by make_cuda_layer*");
  return layer->trace();
}

CudaLayerStats cuda_layer_stats(const LayerRunner& runner) {
  const auto* layer = dynamic_cast<const CudaLayer*>(&runner);
  EPMOE_REQUIRE(layer != nullptr, ErrorKind::Usage, "cuda_layer_stats() needs a layer made by make_cuda_layer*");
  return layer->stats();
}

}  // namespace epmoe
