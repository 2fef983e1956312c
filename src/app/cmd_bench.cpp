// epmoe bench: sweeps tokens per rank like nccl-tests sweeps sizes, on one layer, and prints per-phase times (max
// over ranks), throughput and bandwidths, with the ceilings (dense GEMM, equal-split all-to-all) measured in the
// same run. Column definitions: docs/benchmarking.md.
#include <algorithm>
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli.hpp"
#include "commands.hpp"
#include "epmoe/ceilings.hpp"
#include "epmoe/error.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/routing.hpp"
#include "json.hpp"
#include "run_setup.hpp"
#include "versions.hpp"
#ifdef EPMOE_HAVE_CUDA
#include "epmoe/cuda_layer.hpp"
#endif

namespace epmoe::app {
namespace {

struct BenchOptions {
  int min_tokens = 32;
  int max_tokens = 512;
  double step_factor = 2.0;
  int iters = 10;
  int warmup = 2;
  double gpu_lead_us = 200;  // CUDA: each GPU idles this long before a pass, while its host queues the pass
  bool check = false;
  int check_tokens = 2;
  std::string json;
  std::string routing = "real";
};

struct Row {
  int tokens = 0;
  PhaseTimes t;  // seconds per forward, max over ranks
  int slowest_rank = 0;
  double global_tokens = 0, expert_flops = 0, dispatch_bytes = 0, combine_bytes = 0;
  double ceiling_tflops = 0, ceiling_gbps = 0;
  bool checked = false, check_passed = true;
  std::string check_text;
};

std::vector<int> sweep(const BenchOptions& b) {
  std::vector<int> sizes;
  for (double t = b.min_tokens; t <= b.max_tokens + 0.5;) {
    sizes.push_back(static_cast<int>(std::lround(t)));
    const double next = std::max(t * b.step_factor, t + 1.0);
    t = next;
  }
  return sizes;
}

// Bytes this rank sends to other ranks in the dispatch (rows * Din * element size) and the global expert FLOPs.
void traffic(const RunSetup& s, const UnpadPlan& plan, const Matrix<int>& ids, const ExpertPlacement& placement,
             int element_bytes, const MpiComm& comm, Row& row) {
  const int K = s.model.top_k, me = comm.rank();
  long remote_rows = 0;
  std::vector<char> dest(comm.size());
  for (int t = 0; t < ids.rows(); ++t) {
    std::fill(dest.begin(), dest.end(), 0);
    for (int k = 0; k < K; ++k) dest[placement.owner(ids.at(t, k))] = 1;
    for (int r = 0; r < comm.size(); ++r) remote_rows += dest[r] && r != me;
  }
  const double Din = s.model.expert_width(), I = s.model.moe_intermediate_size, R13 = s.model.w13_rows();
  const bool alltoall = s.parallel.mode == Mode::AllToAll;
  // Per rank, averaged over ranks (nccl-tests' algbw convention: bytes a rank sends / time).
  row.dispatch_bytes = alltoall ? comm.sum(static_cast<double>(remote_rows) * Din * element_bytes) / comm.size() : 0;
  row.combine_bytes = alltoall ? row.dispatch_bytes
                               : (comm.size() > 1 ? static_cast<double>(ids.rows()) * plan.reduce_width * element_bytes : 0);
  const double pairs = alltoall ? comm.sum(static_cast<double>(ids.rows()) * K) : static_cast<double>(ids.rows()) * K;
  row.expert_flops = 2.0 * pairs * (R13 * Din + Din * I);
  row.global_tokens = alltoall ? comm.sum(static_cast<double>(ids.rows())) : ids.rows();
}

void measure_ceilings(const RunSetup& s, int tokens, const MpiComm& comm, Row& row) {
  const std::size_t bytes = static_cast<std::size_t>(std::max(row.dispatch_bytes, row.combine_bytes));
#ifdef EPMOE_HAVE_CUDA
  if (s.backend == BackendKind::Cuda) {
    CudaOptions o;
    o.max_tokens = tokens;
    const CudaCeilings c = measure_cuda_ceilings(s.model, s.parallel, tokens, comm, std::max<std::size_t>(bytes, 1024), o);
    row.ceiling_tflops = c.gemm_tflops();
    row.ceiling_gbps = c.alltoall_gbps();
    return;
  }
#endif
  const CpuCeilings c = measure_cpu_ceilings(s.model, s.parallel, tokens, comm, std::max<std::size_t>(bytes, 1024));
  row.ceiling_tflops = c.gemm_tflops();
  row.ceiling_gbps = c.alltoall_gbps();
}

std::string fmt(double v, int precision = 3) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(precision);
  o << v;
  return o.str();
}

// Right-aligned in w columns, and always at least one space before it: a value wider than its column (4 GPUs'
// expert rate, 2168.7151 TFLOP/s, in 9 columns) must not run into the one before it.
std::string pad(const std::string& s, size_t w) { return s.size() >= w ? " " + s : std::string(w - s.size(), ' ') + s; }

}  // namespace

