// Small statistics of timing samples, shared by the ceilings, the benchmarks and the diagnostics.
#pragma once

#include <algorithm>
#include <vector>

namespace epmoe {

// The median of v (the upper one of an even count); 0 for no samples.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace epmoe
