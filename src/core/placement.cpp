#include "epmoe/placement.hpp"

#include <algorithm>

#include "epmoe/error.hpp"

namespace epmoe {

ExpertPlacement::ExpertPlacement(int num_experts, int num_ranks, Placement kind)
    : num_experts_(num_experts), num_ranks_(num_ranks), kind_(kind) {
  EPMOE_REQUIRE(num_ranks >= 1, ErrorKind::Config, "expert placement needs at least one rank");
  EPMOE_REQUIRE(num_ranks <= num_experts, ErrorKind::Config, "more ranks (", num_ranks, ") than experts (",
                num_experts, "): every rank must own at least one expert; run with at most ", num_experts,
                " ranks");
  owner_.resize(num_experts);
  local_index_.resize(num_experts);
  experts_of_.assign(num_ranks, {});
  const int base = num_experts / num_ranks;
  const int extra = num_experts % num_ranks;
  for (int e = 0; e < num_experts; ++e) {
    int rank;
    if (kind == Placement::RoundRobin) {
      rank = e % num_ranks;
    } else {
      // The first `extra` ranks hold base + 1 experts.
      const int big = extra * (base + 1);
      rank = e < big ? e / (base + 1) : extra + (e - big) / base;
    }
    owner_[e] = rank;
    local_index_[e] = static_cast<int>(experts_of_[rank].size());
    experts_of_[rank].push_back(e);
  }
}

int ExpertPlacement::max_experts_per_rank() const {
  size_t m = 0;
  for (const auto& v : experts_of_) m = std::max(m, v.size());
  return static_cast<int>(m);
}

}  // namespace epmoe
