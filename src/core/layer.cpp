#include "epmoe/layer.hpp"

#include "epmoe/error.hpp"
#include "epmoe/placement.hpp"

namespace epmoe {

void LayerRunner::force_expert_ids(const Matrix<int>* ids) {
  if (!ids) return;
  EPMOE_THROW(ErrorKind::Usage, "this backend does not support a forced expert choice (--routing other than "
                                "'real'); use --routing real or --backend cpu");
}

std::vector<double> sum_loads_over_ranks(const std::vector<double>& loads, const MpiComm& comm) {
  std::vector<float> sum(loads.begin(), loads.end());
  comm.allreduce_sum(sum);
  return std::vector<double>(sum.begin(), sum.end());
}

std::vector<double> measure_expert_loads(LayerRunner& probe, const Matrix<float>& tokens, const MpiComm& comm,
                                         int num_experts) {
  probe.forward(tokens);
  return sum_loads_over_ranks(expert_loads(probe.last_routing().ids, num_experts), comm);
}

}  // namespace epmoe
