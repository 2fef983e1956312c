// LayerRunner for the CPU backend: the CPU stages driven by forward_layer().
#include <mpi.h>

#include "../core/forward_layer.hpp"
#include "cpu_stages.hpp"
#include "epmoe/error.hpp"

namespace epmoe {
namespace {

class CpuLayer final : public LayerRunner {
 public:
  CpuLayer(const ModelConfig& model, const ParallelConfig& parallel, const MpiComm& comm, const LayerWeights& shard)
      : model_(model),
        plan_(make_unpad_plan(model, parallel, comm.size())),
        stages_(model_, plan_, parallel, comm, shard, times_) {}

  Matrix<float> forward(const Matrix<float>& x) override {
    EPMOE_REQUIRE(x.cols() == model_.hidden_size, ErrorKind::Input, "layer input has width ", x.cols(),
                  ", the model's hidden_size is ", model_.hidden_size);
    const double start = MPI_Wtime();
    Matrix<float> out = forward_layer(stages_, plan_, x);
    times_.total += MPI_Wtime() - start;
    EPMOE_ASSERT(out.cols() == model_.hidden_size && out.rows() == x.rows(), "layer output shape");
    return out;
  }
  const Routing& last_routing() const override { return stages_.last_routing(); }
  const UnpadPlan& plan() const override { return plan_; }
  PhaseTimes& times() override { return times_; }
  void force_expert_ids(const Matrix<int>* ids) override { stages_.force_expert_ids(ids); }

 private:
  ModelConfig model_;
  UnpadPlan plan_;
  PhaseTimes times_;
  cpu::CpuStages stages_;
};

}  // namespace

std::unique_ptr<LayerRunner> make_cpu_layer(const ModelConfig& model, const ParallelConfig& parallel,
                                            const MpiComm& comm, const LayerWeights& shard) {
  parallel.validate(model, comm.size());
  return std::make_unique<CpuLayer>(model, parallel, comm, shard);
}

}  // namespace epmoe
