#include "run_setup.hpp"

#include <cmath>
#include <iostream>
#include <sstream>

#include "epmoe/error.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/reference.hpp"
#include "epmoe/weights.hpp"

namespace epmoe::app {

void add_run_flags(ArgParser& parser, RunOptions& opt) {
  std::string presets;
  for (const auto& p : list_presets()) presets += (presets.empty() ? "" : ", ") + p.name;
  parser.add_string("--preset", &opt.preset, "model preset: " + presets, "NAME");
  parser.add_int("--tokens", &opt.tokens, "tokens per rank (alltoall) or on every rank (allreduce)", 0, 1 << 24);
  parser.add_int("--layers", &opt.layers, "MoE layers to run (0 = the model's; model-sized presets default to 2)", 0,
                 1000);
  parser.add_choice("--mode", &opt.mode, {"alltoall", "allreduce"},
                    "alltoall: each rank owns its tokens; allreduce: all ranks hold the same tokens");
  parser.add_choice("--placement", &opt.placement, {"linear", "round-robin"}, "placement of experts on ranks");
  parser.add_int("--pad-multiple", &opt.pad_multiple, "pad the expert width to a multiple of this (0 = no padding)",
                 0, 4096);
  parser.add_int("--seed", &opt.seed, "seed of synthetic weights and tokens", 0, (1L << 62));
  parser.add_choice("--backend", &opt.backend, {"auto", "cpu", "cuda"},
                    "auto = cuda when a GPU is visible and the CUDA backend is built, else cpu");
  parser.add_int("--max-tokens", &opt.max_tokens, "cuda: tokens per rank the device buffers are sized for (0 = --tokens)",
                 0, 1 << 24);
  parser.add_bool("--allow-shared-gpu", &opt.allow_shared_gpu, "cuda: allow several ranks on one GPU");
}

namespace {

bool cuda_built() {
#ifdef EPMOE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::unique_ptr<LayerRunner> make_layer(const RunSetup& s, const LayerWeights& shard, const MpiComm& comm) {
  if (s.backend == BackendKind::Cpu) return make_cpu_layer(s.model, s.parallel, comm, shard);
  EPMOE_THROW(ErrorKind::Usage, "--backend cuda: this build of epmoe has no CUDA backend (configure with "
                                "-DEPMOE_WITH_CUDA=ON on a machine with nvcc and NCCL)");
}

}  // namespace

namespace {
void build_run(RunSetup& s, RunOptions& opt, const MpiComm& comm);
}

RunSetup prepare_run(RunOptions& opt, const ArgParser& parser, const MpiComm& comm) {
  (void)parser;
  RunSetup s;
  // Checked and built on every rank; a failure anywhere (a bad value, a file one rank cannot read) ends every rank
  // with the same message instead of leaving some waiting in a collective.
  run_collectively(comm, [&] { build_run(s, opt, comm); });
  return s;
}

namespace {
void build_run(RunSetup& s, RunOptions& opt, const MpiComm& comm) {
  s.model = make_preset(opt.preset);
  s.source = "preset " + opt.preset;
  const bool mini = [&] {
    for (const auto& p : list_presets())
      if (p.name == opt.preset) return p.mini;
    return false;
  }();
  if (opt.layers > 0) s.model.num_layers = opt.layers;
  else if (!mini) s.model.num_layers = std::min(s.model.num_layers, 2);
  opt.mode_value = parse_mode(opt.mode, "--mode");
  s.parallel.mode = opt.mode_value;
  s.parallel.placement = parse_placement(opt.placement, "--placement");
  s.parallel.pad_multiple = opt.pad_multiple;
  s.parallel.validate(s.model, comm.size());
  if (opt.backend == "auto") s.backend = BackendKind::Cpu;
  else s.backend = parse_backend(opt.backend, "--backend");
  (void)cuda_built;
  EPMOE_REQUIRE(!(opt.verify && opt.no_verify), ErrorKind::Usage, "--verify and --no-verify exclude each other");
  // Mini presets verify by default; the float64 reference of a model-sized layer takes too long unless asked for.
  s.verify = mini ? !opt.no_verify : opt.verify;
  s.tolerance = opt.tolerance > 0 ? opt.tolerance : (s.backend == BackendKind::Cpu ? 1e-5 : 2e-2);
  s.seed = static_cast<std::uint64_t>(opt.seed);

  // Tokens: alltoall gives each rank its own slice of one global token stream; allreduce gives every rank the
  // same tokens.
  s.first_token = opt.mode_value == Mode::AllToAll ? static_cast<long>(comm.rank()) * opt.tokens : 0;
  s.tokens = generate_tokens(opt.tokens, s.model.hidden_size, s.seed, s.first_token);

  const ExpertPlacement placement(s.model.num_experts, comm.size(), s.parallel.placement);
  for (int l = 0; l < s.model.num_layers; ++l) {
    const LayerWeights shard = generate_layer_weights(s.model, s.seed, l, placement.experts_of(comm.rank()));
    s.layers.push_back(make_layer(s, shard, comm));
  }
}
}  // namespace

void print_run_header(const RunSetup& s, const MpiComm& comm) {
  const ExpertPlacement placement(s.model.num_experts, comm.size(), s.parallel.placement);
  std::cout << "# epmoe run: " << s.source << " on " << comm.size() << " rank(s), backend " << to_string(s.backend)
            << "\n# model: " << s.model.summary() << "\n# parallel: mode " << to_string(s.parallel.mode)
            << ", placement " << to_string(s.parallel.placement) << ", pad_multiple " << s.parallel.pad_multiple
            << "\n# experts per rank:";
  for (int r = 0; r < comm.size(); ++r) std::cout << " " << placement.experts_of(r).size();
  std::cout << "\n# tokens per rank: " << s.tokens.rows()
            << (s.parallel.mode == Mode::AllReduce ? " (the same tokens on every rank)" : "")
            << "\n# unpad plan: " << s.layers.front()->plan().one_line() << "\n";
}

VerifyOutcome verify_layer_collectively(const RunSetup& s, int layer, const Matrix<float>& input,
                                        const Matrix<float>& output, const Matrix<int>& ids, const MpiComm& comm) {
  const bool gather = s.parallel.mode == Mode::AllToAll;
  const Matrix<float> x = gather ? comm.gather_rows(input, 0) : input;
  const Matrix<float> y = gather ? comm.gather_rows(output, 0) : output;
  const Matrix<int> k = gather ? comm.gather_rows(ids, 0) : ids;
  VerifyOutcome v;
  std::string verdict;
  if (comm.rank() == 0) {
    const LayerWeights full = generate_layer_weights(s.model, s.seed, layer, all_experts(s.model));
    const VerifyReport r = verify_layer(s.model, full, x, y, k, s.backend == BackendKind::Cpu ? 1e-5 : 1e-2);
    v.passed = r.passed(s.tolerance);
    verdict = std::string(v.passed ? "1" : "0") + r.describe();
  }
  comm.broadcast(verdict, 0);
  v.passed = verdict[0] == '1';
  v.description = verdict.substr(1);
  return v;
}

}  // namespace epmoe::app
