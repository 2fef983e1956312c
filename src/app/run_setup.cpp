#include "run_setup.hpp"

#include <unistd.h>

#include <cmath>
#include <iostream>
#include <numeric>
#include <sstream>

#include "epmoe/checkpoint.hpp"
#include "epmoe/error.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/reference.hpp"
#include "epmoe/weights.hpp"
#ifdef EPMOE_HAVE_CUDA
#include "epmoe/cuda_layer.hpp"
#endif

namespace epmoe::app {

void add_run_flags(ArgParser& parser, RunOptions& opt, bool bench) {
  std::string presets;
  for (const auto& p : list_presets()) presets += (presets.empty() ? "" : ", ") + p.name;
  parser.add_string("--preset", &opt.preset, "model preset: " + presets, "NAME");
  parser.add_string("--checkpoint", &opt.checkpoint,
                    "HDF5 checkpoint (docs/checkpoint-format.md): each rank reads only its experts", "FILE");
  if (!bench) {
    parser.add_string("--input", &opt.input,
                      "tokens from /hidden_states [T, D] of this HDF5 file (split across ranks in alltoall mode)",
                      "FILE");
    parser.add_string("--output", &opt.output, "write /output, /topk_ids and /topk_weights to this HDF5 file",
                      "FILE");
    parser.add_string("--save-expert-loads", &opt.save_expert_loads,
                      "write each layer's pairs per expert (last pass, all ranks) to /expert_loads of this HDF5 file",
                      "FILE");
    parser.add_string("--expert-loads", &opt.expert_loads,
                      "--placement balanced from /expert_loads [layers, experts] of this file (--save-expert-loads)",
                      "FILE");
    parser.add_int("--tokens", &opt.tokens, "tokens per rank (alltoall) or on every rank (allreduce)", 0, 1 << 24);
    parser.add_int("--layers", &opt.layers, "MoE layers to run (0 = the model's; model-sized presets default to 2)",
                   0, 1000);
  }
  parser.add_choice("--mode", &opt.mode, {"alltoall", "allreduce"},
                    "alltoall: each rank owns its tokens; allreduce: all ranks hold the same tokens");
  parser.add_choice("--placement", &opt.placement, {"linear", "round-robin", "balanced"},
                    "placement of experts on ranks (balanced: by measured loads, from --expert-loads or else the "
                    "input through each layer's router)");
  parser.add_int("--pad-multiple", &opt.pad_multiple, "pad the expert width to a multiple of this (0 = no padding)",
                 0, 4096);
  parser.add_int("--seed", &opt.seed, "seed of synthetic weights and tokens", 0, (1L << 62));
  parser.add_choice("--backend", &opt.backend, {"auto", "cpu", "cuda"},
                    "auto = cuda when a GPU is visible and the CUDA backend is built, else cpu");
  if (!bench)  // bench sizes the buffers from its own --max-tokens
    parser.add_int("--max-tokens", &opt.max_tokens,
                   "cuda: tokens per rank the device buffers are sized for (0 = --tokens)", 0, 1 << 24);
  parser.add_bool("--allow-shared-gpu", &opt.allow_shared_gpu, "cuda: allow several ranks on one GPU");
}

namespace {

// auto: the CUDA backend when it is built and a GPU is visible, else the CPU backend. An explicit --backend cuda
// that cannot run is an error, never a quiet fall-back to the CPU.
BackendKind choose_backend(const std::string& flag) {
#ifdef EPMOE_HAVE_CUDA
  const bool gpu = cuda_device_available();
#else
  const bool gpu = false;
#endif
  if (flag == "auto") return gpu ? BackendKind::Cuda : BackendKind::Cpu;
  const BackendKind kind = parse_backend(flag, "--backend");
#ifndef EPMOE_HAVE_CUDA
  EPMOE_REQUIRE(kind == BackendKind::Cpu, ErrorKind::Usage,
                "--backend cuda: this build of epmoe has no CUDA backend (configure with -DEPMOE_WITH_CUDA=ON on a "
                "machine with nvcc and NCCL), or use --backend cpu");
#endif
  EPMOE_REQUIRE(kind == BackendKind::Cpu || gpu, ErrorKind::Usage,
                "--backend cuda: no CUDA device is visible on this node; use --backend cpu");
  return kind;
}

// One layer on this rank: a checkpoint's shard, or synthetic weights (generated on the device for the CUDA
// backend, so model-sized presets need no host copy of the experts).
std::unique_ptr<LayerRunner> make_layer(const RunSetup& s, const RunOptions& opt, int layer, const LayerWeights* shard,
                                        const MpiComm& comm) {
  const ParallelConfig parallel = s.layer_parallel(layer);
  const ExpertPlacement placement(s.model.num_experts, comm.size(), parallel);
#ifdef EPMOE_HAVE_CUDA
  if (s.backend == BackendKind::Cuda) {
    CudaOptions options;
    options.max_tokens = std::max(1, opt.max_tokens > 0 ? opt.max_tokens : s.tokens.rows());
    options.allow_shared_gpu = opt.allow_shared_gpu;
    if (shard) return make_cuda_layer(s.model, parallel, comm, *shard, options);
    return make_cuda_layer_synthetic(s.model, parallel, comm, s.seed, layer, options);
  }
#else
  (void)opt;
#endif
  if (shard) return make_cpu_layer(s.model, parallel, comm, *shard);
  return make_cpu_layer(s.model, parallel, comm,
                        generate_layer_weights(s.model, s.seed, layer, placement.experts_of(comm.rank())));
}

// This rank's tokens: from --input (alltoall: a contiguous slice of the rows, the first ranks one more; allreduce:
// every row on every rank) or generated (alltoall: this rank's slice of one global stream).
void load_tokens(RunSetup& s, const RunOptions& opt, const MpiComm& comm) {
  const bool alltoall = opt.mode_value == Mode::AllToAll;
  if (opt.input.empty()) {
    s.first_token = alltoall ? static_cast<long>(comm.rank()) * opt.tokens : 0;
    s.tokens = generate_tokens(opt.tokens, s.model.hidden_size, s.seed, s.first_token);
    return;
  }
  const TokenFileInfo info = token_file_info(opt.input, "/hidden_states");
  EPMOE_REQUIRE(info.width == s.model.hidden_size, ErrorKind::Input, opt.input, ": dataset /hidden_states has width ",
                info.width, " but the model's hidden_size is ", s.model.hidden_size,
                "; give tokens made for this model");
  long first = 0, count = info.rows;
  if (alltoall) {
    const long base = info.rows / comm.size(), extra = info.rows % comm.size(), r = comm.rank();
    first = r * base + std::min(r, extra);
    count = base + (r < extra ? 1 : 0);
  }
  s.first_token = first;
  s.tokens = read_tokens(opt.input, "/hidden_states", first, count, s.model.hidden_size);
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    const float v = s.tokens.data()[i];
    EPMOE_REQUIRE(std::isfinite(v), ErrorKind::Input, opt.input, ": dataset /hidden_states holds a non-finite value (",
                  v, ") at row ", first + static_cast<long>(i) / s.tokens.cols(), ", column ",
                  i % s.tokens.cols(), "; the layer needs finite inputs");
  }
}

// Each rank reads only its own experts of each layer (plus the router, shared and latent tensors).
void read_shards(const RunSetup& s, const MpiComm& comm, std::vector<LayerWeights>& shards, IoStats& stats) {
  if (s.checkpoint.empty()) return;
  for (int l = 0; l < s.model.num_layers; ++l) {
    const ExpertPlacement placement(s.model.num_experts, comm.size(), s.layer_parallel(l));
    shards.push_back(read_layer_shard(s.checkpoint, s.model, l, placement.experts_of(comm.rank()), comm, &stats));
  }
}

// --placement balanced: each layer's owner map from the loads summed over the ranks (collective).
void place_by_loads(RunSetup& s, const MpiComm& comm) {
  const int E = s.model.num_experts, R = comm.size();
  std::ostringstream report;
  for (std::size_t l = 0; l < s.local_loads.size(); ++l) {
    const bool from_file = !s.loads_source.empty();
    const std::vector<double> loads = from_file ? s.local_loads[l] : sum_loads_over_ranks(s.local_loads[l], comm);
    s.layer_owner.push_back(balanced_expert_owner(loads, R));
    ParallelConfig p = s.parallel;
    p.expert_owner = s.layer_owner.back();
    const std::vector<double> mine = rank_loads(loads, ExpertPlacement(E, R, p));
    const std::vector<double> linear = rank_loads(loads, ExpertPlacement(E, R, Placement::Linear));
    report << "# balanced placement, layer " << l << ": the busiest rank gets "
           << *std::max_element(mine.begin(), mine.end()) << " pairs of "
           << (from_file ? "the loads in " + s.loads_source : std::string("this input"))
           << " (linear placement: " << *std::max_element(linear.begin(), linear.end()) << ", mean "
           << std::accumulate(loads.begin(), loads.end(), 0.0) / R << ")\n";
  }
  s.local_loads.clear();  // spent
  s.parallel.expert_owner = s.layer_owner.at(0);
  s.parallel.validate(s.model, R);
  s.balance_report = report.str();
}

// --placement balanced, before the experts are read: the loads of --expert-loads (every rank's already, from an
// earlier run), or this rank's pairs per expert of each layer: the bench's imposed choice, else the input through
// the layer's router (its tensors alone).
void read_local_loads(RunSetup& s, const RunOptions& opt, const MpiComm& comm, IoStats& stats) {
  const int E = s.model.num_experts, L = s.model.num_layers;
  if (!opt.expert_loads.empty()) {
    const std::string what = opt.expert_loads + ": dataset /expert_loads";
    const TokenFileInfo info = token_file_info(opt.expert_loads, "/expert_loads");
    EPMOE_REQUIRE(info.width == E, ErrorKind::Input, what, " has ", info.width, " columns, the model has ", E,
                  " experts; use loads saved for this model");
    EPMOE_REQUIRE(info.rows >= L, ErrorKind::Input, what, " holds ", info.rows, " layers, this run has ", L,
                  "; save loads of at least as many layers");
    const Matrix<float> loads = read_tokens(opt.expert_loads, "/expert_loads", 0, L, E);
    for (int l = 0; l < L; ++l) {
      for (int e = 0; e < E; ++e) {
        const float v = loads.at(l, e);
        EPMOE_REQUIRE(std::isfinite(v) && v >= 0, ErrorKind::Input, what, " holds ", v, " at layer ", l, ", expert ", e,
                      "; loads are pair counts (finite, >= 0)");
      }
      s.local_loads.emplace_back(loads.row(l), loads.row(l) + E);
    }
    s.loads_source = opt.expert_loads;
    return;
  }
  if (opt.routing.kind != RoutingSkew::Kind::Real) {  // the synthetic choice the bench imposes on every layer
    const Matrix<int> ids =
        synthetic_expert_ids(s.model, opt.routing, s.tokens.rows(), s.first_token, s.seed ^ kRoutingSkewSalt);
    s.local_loads.assign(L, expert_loads(ids, E));
    return;
  }
  for (int l = 0; l < L; ++l) {
    const LayerWeights router =
        s.checkpoint.empty() ? generate_layer_weights(s.model, s.seed, l, {}, LayerParts::RouterOnly)
                             : read_layer_shard(s.checkpoint, s.model, l, {}, comm, &stats, LayerParts::RouterOnly);
    s.local_loads.push_back(expert_loads(route_on_host(s.model, router, s.tokens).ids, E));
  }
}

// Everything a rank can get wrong on its own: flags, files, tokens, its shard of the weights.
void build_run(RunSetup& s, RunOptions& opt, const MpiComm& comm, std::vector<LayerWeights>& shards, IoStats& stats) {
  if (!opt.checkpoint.empty()) {
    s.checkpoint = opt.checkpoint;
    s.source = opt.checkpoint;
    s.model = read_checkpoint_config(opt.checkpoint);
    // Small enough for the float64 reference to hold every expert (as the mini presets are).
    const double expert_params = static_cast<double>(s.model.num_experts) * s.model.num_layers *
                                 (static_cast<double>(s.model.w13_rows()) + s.model.expert_width()) *
                                 s.model.moe_intermediate_size;
    s.mini = expert_params < 64e6;
    EPMOE_REQUIRE(opt.layers <= s.model.num_layers, ErrorKind::Usage, "--layers ", opt.layers, ": ", opt.checkpoint,
                  " holds ", s.model.num_layers, " layers");
  } else {
    s.model = make_preset(opt.preset);
    s.source = "preset " + opt.preset;
    s.mini = false;
    for (const auto& p : list_presets())
      if (p.name == opt.preset) s.mini = p.mini;
  }
  if (opt.layers > 0) s.model.num_layers = opt.layers;
  else if (!s.mini) s.model.num_layers = std::min(s.model.num_layers, 2);
  opt.mode_value = parse_mode(opt.mode, "--mode");
  s.parallel.mode = opt.mode_value;
  s.parallel.placement = parse_placement(opt.placement, "--placement");
  s.parallel.pad_multiple = opt.pad_multiple;
  const bool balanced = s.parallel.placement == Placement::Balanced;
  ParallelConfig check = s.parallel;  // balanced: the owner maps come after the loads (prepare_run)
  if (balanced) check.placement = Placement::Linear;
  check.validate(s.model, comm.size());
  EPMOE_REQUIRE(opt.expert_loads.empty() || balanced, ErrorKind::Usage,
                "--expert-loads places the experts by those loads: it needs --placement balanced");
  s.backend = choose_backend(opt.backend);
  EPMOE_REQUIRE(!(opt.verify && opt.no_verify), ErrorKind::Usage, "--verify and --no-verify exclude each other");
  // Small models verify by default; the float64 reference of a model-sized layer takes too long unless asked for.
  s.verify = s.mini ? !opt.no_verify : opt.verify;
  s.tolerance = opt.tolerance > 0 ? opt.tolerance : (s.backend == BackendKind::Cpu ? 1e-5 : 2e-2);
  s.seed = static_cast<std::uint64_t>(opt.seed);
  for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{"--output", opt.output},
                                   {"--save-expert-loads", opt.save_expert_loads}}) {
    if (path.empty() || comm.rank() != 0) continue;
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    EPMOE_REQUIRE(access(dir.c_str(), W_OK) == 0, ErrorKind::Input, flag, " ", path, ": the folder '", dir,
                  "' does not exist or is not writable");
  }
  load_tokens(s, opt, comm);

  // No collective may run here: a rank that failed above is already waiting in run_collectively's agreement. So
  // balanced placement only gathers this rank's loads here (prepare_run sums them and reads the shards after).
  if (balanced) return read_local_loads(s, opt, comm, stats);
  read_shards(s, comm, shards, stats);
}

}  // namespace

