// Loading a whole checkpoint shard for one rank and reporting every rank's I/O.
#include <cstdio>
#include <sstream>

#include "epmoe/checkpoint.hpp"

namespace epmoe {

ShardLoad load_checkpoint_shard(const std::string& path, const ModelConfig& config, const std::vector<int>& expert_ids,
                                const MpiComm& comm) {
  ShardLoad load;
  load.stats.os_bytes = 0;
  for (int l = 0; l < config.num_layers; ++l) {
    load.layers.push_back(read_layer_shard(path, config, l, expert_ids, comm, &load.stats));
  }
  return load;
}

std::string io_report(const IoStats& local, int local_experts, const MpiComm& comm) {
  // One row of doubles per rank, gathered on rank 0.
  Matrix<double> row(1, 4);
  row.at(0, 0) = local_experts;
  row.at(0, 1) = static_cast<double>(local.bytes);
  row.at(0, 2) = static_cast<double>(local.os_bytes);
  row.at(0, 3) = local.seconds;
  const Matrix<double> all = comm.gather_rows(row, 0);
  if (comm.rank() != 0) return "";
  std::ostringstream out;
  char line[256];
  out << "#  rank  experts      bytes_read        os_bytes   seconds   rate\n";
  out << "#     -        -               B               B         s   GB/s\n";
  double total_bytes = 0, max_seconds = 0;
  for (int r = 0; r < all.rows(); ++r) {
    const double seconds = all.at(r, 3);
    std::snprintf(line, sizeof(line), "%7d %8.0f %15.0f %15.0f %9.3f %6.3f\n", r, all.at(r, 0), all.at(r, 1),
                  all.at(r, 2), seconds, seconds > 0 ? all.at(r, 1) / seconds / 1e9 : 0.0);
    out << line;
    total_bytes += all.at(r, 1);
    max_seconds = seconds > max_seconds ? seconds : max_seconds;
  }
  std::snprintf(line, sizeof(line), "# all ranks: %.0f B in %.3f s (slowest rank) = %.3f GB/s aggregate\n",
                total_bytes, max_seconds, max_seconds > 0 ? total_bytes / max_seconds / 1e9 : 0.0);
  out << line;
  return out.str();
}

}  // namespace epmoe
