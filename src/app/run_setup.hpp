// What `epmoe run` and `epmoe bench` share: the flags that choose model, parallelism and backend, building the
// layers on every rank, the header they print, and verification against the float64 reference.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/layer.hpp"
#include "epmoe/placement.hpp"

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
  // run only
  int iters = 1;
  int warmup = 0;
  bool verify = false;
  bool no_verify = false;
  double tolerance = 0.0;
  // derived
  Mode mode_value = Mode::AllToAll;
};

void add_run_flags(ArgParser& parser, RunOptions& opt);

struct RunSetup {
  ModelConfig model;
  ParallelConfig parallel;
  BackendKind backend = BackendKind::Cpu;
  std::string source;  // "preset NAME" or the checkpoint path
  std::uint64_t seed = 0;
  std::vector<std::unique_ptr<LayerRunner>> layers;
  Matrix<float> tokens;  // this rank's input tokens
  long first_token = 0;  // global index of tokens.row(0)
  bool verify = false;
  double tolerance = 0;
};

// Validates the options on every rank (same result everywhere), builds the layers and the input tokens.
RunSetup prepare_run(RunOptions& opt, const ArgParser& parser, const MpiComm& comm);
void print_run_header(const RunSetup& setup, const MpiComm& comm);

struct VerifyOutcome {
  bool passed = false;
  std::string description;
};
// Gathers the layer's inputs, outputs and routing on rank 0, checks them against the reference, and tells every
// rank the verdict.
VerifyOutcome verify_layer_collectively(const RunSetup& setup, int layer, const Matrix<float>& input,
                                        const Matrix<float>& output, const Matrix<int>& ids, const MpiComm& comm);

}  // namespace epmoe::app