RunSetup prepare_run(RunOptions& opt, const MpiComm& comm) {
  RunSetup s;
  std::vector<LayerWeights> shards;
  IoStats stats;
  // Checked on every rank; a failure anywhere (a bad value, a file one rank cannot read, NaN in one rank's tokens)
  // ends every rank with the same message instead of leaving some waiting in a collective.
  run_collectively(comm, [&] { build_run(s, opt, comm, shards, stats); });
  if (s.parallel.placement == Placement::Balanced) {
    place_by_loads(s, comm);
    run_collectively(comm, [&] { read_shards(s, comm, shards, stats); });
  }
  // Then the layers, whose construction may communicate (the NCCL communicator).
  for (int l = 0; l < s.model.num_layers; ++l)
    s.layers.push_back(make_layer(s, opt, l, shards.empty() ? nullptr : &shards[l], comm));
  if (!s.checkpoint.empty()) {
    const ExpertPlacement placement(s.model.num_experts, comm.size(), s.parallel);
    s.io_report = io_report(stats, static_cast<int>(placement.experts_of(comm.rank()).size()), comm);
  }
  return s;
}

void print_run_header(const RunSetup& s, const MpiComm& comm) {
  const ExpertPlacement placement(s.model.num_experts, comm.size(), s.parallel);
  std::cout << "# epmoe run: " << s.source << " on " << comm.size() << " rank(s), backend " << to_string(s.backend)
            << "\n# model: " << s.model.summary() << "\n# parallel: mode " << to_string(s.parallel.mode)
            << ", placement " << to_string(s.parallel.placement) << ", pad_multiple " << s.parallel.pad_multiple
            << "\n# experts per rank:";
  for (int r = 0; r < comm.size(); ++r) std::cout << " " << placement.experts_of(r).size();
  std::cout << "\n# tokens per rank: " << s.tokens.rows()
            << (s.parallel.mode == Mode::AllReduce ? " (the same tokens on every rank)" : "")
            << "\n# unpad plan: " << s.layers.front()->plan().one_line() << "\n"
            << s.balance_report;
}

