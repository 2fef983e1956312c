// What `epmoe run` and `epmoe bench` share: the flags that choose model, parallelism and backend, building the
// layers on every rank, the header they print, and verification against the float64 reference.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/layer.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/routing.hpp"

namespace epmoe::app {

struct RunOptions {
  std::string preset = "deepseek-mini";
  int tokens = 256;  // per rank
  int layers = 0;    // 0 = the preset's or checkpoint's num_layers (capped at 2 for model-sized presets)
  std::string mode = "alltoall";
  std::string placement = "linear";
  int pad_multiple = 0;
  long seed = 1234;
  std::string backend = "auto";
  int max_tokens = 0;  // cuda: buffer size; 0 = --tokens
  bool allow_shared_gpu = false;
  std::string checkpoint;  // weights from this HDF5 file instead of a preset
  // run only
  std::string input;   // tokens from this HDF5 file (/hidden_states)
  std::string output;  // /output, /topk_ids, /topk_weights to this HDF5 file
  std::string save_expert_loads;  // each layer's pairs per expert in the last pass, to this HDF5 file
  std::string expert_loads;       // --placement balanced from this file's /expert_loads instead of the input
  int iters = 1;
  int warmup = 0;
  bool verify = false;
  bool no_verify = false;
  double tolerance = 0.0;
  // bench --routing: the expert choice the layers are run with, so also the one whose loads --placement balanced
  // measures (Real: the router's).
  RoutingSkew routing;
  // derived
  Mode mode_value = Mode::AllToAll;
};

// The flags of `run`; `bench` leaves out --tokens and --layers (it sweeps sizes on one layer).
void add_run_flags(ArgParser& parser, RunOptions& opt, bool bench = false);

// The seed of bench --routing's synthetic expert choice: s.seed ^ this.
constexpr std::uint64_t kRoutingSkewSalt = 0xB1A5ull;

struct RunSetup {
  ModelConfig model;
  ParallelConfig parallel;
  BackendKind backend = BackendKind::Cpu;
  std::string source;      // "preset NAME" or the checkpoint path
  std::string checkpoint;  // non-empty when the weights come from a checkpoint
  std::string io_report;   // rank 0: per-rank bytes read and rates (checkpoints)
  std::uint64_t seed = 0;
  std::vector<std::unique_ptr<LayerRunner>> layers;
  Matrix<float> tokens;  // this rank's input tokens
  long first_token = 0;  // global index of tokens.row(0)
  bool verify = false;
  double tolerance = 0;
  bool mini = false;  // a small preset: the reference can afford every expert
  // --placement balanced: each layer's loads (this rank's, or every rank's from loads_source, the --expert-loads
  // file; kept until the owner maps are made), then each layer's owner map (parallel.expert_owner holds layer 0's).
  std::vector<std::vector<double>> local_loads;
  std::string loads_source;
  std::vector<std::vector<int>> layer_owner;
  std::string balance_report;  // one line per layer: the busiest rank's pairs, balanced against linear
  // The parallel configuration of `layer` (its owner map under balanced placement).
  ParallelConfig layer_parallel(int layer) const {
    ParallelConfig p = parallel;
    if (p.placement == Placement::Balanced) p.expert_owner = layer_owner.at(layer);
    return p;
  }
};

// Validates the options on every rank (same result everywhere), builds the layers and the input tokens.
RunSetup prepare_run(RunOptions& opt, const MpiComm& comm);
void print_run_header(const RunSetup& setup, const MpiComm& comm);

struct VerifyOutcome {
  bool passed = false;
  std::string description;
};
// Gathers the layer's inputs, outputs and routing on rank 0, checks them against the reference, and tells every
// rank the verdict.
// `rows_per_rank` > 0 checks only the first rows of every rank (a token's output depends on that token alone), and
// rank 0 then builds only the experts those rows use. `routing_forced`: the ids were imposed (bench --routing),
// so the reference uses them instead of its own choice.
VerifyOutcome verify_layer_collectively(const RunSetup& setup, int layer, const Matrix<float>& input,
                                        const Matrix<float>& output, const Matrix<int>& ids, const MpiComm& comm,
                                        int rows_per_rank = 0, bool routing_forced = false);
// --save-expert-loads: each layer's pairs per expert of its last forward, summed over the ranks, written by rank 0.
// Collective.
void write_expert_loads(const RunSetup& setup, const std::string& path, const MpiComm& comm);
// Writes /output (the last layer's output, global token order), /topk_ids and /topk_weights (the first layer's
// routing) to `path` on rank 0. Collective.
void write_run_output(const RunSetup& setup, const std::string& path, const Matrix<float>& output,
                      const Routing& first_layer_routing, const MpiComm& comm);

// The first `rows` rows of m (all of them when rows <= 0 or rows >= m.rows()).
template <class T>
Matrix<T> first_rows(const Matrix<T>& m, int rows) {
  if (rows <= 0 || rows >= m.rows()) return m;
  Matrix<T> out(rows, m.cols());
  std::copy(m.data(), m.data() + out.size(), out.data());
  return out;
}

}  // namespace epmoe::app
