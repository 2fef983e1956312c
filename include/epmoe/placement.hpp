// Which rank owns which routed expert.
//   linear:      contiguous blocks; when E % R != 0 the first E % R ranks get one expert more.
//   round-robin: expert e lives on rank e % R.
// Local expert indices on a rank follow ascending global id.
#pragma once

#include <vector>

#include "epmoe/config.hpp"

namespace epmoe {

class ExpertPlacement {
 public:
  // Throws ErrorKind::Config when num_ranks > num_experts (a rank would own nothing).
  ExpertPlacement(int num_experts, int num_ranks, Placement kind);
  int num_experts() const { return num_experts_; }
  int num_ranks() const { return num_ranks_; }
  Placement kind() const { return kind_; }
  int owner(int expert) const { return owner_[expert]; }
  int local_index(int expert) const { return local_index_[expert]; }
  const std::vector<int>& experts_of(int rank) const { return experts_of_[rank]; }
  int max_experts_per_rank() const;

 private:
  int num_experts_;
  int num_ranks_;
  Placement kind_;
  std::vector<int> owner_;
  std::vector<int> local_index_;
  std::vector<std::vector<int>> experts_of_;
};

}  // namespace epmoe
