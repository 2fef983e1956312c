#include "epmoe/error.hpp"
#include "epmoe/layer.hpp"

namespace epmoe {

void LayerRunner::force_expert_ids(const Matrix<int>* ids) {
  if (!ids) return;
  EPMOE_THROW(ErrorKind::Usage, "this backend does not support a forced expert choice (--routing other than "
                                "'real'); use --routing real or --backend cpu");
}

}  // namespace epmoe
