#include "epmoe/layer.hpp"

#include "epmoe/error.hpp"
#include "epmoe/placement.hpp"

namespace epmoe {

void LayerRunner::force_expert_ids(const Matrix<int>* ids) {
  if (!ids) return;
  EPMOE_THROW(ErrorKind::Usage, "this backend does not support a forced expert choice (--routing other than "
                                "'real'); use --routing real or --backend cpu");
}

std::vector<double> measure_expert_loads(LayerRunner& probe, const Matrix<float>& tokens, const MpiComm& comm,
                                         int num_experts) {
  probe.forward(tokens);
  const std::vector<double> mine = expert_loads(probe.last_routing().ids, num_experts);
  std::vector<float> loads(mine.begin(), mine.end());  // pair counts: exact in float up to 2^24 per expert
  comm.allreduce_sum(loads);
  return std::vector<double>(loads.begin(), loads.end());
}

}  // namespace epmoe
