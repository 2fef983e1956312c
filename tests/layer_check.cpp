#include "layer_check.hpp"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "epmoe/placement.hpp"

namespace epmoe::testing {

std::string LayerCheck::describe() const {
  std::ostringstream out;
  out << "rel_l2_error=" << rel_l2_error << " tokens=" << tokens << " topk_mismatched=" << mismatched_tokens
      << " near_ties=" << near_tie_tokens << (nonfinite ? " NONFINITE" : "") << (ranks_disagree ? " RANKS-DISAGREE" : "") << " plan: " << plan;
  return out.str();
}

LayerFactory cpu_factory() {
  return [](const ModelConfig& m, const ParallelConfig& p, const MpiComm& c, const LayerWeights& shard) {
    return make_cpu_layer(m, p, c, shard);
  };
}

LayerCheck check_layer(const ModelConfig& model, const ParallelConfig& parallel, const MpiComm& comm, int tokens_here,
                       std::uint64_t seed, const LayerFactory& factory, const WeightTweak& tweak,
                       double tie_tolerance) {
  LayerWeights full = generate_layer_weights(model, seed, 0, all_experts(model));
  if (tweak) tweak(full);
  const ExpertPlacement placement(model.num_experts, comm.size(), parallel);
  auto layer = factory(model, parallel, comm, slice_experts(model, full, placement.experts_of(comm.rank())));

  // Fresh tokens: alltoall gives each rank its own rows of one global stream; allreduce the same rows everywhere.
  const bool alltoall = parallel.mode == Mode::AllToAll;
  int count = tokens_here;
  if (!alltoall) MPI_Bcast(&count, 1, MPI_INT, 0, comm.handle());
  long first = 0;
  if (alltoall) {
    long mine = count;
    MPI_Exscan(&mine, &first, 1, MPI_LONG, MPI_SUM, comm.handle());
    if (comm.rank() == 0) first = 0;
  }
  const Matrix<float> x = generate_tokens(count, model.hidden_size, seed ^ 0x5eedull, first);
  const Matrix<float> y = layer->forward(x);
  const Matrix<int> ids = layer->last_routing().ids;

  const Matrix<float> all_x = alltoall ? comm.gather_rows(x, 0) : x;
  const Matrix<float> all_y = alltoall ? comm.gather_rows(y, 0) : y;
  const Matrix<int> all_ids = alltoall ? comm.gather_rows(ids, 0) : ids;
  double numbers[5] = {0, 0, 0, 0, 0};
  if (comm.rank() == 0) {
    const VerifyReport r = verify_layer(model, full, all_x, all_y, all_ids, tie_tolerance);
    numbers[0] = r.rel_l2_error;
    numbers[1] = static_cast<double>(r.tokens);
    numbers[2] = static_cast<double>(r.topk_mismatched_tokens);
    numbers[3] = static_cast<double>(r.near_tie_tokens);
    numbers[4] = r.nonfinite ? 1 : 0;
  }
  MPI_Bcast(numbers, 5, MPI_DOUBLE, 0, comm.handle());
  LayerCheck check;
  // In allreduce mode every rank must hold the same output: compare against rank 0's.
  if (!alltoall) {
    Matrix<float> y0 = y;
    MPI_Bcast(y0.data(), static_cast<int>(y0.size()), MPI_FLOAT, 0, comm.handle());
    double diff = 0;
    for (size_t i = 0; i < y0.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(y0.data()[i] - y.data()[i])));
    check.ranks_disagree = comm.max(diff) > 0;
  }
  check.rel_l2_error = numbers[0];
  check.tokens = static_cast<long>(numbers[1]);
  check.mismatched_tokens = static_cast<long>(numbers[2]);
  check.near_tie_tokens = static_cast<long>(numbers[3]);
  check.nonfinite = numbers[4] != 0;
  check.plan = layer->plan().one_line();
  return check;
}

}  // namespace epmoe::testing
