// epmoe run: builds the layers on every rank (synthetic weights of a preset, or a checkpoint's shard), runs the
// forward passes, reports per-phase times (max over ranks) and verifies against the float64 reference.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli.hpp"
#include "commands.hpp"
#include "epmoe/error.hpp"
#include "epmoe/layer.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/reference.hpp"
#include "run_setup.hpp"

namespace epmoe::app {
namespace {

struct PhaseRow {
  const char* name;
  double PhaseTimes::*field;
};
const PhaseRow kPhases[] = {{"route", &PhaseTimes::route},       {"dispatch", &PhaseTimes::dispatch},
                            {"experts", &PhaseTimes::experts},   {"combine", &PhaseTimes::combine},
                            {"shared", &PhaseTimes::shared},     {"latent", &PhaseTimes::latent},
                            {"total", &PhaseTimes::total}};

}  // namespace

int cmd_run(const Args& args, const MpiComm& comm) {
  RunOptions opt;
  ArgParser parser("run", "Run MoE layers expert-parallel over the ranks of mpirun; report per-phase times and "
                          "verify against the float64 reference.");
  add_run_flags(parser, opt);
  parser.add_int("--iters", &opt.iters, "timed forward passes (each through all layers)", 1, 1000000);
  parser.add_int("--warmup", &opt.warmup, "untimed forward passes first", 0, 1000000);
  parser.add_bool("--verify", &opt.verify, "check every layer of the last pass against the float64 reference");
  parser.add_bool("--no-verify", &opt.no_verify, "skip verification (default for model-sized presets)");
  parser.add_double("--tolerance", &opt.tolerance, "verification limit on the relative L2 error (0 = backend default)",
                    0.0, 1.0);
  if (!parser.parse(args)) {
    if (comm.rank() == 0) std::cout << parser.help();
    return 0;
  }
  EPMOE_REQUIRE(opt.input.empty() || !parser.given("--tokens"), ErrorKind::Usage,
                "--tokens and --input exclude each other: the input file decides the tokens");
  EPMOE_REQUIRE(opt.checkpoint.empty() || !parser.given("--preset"), ErrorKind::Usage,
                "--preset and --checkpoint exclude each other");
  const bool defaulted = args.empty();
  RunSetup setup = prepare_run(opt, comm);
  if (comm.rank() == 0) {
    if (defaulted)
      std::cout << "# no flags given: running the default job (preset " << opt.preset << ", " << opt.tokens
                << " tokens per rank, verify on); 'epmoe run --help' lists the flags\n";
    print_run_header(setup, comm);
    if (!setup.io_report.empty()) std::cout << setup.io_report;
  }

  // Forward passes: each pass runs the tokens through every layer in turn, with a residual connection between
  // layers (h <- h + layer(h)) as in the models, so that activations keep their scale from layer to layer.
  std::vector<Matrix<float>> layer_inputs(setup.layers.size()), layer_outputs(setup.layers.size());
  Matrix<float> final_output;
  const int passes = opt.warmup + opt.iters;
  for (int pass = 0; pass < passes; ++pass) {
    if (pass == opt.warmup)
      for (auto& layer : setup.layers) layer->times().reset();
    Matrix<float> h = setup.tokens;
    for (size_t l = 0; l < setup.layers.size(); ++l) {
      Matrix<float> y = setup.layers[l]->forward(h);
      if (pass == passes - 1) {
        layer_inputs[l] = h;
        layer_outputs[l] = y;
      }
      if (pass == passes - 1 && l + 1 == setup.layers.size()) final_output = y;
      for (size_t i = 0; i < h.size(); ++i) h.data()[i] += y.data()[i];
    }
  }

  // Per-phase times: per layer and pass, max over ranks (each phase's max taken independently).
  PhaseTimes sum;
  for (auto& layer : setup.layers)
    for (const auto& p : kPhases) sum.*p.field += layer->times().*p.field;
  const double per = 1.0 / (opt.iters * static_cast<double>(setup.layers.size()));
  std::ostringstream report;
  report << "# per-layer phase times in ms (average over " << opt.iters << " passes x " << setup.layers.size()
         << " layers, max over ranks)\n#";
  for (const auto& p : kPhases) {
    if (p.field == &PhaseTimes::latent && !setup.model.has_latent()) continue;
    report << "  " << p.name << " " << std::fixed;
    report.precision(3);
    report << comm.max(sum.*p.field * per) * 1e3;
  }
  const double total = comm.max(sum.total * per);
  const long global_tokens = opt.mode_value == Mode::AllToAll ? comm.sum(static_cast<long>(setup.tokens.rows()))
                                                              : static_cast<long>(setup.tokens.rows());
  report << "\n# tokens/s per layer: " << std::scientific;
  report.precision(3);
  report << (total > 0 ? global_tokens / total : 0.0) << " (" << global_tokens << " tokens"
         << (setup.backend == BackendKind::Cpu ? ", CPU backend" : "") << ")\n";
  if (comm.rank() == 0) std::cout << report.str();

  if (!opt.save_expert_loads.empty()) {
    write_expert_loads(setup, opt.save_expert_loads, comm);
    if (comm.rank() == 0) std::cout << "# wrote /expert_loads to " << opt.save_expert_loads << "\n";
  }
  if (!opt.output.empty()) {
    write_run_output(setup, opt.output, final_output, setup.layers.front()->last_routing(), comm);
    if (comm.rank() == 0) std::cout << "# wrote /output, /topk_ids, /topk_weights to " << opt.output << "\n";
  }

  if (!setup.verify) return 0;
  bool ok = true;
  for (size_t l = 0; l < setup.layers.size(); ++l) {
    const VerifyOutcome v = verify_layer_collectively(setup, static_cast<int>(l), layer_inputs[l], layer_outputs[l],
                                                      setup.layers[l]->last_routing().ids, comm);
    ok = ok && v.passed;
    if (comm.rank() == 0)
      std::cout << "# verify layer " << l << ": " << v.description << (v.passed ? "  OK" : "  FAILED") << "\n";
  }
  if (comm.rank() == 0)
    std::cout << (ok ? "# verification passed" : "# VERIFICATION FAILED") << " (tolerance " << setup.tolerance
              << " relative L2 vs the float64 reference)\n";
  return ok ? 0 : 1;
}

}  // namespace epmoe::app
