#include "epmoe/placement.hpp"

#include <algorithm>
#include <numeric>

#include "epmoe/error.hpp"

namespace epmoe {
namespace {

// Experts per rank of the linear placement (the first E % R ranks hold one more): every placement keeps these.
std::vector<int> rank_capacity(int num_experts, int num_ranks) {
  std::vector<int> cap(num_ranks, num_experts / num_ranks);
  for (int r = 0; r < num_experts % num_ranks; ++r) ++cap[r];
  return cap;
}

void check_ranks(int num_experts, int num_ranks) {
  EPMOE_REQUIRE(num_ranks >= 1, ErrorKind::Config, "expert placement needs at least one rank");
  EPMOE_REQUIRE(num_ranks <= num_experts, ErrorKind::Config, "more ranks (", num_ranks, ") than experts (",
                num_experts, "): every rank must own at least one expert; run with at most ", num_experts,
                " ranks");
}

}  // namespace

ExpertPlacement::ExpertPlacement(int num_experts, int num_ranks, Placement kind)
    : num_experts_(num_experts), num_ranks_(num_ranks), kind_(kind) {
  check_ranks(num_experts, num_ranks);
  EPMOE_REQUIRE(kind != Placement::Balanced, ErrorKind::Usage,
                "placement balanced needs the experts' owner map (ParallelConfig::expert_owner)");
  const int base = num_experts / num_ranks;
  const int extra = num_experts % num_ranks;
  std::vector<int> owner(num_experts);
  for (int e = 0; e < num_experts; ++e) {
    if (kind == Placement::RoundRobin) {
      owner[e] = e % num_ranks;
    } else {
      // The first `extra` ranks hold base + 1 experts.
      const int big = extra * (base + 1);
      owner[e] = e < big ? e / (base + 1) : extra + (e - big) / base;
    }
  }
  assign(owner);
}

ExpertPlacement::ExpertPlacement(int num_experts, int num_ranks, const ParallelConfig& parallel)
    : ExpertPlacement(num_experts, num_ranks,
                      parallel.placement == Placement::Balanced ? Placement::Linear : parallel.placement) {
  if (parallel.placement != Placement::Balanced) return;
  const std::vector<int>& owner = parallel.expert_owner;
  EPMOE_REQUIRE(static_cast<int>(owner.size()) == num_experts, ErrorKind::Usage,
                "placement balanced: the owner map has ", owner.size(), " entries for ", num_experts, " experts");
  std::vector<int> count(num_ranks, 0);
  for (int e = 0; e < num_experts; ++e) {
    EPMOE_REQUIRE(owner[e] >= 0 && owner[e] < num_ranks, ErrorKind::Usage, "placement balanced: expert ", e,
                  " has owner ", owner[e], ", outside the ", num_ranks, " ranks");
    ++count[owner[e]];
  }
  EPMOE_REQUIRE(count == rank_capacity(num_experts, num_ranks), ErrorKind::Usage,
                "placement balanced: the owner map does not give every rank as many experts as linear placement (",
                num_experts / num_ranks, " or one more)");
  kind_ = Placement::Balanced;
  assign(owner);
}

void ExpertPlacement::assign(const std::vector<int>& owner) {
  owner_ = owner;
  local_index_.assign(num_experts_, 0);
  experts_of_.assign(num_ranks_, {});
  for (int e = 0; e < num_experts_; ++e) {  // ascending ids: local indices follow global order
    local_index_[e] = static_cast<int>(experts_of_[owner[e]].size());
    experts_of_[owner[e]].push_back(e);
  }
}

int ExpertPlacement::max_experts_per_rank() const {
  size_t m = 0;
  for (const auto& v : experts_of_) m = std::max(m, v.size());
  return static_cast<int>(m);
}

std::vector<double> expert_loads(const Matrix<int>& ids, int num_experts) {
  std::vector<double> loads(num_experts, 0.0);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const int e = ids.data()[i];
    if (e >= 0 && e < num_experts) loads[e] += 1.0;
  }
  return loads;
}

namespace {

// Swaps of one expert of the busiest rank with a lighter one elsewhere, the swap that lowers the busiest rank's
// load the most each time, while the busiest load goes down (the counts per rank never change). Returns the busiest
// rank's load then.
double improve_by_swaps(const std::vector<double>& loads, int num_ranks, std::vector<int>& owner) {
  const int E = static_cast<int>(loads.size());
  std::vector<double> load(num_ranks, 0.0);
  for (int e = 0; e < E; ++e) load[owner[e]] += loads[e];
  for (int step = 0;; ++step) {
    const int top = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
    if (step == 4 * E) return load[top];
    double best = load[top];
    int best_a = -1, best_b = -1;
    for (int a = 0; a < E; ++a) {
      if (owner[a] != top) continue;
      for (int b = 0; b < E; ++b) {
        const int r = owner[b];
        if (r == top || loads[b] >= loads[a]) continue;
        const double d = loads[a] - loads[b];
        const double worse = std::max(load[top] - d, load[r] + d);
        if (worse < best) {
          best = worse;
          best_a = a;
          best_b = b;
        }
      }
    }
    if (best_a < 0) return load[top];  // no swap lowers the busiest rank (another may share its load: none can)
    const int r = owner[best_b];
    const double d = loads[best_a] - loads[best_b];
    load[top] -= d;
    load[r] += d;
    owner[best_b] = top;
    owner[best_a] = r;
  }
}

}  // namespace

std::vector<int> balanced_expert_owner(const std::vector<double>& loads, int num_ranks) {
  const int E = static_cast<int>(loads.size());
  check_ranks(E, num_ranks);
  // Greedy first (heaviest first, each to the least loaded rank with room), then swaps; the same swaps from the
  // linear placement too, and the better of the two (so never worse than linear).
  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return loads[a] > loads[b]; });
  std::vector<int> room = rank_capacity(E, num_ranks), greedy(E, -1);
  std::vector<double> load(num_ranks, 0.0);
  for (int e : order) {
    int best = -1;
    for (int r = 0; r < num_ranks; ++r)
      if (room[r] > 0 && (best < 0 || load[r] < load[best])) best = r;
    greedy[e] = best;
    load[best] += loads[e];
    --room[best];
  }
  const double greedy_busiest = improve_by_swaps(loads, num_ranks, greedy);
  const ExpertPlacement linear(E, num_ranks, Placement::Linear);
  std::vector<int> from_linear(E);
  for (int e = 0; e < E; ++e) from_linear[e] = linear.owner(e);
  return improve_by_swaps(loads, num_ranks, from_linear) < greedy_busiest ? from_linear : greedy;
}

std::vector<double> rank_loads(const std::vector<double>& loads, const ExpertPlacement& placement) {
  std::vector<double> out(placement.num_ranks(), 0.0);
  for (int e = 0; e < placement.num_experts(); ++e) out[placement.owner(e)] += loads[e];
  return out;
}

}  // namespace epmoe