namespace {
// The layer's weights for the reference, on rank 0 alone: the preset's generator, or the checkpoint read whole.
LayerWeights reference_weights(const RunSetup& s, int layer, const std::vector<int>& experts) {
  if (s.checkpoint.empty()) return generate_layer_weights(s.model, s.seed, layer, experts);
  const MpiComm self(MPI_COMM_SELF);
  return read_layer_shard(s.checkpoint, s.model, layer, experts, self);
}
}  // namespace

void write_expert_loads(const RunSetup& s, const std::string& path, const MpiComm& comm) {
  const int L = static_cast<int>(s.layers.size()), E = s.model.num_experts;
  Matrix<float> loads(L, E);
  for (int l = 0; l < L; ++l) {
    const std::vector<double> mine = expert_loads(s.layers[l]->last_routing().ids, E);
    std::copy(mine.begin(), mine.end(), loads.row(l));
  }
  // allreduce mode: every rank routes the same tokens; count them once.
  if (s.parallel.mode == Mode::AllToAll) comm.allreduce_sum(loads);
  run_collectively(comm, [&] {
    if (comm.rank() == 0) write_expert_loads_file(path, loads);
  });
}

void write_run_output(const RunSetup& s, const std::string& path, const Matrix<float>& output,
                      const Routing& routing, const MpiComm& comm) {
  const bool gather = s.parallel.mode == Mode::AllToAll;
  const Matrix<float> y = gather ? comm.gather_rows(output, 0) : output;
  const Matrix<int> ids = gather ? comm.gather_rows(routing.ids, 0) : routing.ids;
  const Matrix<float> weights = gather ? comm.gather_rows(routing.weights, 0) : routing.weights;
  run_collectively(comm, [&] {
    if (comm.rank() == 0) write_output_file(path, y, ids, weights);
  });
}