int cmd_bench(const Args& args, const MpiComm& comm) {
  RunOptions opt;
  opt.preset = "qwen3-mini";
  BenchOptions b;
  ArgParser parser("bench", "Sweep tokens per rank on one MoE layer and report per-phase times, throughput and "
                            "bandwidth beside the ceilings measured in the same run (docs/benchmarking.md).");
  add_run_flags(parser, opt, /*bench=*/true);
  parser.add_int("--min-tokens", &b.min_tokens, "smallest tokens per rank", 1, 1 << 24);
  parser.add_int("--max-tokens", &b.max_tokens, "largest tokens per rank", 1, 1 << 24);
  parser.add_double("--step-factor", &b.step_factor, "multiply tokens per rank by this between sizes", 1.0, 1024.0);
  parser.add_int("--iters", &b.iters, "timed forward passes per size", 1, 1000000);
  parser.add_int("--warmup", &b.warmup, "untimed forward passes per size first", 0, 1000000);
  parser.add_double("--gpu-lead", &b.gpu_lead_us,
                    "CUDA backend: microseconds each GPU idles before a pass (untimed) while its host queues the pass, "
                    "as inside a model; 0: the pass starts on an idle GPU",
                    0.0, 1e6);
  parser.add_bool("--check", &b.check, "verify the last pass of every size against the float64 reference");
  parser.add_int("--check-tokens", &b.check_tokens, "model-sized presets: tokens per rank --check verifies", 1, 4096);
  parser.add_string("--json", &b.json, "also write the results as JSON to FILE (never overwritten)", "FILE");
  parser.add_string("--routing", &b.routing, "real (the router), uniform, zipf:S or hot:P (synthetic skew)", "R");
  parser.add_alias("-b", "--min-tokens");
  parser.add_alias("-e", "--max-tokens");
  parser.add_alias("-f", "--step-factor");
  parser.add_alias("-n", "--iters");
  parser.add_alias("-w", "--warmup");
  parser.add_alias("-c", "--check");
  parser.add_alias("-J", "--json");
  if (!parser.parse(args)) {
    if (comm.rank() == 0) std::cout << parser.help();
    return 0;
  }
  EPMOE_REQUIRE(b.min_tokens <= b.max_tokens, ErrorKind::Usage, "--min-tokens (", b.min_tokens,
                ") must not exceed --max-tokens (", b.max_tokens, ")");
  EPMOE_REQUIRE(b.step_factor > 1.0 || b.min_tokens == b.max_tokens, ErrorKind::Usage,
                "--step-factor must be > 1 when --min-tokens < --max-tokens");
  const RoutingSkew skew = parse_routing_skew(b.routing, "--routing");
  opt.routing = skew;
  run_collectively(comm, [&] {
    if (comm.rank() == 0 && !b.json.empty()) {
      EPMOE_REQUIRE(!std::ifstream(b.json).good(), ErrorKind::Usage, "--json: '", b.json,
                    "' exists; bench never overwrites a result file: choose another name");
      std::ofstream probe(b.json);
      EPMOE_REQUIRE(probe.good(), ErrorKind::Input, "--json: cannot write '", b.json, "'");
      probe.close();
      std::remove(b.json.c_str());
    }
  });
  opt.tokens = b.max_tokens;
  opt.layers = 1;
  opt.no_verify = true;
  if (opt.max_tokens == 0) opt.max_tokens = b.max_tokens;
  RunSetup s = prepare_run(opt, comm);
  s.tolerance = s.backend == BackendKind::Cpu ? 1e-5 : 2e-2;
  LayerRunner& layer = *s.layers.front();
  const ExpertPlacement placement(s.model.num_experts, comm.size(), s.parallel);
  const int element_bytes = s.backend == BackendKind::Cpu ? 4 : 2;

  // Preamble: the command, the configuration and every rank's host and device.
  std::string cmdline = "epmoe bench";
  for (const auto& a : args) cmdline += " " + a;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::string device = device_description(s.backend);
  std::string me = std::string(host) + " | " + device;
  std::vector<std::string> ranks;
  for (int r = 0; r < comm.size(); ++r) {
    std::string line = me;
    comm.broadcast(line, r);
    ranks.push_back(line);
  }
  const Versions versions = collect_versions();
  if (comm.rank() == 0) {
    std::cout << "# " << cmdline << "\n# epmoe " << versions.epmoe << ", backend " << to_string(s.backend)
              << ", routing " << skew.text() << "\n# model: " << s.model.summary() << "\n# parallel: " << comm.size()
              << " ranks, mode " << to_string(s.parallel.mode) << ", placement " << to_string(s.parallel.placement)
              << ", pad_multiple " << s.parallel.pad_multiple << "\n# unpad plan: " << layer.plan().one_line() << "\n"
              << s.balance_report;
    for (int r = 0; r < comm.size(); ++r) std::cout << "#  rank " << r << ": " << ranks[r] << "\n";
    std::cout << "#\n# " << pad("tokens", 9) << pad("route", 9) << pad("dispatch", 9) << pad("experts", 9)
              << pad("combine", 9) << pad("shared", 9) << pad("total", 9) << pad("tokens/s", 11) << pad("expert", 9)
              << pad("dispatch", 9) << pad("combine", 9) << pad("slowest", 8) << (b.check ? pad("check", 8) : "")
              << "\n# " << pad("per rank", 9) << pad("(ms)", 9) << pad("(ms)", 9) << pad("(ms)", 9) << pad("(ms)", 9)
              << pad("(ms)", 9) << pad("(ms)", 9) << pad("", 11) << pad("(TFLOP/s)", 9) << pad("(GB/s)", 9)
              << pad("(GB/s)", 9) << pad("(rank)", 8) << (b.check ? pad("", 8) : "") << "\n";
  }

  std::vector<Row> rows;
  const std::vector<int> sizes = sweep(b);
  bool all_passed = true;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int T = sizes[i];
    if (comm.rank() == 0 && sizes.size() > 1)
      std::cerr << "# [" << i + 1 << "/" << sizes.size() << "] " << T << " tokens per rank\n";
    const Matrix<float> x = first_rows(s.tokens, T);
    Matrix<int> forced;
    if (skew.kind != RoutingSkew::Kind::Real) {
      forced = synthetic_expert_ids(s.model, skew, T, s.first_token, s.seed ^ kRoutingSkewSalt);
      layer.force_expert_ids(&forced);
    }
    // On the GPU every forward after the first runs on the input forward() put on the device, back to back, as the
    // layer runs inside a model (cuda_layer_forward_resident), each after a GPU lead (--gpu-lead) in which the host
    // queues it, as the previous layer's work would let it; `y` and the routing stay the first forward's.
    Matrix<float> y = layer.forward(x);
    for (int it = 0; it < b.warmup + b.iters; ++it) {
      if (it == b.warmup) layer.times().reset();
#ifdef EPMOE_HAVE_CUDA
      if (s.backend == BackendKind::Cuda) {
        cuda_layer_forward_resident(layer, b.gpu_lead_us * 1e-6);
        continue;
      }
#endif
      y = layer.forward(x);
    }
    Row row;
    row.tokens = T;
    const PhaseTimes mine = layer.times();
    const double per = 1.0 / b.iters;
    row.t.route = comm.max(mine.route * per);
    row.t.dispatch = comm.max(mine.dispatch * per);
    row.t.experts = comm.max(mine.experts * per);
    row.t.combine = comm.max(mine.combine * per);
    row.t.shared = comm.max(mine.shared * per);
    row.t.latent = comm.max(mine.latent * per);
    row.t.total = comm.max(mine.total * per);
    row.t.dispatch_exchange = comm.max(mine.dispatch_exchange * per);
    row.t.combine_exchange = comm.max(mine.combine_exchange * per);
    row.t.expert_gemms = comm.max(mine.expert_gemms * per);
    row.t.weighted_sum = comm.max(mine.weighted_sum * per);
    struct {
      double v;
      int r;
    } local{mine.total * per, comm.rank()}, slowest{0, 0};
    EPMOE_MPI_CHECK(MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE_INT, MPI_MAXLOC, comm.handle()));
    row.slowest_rank = slowest.r;
    traffic(s, layer.plan(), layer.last_routing().ids, placement, element_bytes, comm, row);
    measure_ceilings(s, T, comm, row);
    if (b.check) {
      const VerifyOutcome v = verify_layer_collectively(s, 0, x, y, layer.last_routing().ids, comm,
                                                        s.mini ? 0 : b.check_tokens,
                                                        skew.kind != RoutingSkew::Kind::Real);
      row.checked = true;
      row.check_passed = v.passed;
      row.check_text = v.description;
      all_passed = all_passed && v.passed;
    }
    layer.force_expert_ids(nullptr);
    if (comm.rank() == 0) {
      const auto& t = row.t;
      std::cout << "  " << pad(std::to_string(T), 9) << pad(fmt(t.route * 1e3), 9) << pad(fmt(t.dispatch * 1e3), 9)
                << pad(fmt(t.experts * 1e3), 9) << pad(fmt(t.combine * 1e3), 9)
                << pad(fmt((t.shared + t.latent) * 1e3), 9) << pad(fmt(t.total * 1e3), 9)
                << pad(fmt(t.total > 0 ? row.global_tokens / t.total : 0, 0), 11)
                << pad(fmt(t.experts > 0 ? row.expert_flops / t.experts * 1e-12 : 0, 4), 9)
                << pad(fmt(t.dispatch > 0 ? row.dispatch_bytes / t.dispatch * 1e-9 : 0, 2), 9)
                << pad(fmt(t.combine > 0 ? row.combine_bytes / t.combine * 1e-9 : 0, 2), 9)
                << pad(std::to_string(row.slowest_rank), 8) << (b.check ? pad(row.check_passed ? "ok" : "FAIL", 8) : "")
                << "\n";
    }
    rows.push_back(row);
  }

  if (comm.rank() == 0) {
    std::cout << "#\n# ceilings measured in this run (dense " << (s.backend == BackendKind::Cpu ? "CBLAS sgemm" : "cuBLAS bf16 GEMM")
              << " of the expert phase's total shape; equal-split "
              << (s.backend == BackendKind::Cpu ? "MPI_Alltoall" : "ncclAlltoAll") << " of the dispatch bytes)\n# "
              << pad("tokens", 9) << pad("GEMM", 10) << pad("experts", 9) << pad("alltoall", 10) << pad("dispatch", 9)
              << pad("combine", 9) << pad("disp.a2a", 9) << pad("comb.a2a", 9) << pad("gemms", 9) << "\n# "
              << pad("per rank", 9) << pad("(TFLOP/s)", 10) << pad("(% ceil)", 9) << pad("(GB/s)", 10)
              << pad("(% ceil)", 9) << pad("(% ceil)", 9) << pad("(% ceil)", 9) << pad("(% ceil)", 9)
              << pad("(% ceil)", 9) << "\n";
    for (const Row& r : rows) {
      // The ceiling is one rank's GEMM: compare the expert rate per rank.
      const double ex = r.t.experts > 0 ? r.expert_flops / r.t.experts * 1e-12 / comm.size() : 0;
      const double di = r.t.dispatch > 0 ? r.dispatch_bytes / r.t.dispatch * 1e-9 : 0;
      const double co = r.t.combine > 0 ? r.combine_bytes / r.t.combine * 1e-9 : 0;
      // The payload all-to-all alone (alltoall mode; the all-reduce has no separate exchange).
      const double dx = r.t.dispatch_exchange > 0 ? r.dispatch_bytes / r.t.dispatch_exchange * 1e-9 : 0;
      const double cx = r.t.combine_exchange > 0 ? r.combine_bytes / r.t.combine_exchange * 1e-9 : 0;
      // The experts' GEMMs with their activation alone (PhaseTimes::expert_gemms), per rank like `experts`.
      const double gx = r.t.expert_gemms > 0 ? r.expert_flops / r.t.expert_gemms * 1e-12 / comm.size() : 0;
      auto pct = [](double v, double ceil) { return ceil > 0 && v > 0 ? fmt(100.0 * v / ceil, 1) : std::string("-"); };
      std::cout << "  " << pad(std::to_string(r.tokens), 9) << pad(fmt(r.ceiling_tflops, 4), 10)
                << pad(pct(ex, r.ceiling_tflops), 9) << pad(fmt(r.ceiling_gbps, 2), 10)
                << pad(pct(di, r.ceiling_gbps), 9) << pad(pct(co, r.ceiling_gbps), 9)
                << pad(pct(dx, r.ceiling_gbps), 9) << pad(pct(cx, r.ceiling_gbps), 9)
                << pad(pct(gx, r.ceiling_tflops), 9) << "\n";
    }
    for (const Row& r : rows)
      if (r.checked) std::cout << "# check " << r.tokens << " tokens/rank: " << r.check_text << "\n";
    if (b.check) std::cout << (all_passed ? "# all checks passed\n" : "# CHECK FAILED\n");
  }

  if (comm.rank() == 0 && !b.json.empty()) {
    JsonWriter j;
    j.begin_object();
    j.value("command", cmdline);
    j.begin_object("versions")
        .value("epmoe", versions.epmoe)
        .value("git_commit", versions.git_commit)
        .value("mpi", versions.mpi)
        .value("hdf5", versions.hdf5)
        .value("cuda", versions.cuda)
        .value("nccl", versions.nccl)
        .end_object();
    j.begin_object("config")
        .value("preset", opt.preset)
        .value("model", s.model.summary())
        .value("hidden_size", s.model.hidden_size)
        .value("moe_intermediate_size", s.model.moe_intermediate_size)
        .value("num_experts", s.model.num_experts)
        .value("top_k", s.model.top_k)
        .value("backend", to_string(s.backend))
        .value("mode", to_string(s.parallel.mode))
        .value("placement", to_string(s.parallel.placement))
        .value("pad_multiple", s.parallel.pad_multiple)
        .value("routing", skew.text())
        .value("ranks", comm.size())
        .value("iters", b.iters)
        .value("warmup", b.warmup)
        .value("gpu_lead_us", s.backend == BackendKind::Cuda ? b.gpu_lead_us : 0.0)
        .value("unpad_plan", layer.plan().one_line())
        .end_object();
    j.begin_array("devices");
    for (int r = 0; r < comm.size(); ++r) j.begin_object().value("rank", r).value("host_device", ranks[r]).end_object();
    j.end_array();
    j.begin_array("results");
    for (const Row& r : rows) {
      j.begin_object()
          .value("tokens_per_rank", r.tokens)
          .value("route_ms", r.t.route * 1e3)
          .value("dispatch_ms", r.t.dispatch * 1e3)
          .value("experts_ms", r.t.experts * 1e3)
          .value("combine_ms", r.t.combine * 1e3)
          .value("shared_ms", r.t.shared * 1e3)
          .value("latent_ms", r.t.latent * 1e3)
          .value("total_ms", r.t.total * 1e3)
          .value("dispatch_exchange_ms", r.t.dispatch_exchange * 1e3)
          .value("combine_exchange_ms", r.t.combine_exchange * 1e3)
          .value("expert_gemms_ms", r.t.expert_gemms * 1e3)
          .value("weighted_sum_ms", r.t.weighted_sum * 1e3)
          .value("tokens_per_s", r.t.total > 0 ? r.global_tokens / r.t.total : 0.0)
          .value("expert_tflops", r.t.experts > 0 ? r.expert_flops / r.t.experts * 1e-12 : 0.0)
          .value("expert_tflops_per_rank", r.t.experts > 0 ? r.expert_flops / r.t.experts * 1e-12 / comm.size() : 0.0)
          .value("dispatch_gbps", r.t.dispatch > 0 ? r.dispatch_bytes / r.t.dispatch * 1e-9 : 0.0)
          .value("combine_gbps", r.t.combine > 0 ? r.combine_bytes / r.t.combine * 1e-9 : 0.0)
          .value("dispatch_bytes_per_rank", r.dispatch_bytes)
          .value("combine_bytes_per_rank", r.combine_bytes)
          .value("expert_flops", r.expert_flops)
          .value("slowest_rank", r.slowest_rank)
          .value("ceiling_gemm_tflops", r.ceiling_tflops)
          .value("ceiling_alltoall_gbps", r.ceiling_gbps);
      if (r.checked) j.value("check_passed", r.check_passed).value("check", r.check_text);
      j.end_object();
    }
    j.end_array();
    j.end_object();
    std::ofstream out(b.json);
    out << j.str();
    EPMOE_REQUIRE(out.good(), ErrorKind::Input, "--json: writing '", b.json, "' failed");
    std::cout << "# results written to " << b.json << "\n";
  }
  return all_passed ? 0 : 1;
}

}  // namespace epmoe::app