VerifyOutcome verify_layer_collectively(const RunSetup& s, int layer, const Matrix<float>& input,
                                        const Matrix<float>& output, const Matrix<int>& ids, const MpiComm& comm,
                                        int rows_per_rank, bool routing_forced) {
  const bool gather = s.parallel.mode == Mode::AllToAll;
  const int rows = rows_per_rank;
  const Matrix<float> x = gather ? comm.gather_rows(first_rows(input, rows), 0) : first_rows(input, rows);
  const Matrix<float> y = gather ? comm.gather_rows(first_rows(output, rows), 0) : first_rows(output, rows);
  const Matrix<int> k = gather ? comm.gather_rows(first_rows(ids, rows), 0) : first_rows(ids, rows);
  VerifyOutcome v;
  std::string verdict;
  if (comm.rank() == 0) {
    // The reference needs the experts the checked rows were routed to (all of them for mini presets); a model-sized
    // layer is built only for those.
    std::vector<int> experts = all_experts(s.model);
    if (!s.mini) {
      std::vector<char> used(s.model.num_experts, 0);
      for (int e : k.storage()) used[std::min(std::max(e, 0), s.model.num_experts - 1)] = 1;
      const ReferenceRouting ref = reference_route(s.model, reference_weights(s, layer, {}), x);
      for (int e : ref.ids.storage()) used[e] = 1;
      experts.clear();
      for (int e = 0; e < s.model.num_experts; ++e)
        if (used[e]) experts.push_back(e);
    }
    const LayerWeights weights = reference_weights(s, layer, experts);
    const VerifyReport r = verify_layer(s.model, weights, x, y, k, s.backend == BackendKind::Cpu ? 1e-5 : 1e-2,
                                        routing_forced);
    v.passed = r.passed(s.tolerance);
    verdict = std::string(v.passed ? "1" : "0") + r.describe();
  }
  comm.broadcast(verdict, 0);
  v.passed = verdict[0] == '1';
  v.description = verdict.substr(1);
  return v;
}

}  // namespace epmoe::app
