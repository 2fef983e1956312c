// Benchmark of the CUDA layer with synthetic weights generated on the device (model-sized presets need no file).
// Per phase: the median over iterations of the slowest rank's time, beside the ceiling measured in the same run
// (dense cuBLAS bf16 GEMMs of the expert phase's total shape; an equal-split ncclAlltoAll of the dispatch's bytes).
// --verify checks the output against the float64 reference (mini presets: the reference needs every expert).
// Only rank 0 prints; human lines start with '#'; --json writes the numbers.
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/stats.hpp"
#include "epmoe/cuda_layer.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/reference.hpp"
#include "gpu_test_support.hpp"

namespace {

using epmoe::median;

struct Args {
  std::string preset = "deepseek-mini";
  // --tokens N, or N0,N1,... one count per rank (alltoall mode): ranks with different token counts, as in decode
  // batches.
  std::vector<int> token_list{128};
  epmoe::Mode mode = epmoe::Mode::AllToAll;
  int pad = 0;
  epmoe::Placement placement = epmoe::Placement::Linear;
  int iters = 20;
  int warmup = 5;
  bool verify = false;
  bool staged = false;
  std::string json;
  std::uint64_t seed = 1234;
  int experts = 0;  // > 0: the preset's expert count replaced (--experts)
  // --gpu-lead: the GPU idles this long before each resident forward (outside its timing), so that the host queues
  // the forward's first stages ahead of the GPU, as inside a model; 0: the forward starts on an idle GPU right after
  // the barrier, and its first stages run only as fast as each rank's host launches them (docs/performance.md).
  double gpu_lead_us = 200;
  std::string command;
};

std::vector<int> parse_token_list(const std::string& text) {
  std::vector<int> list;
  std::size_t at = 0;
  for (;;) {
    const std::size_t comma = text.find(',', at);
    const std::string item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    char* end = nullptr;
    const long n = std::strtol(item.c_str(), &end, 10);
    EPMOE_REQUIRE(!item.empty() && *end == '\0' && n >= 0 && n <= (1 << 24), epmoe::ErrorKind::Usage,
                  "--tokens takes a token count per rank from 0 to 16777216, or one per rank separated by commas; "
                  "got '", text, "'");
    list.push_back(static_cast<int>(n));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return list;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 0; i < argc; ++i) a.command += (i ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      EPMOE_REQUIRE(i + 1 < argc, epmoe::ErrorKind::Usage, f, " needs a value");
      return argv[++i];
    };
    if (f == "--preset") a.preset = value();
    else if (f == "--tokens") a.token_list = parse_token_list(value());
    else if (f == "--mode") a.mode = epmoe::parse_mode(value(), "--mode");
    else if (f == "--pad") a.pad = std::stoi(value());
    else if (f == "--placement") a.placement = epmoe::parse_placement(value(), "--placement");
    else if (f == "--iters") a.iters = std::stoi(value());
    else if (f == "--warmup") a.warmup = std::stoi(value());
    else if (f == "--verify") a.verify = true;
    else if (f == "--staged") a.staged = true;
    else if (f == "--json") a.json = value();
    else if (f == "--seed") a.seed = std::stoull(value());
    else if (f == "--experts") a.experts = std::stoi(value());
    else if (f == "--gpu-lead") {
      a.gpu_lead_us = std::stod(value());
      EPMOE_REQUIRE(a.gpu_lead_us >= 0 && a.gpu_lead_us <= 1e6, epmoe::ErrorKind::Usage,
                    "--gpu-lead is in microseconds, from 0 to 1000000; got ", a.gpu_lead_us);
    } else
      EPMOE_THROW(epmoe::ErrorKind::Usage, "unknown flag ", f,
                  "; flags: --preset --tokens --mode --pad --placement --iters --warmup --verify --staged --json "
                  "--seed --experts --gpu-lead");
  }
  return a;
}

// EPMOE_CUDA_TRACE=1: per point of the forward and per rank, the median over the last `iters` forwards of the time
// since the earliest rank reached the forward's start (GPU points against the GPU start, %globaltimer; host points
// against the host start, CLOCK_REALTIME). Collective; the text is for rank 0, empty when tracing is off.
std::string trace_table(const epmoe::CudaTrace& trace, int iters, const epmoe::MpiComm& comm) {
  int F = static_cast<int>(std::min<std::size_t>(trace.forwards.size(), static_cast<std::size_t>(iters)));
  MPI_Allreduce(MPI_IN_PLACE, &F, 1, MPI_INT, MPI_MIN, comm.handle());
  if (F == 0) return "";
  const int P = static_cast<int>(trace.points.size()), R = comm.size();
  std::vector<std::int64_t> mine;
  for (std::size_t f = trace.forwards.size() - F; f < trace.forwards.size(); ++f)
    mine.insert(mine.end(), trace.forwards[f].begin(), trace.forwards[f].end());
  std::vector<std::int64_t> all(mine.size() * R);
  MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_INT64_T, all.data(), static_cast<int>(mine.size()),
                MPI_INT64_T, comm.handle());
  auto at = [&](int r, int f, int p) { return all[(static_cast<std::size_t>(r) * F + f) * P + p]; };
  std::string text = "# trace (EPMOE_CUDA_TRACE): median us since the earliest rank's start, rank 0 / 1 / ...\n";
  for (int p = 0; p < P; ++p) {
    const int ref = p < trace.gpu_points ? 0 : trace.gpu_points;
    char line[64];
    std::snprintf(line, sizeof line, "#   %-12s", trace.points[p].c_str());
    text += line;
    for (int r = 0; r < R; ++r) {
      std::vector<double> d;
      for (int f = 0; f < F; ++f) {
        std::int64_t first = at(0, f, ref);
        for (int q = 1; q < R; ++q) first = std::min(first, at(q, f, ref));
        if (at(r, f, p) != 0) d.push_back(static_cast<double>(at(r, f, p) - first) * 1e-3);
      }
      std::snprintf(line, sizeof line, "%s%8.1f", r ? " /" : "", d.empty() ? -1.0 : median(d));
      text += line;
    }
    text += "\n";
  }
  return text;
}

int run(const Args& args, const epmoe::MpiComm& comm) {
  using namespace epmoe;
  ModelConfig model = make_preset(args.preset);
  if (args.experts > 0) {
    // One rank's expert work of a larger machine on one GPU: deepseek-v3 at 4 ranks and 4096 tokens per rank gives
    // each rank 64 of the 256 experts and 4 x 4096 x 8 / 256 = 512 pairs per expert; one rank with --experts 64
    // and 4096 tokens gets the same (its scatter reads fewer rows: one per token instead of one per token and rank).
    model.num_experts = args.experts;
    model.validate("--preset " + args.preset + " --experts " + std::to_string(args.experts));
  }
  // This rank's tokens, the most any rank has, the first token's index, the mean (--tokens).
  const std::vector<int>& list = args.token_list;
  EPMOE_REQUIRE(list.size() == 1 || static_cast<int>(list.size()) == comm.size(), ErrorKind::Usage, "--tokens lists ",
                list.size(), " counts for ", comm.size(), " ranks: give one count, or one per rank");
  const auto count_of = [&](int r) { return list.size() == 1 ? list[0] : list[r]; };
  EPMOE_REQUIRE(list.size() == 1 || args.mode == Mode::AllToAll, ErrorKind::Usage,
                "--tokens with a count per rank needs --mode alltoall (allreduce: every rank holds the same tokens)");
  const int tokens = count_of(comm.rank());
  int most = 0;
  std::int64_t first = 0, total_tokens = 0;
  for (int r = 0; r < comm.size(); ++r) {
    most = std::max(most, count_of(r));
    if (r < comm.rank()) first += count_of(r);
    total_tokens += count_of(r);
  }
  EPMOE_REQUIRE(most > 0, ErrorKind::Usage, "--tokens: some rank must have a token");
  const int mean_tokens = static_cast<int>((total_tokens + comm.size() - 1) / comm.size());
  std::string tokens_text = std::to_string(list[0]) + " tokens per rank";
  if (list.size() > 1) {
    tokens_text = "tokens per rank";
    for (std::size_t r = 0; r < list.size(); ++r) tokens_text += (r ? "/" : " ") + std::to_string(list[r]);
  }
  ParallelConfig parallel;
  parallel.mode = args.mode;
  parallel.pad_multiple = args.pad;
  CudaOptions options;
  options.max_tokens = most;
  std::string balance_text;
  if (args.placement == Placement::Balanced) {
    // The loads come from other tokens than the timed ones (another seed), as a deployment's placement comes from
    // earlier traffic: one forward of a linear-placement layer, pairs per expert summed over the ranks.
    std::unique_ptr<LayerRunner> probe = make_cuda_layer_synthetic(model, parallel, comm, args.seed, 0, options);
    Matrix<float> calibration =
        generate_tokens(tokens, model.hidden_size, (args.seed ^ 0x5eedull) + 0xca1ull, first);
    testing::round_bf16(calibration);
    const std::vector<double> loads = measure_expert_loads(*probe, calibration, comm, model.num_experts);
    probe.reset();
    parallel.expert_owner = balanced_expert_owner(loads, comm.size());
    ParallelConfig balanced = parallel;
    balanced.placement = Placement::Balanced;
    const auto busiest = [&](const ExpertPlacement& p) {
      const std::vector<double> r = rank_loads(loads, p);
      return *std::max_element(r.begin(), r.end());
    };
    char line[256];
    std::snprintf(line, sizeof line,
                  "# balanced placement from one forward of other tokens: there, the busiest rank has %.0f pairs with "
                  "it, %.0f with linear placement (mean %.0f)\n",
                  busiest(ExpertPlacement(model.num_experts, comm.size(), balanced)),
                  busiest(ExpertPlacement(model.num_experts, comm.size(), Placement::Linear)),
                  std::accumulate(loads.begin(), loads.end(), 0.0) / comm.size());
    balance_text = line;
  }
  parallel.placement = args.placement;
  parallel.validate(model, comm.size());
  auto layer = make_cuda_layer_synthetic(model, parallel, comm, args.seed, 0, options);
  const bool alltoall = args.mode == Mode::AllToAll;
  Matrix<float> x = generate_tokens(tokens, model.hidden_size, args.seed ^ 0x5eedull, alltoall ? first : 0);
  testing::round_bf16(x);
  const std::string device = cuda_device_description();
  std::vector<std::string> devices(comm.size());
  for (int r = 0; r < comm.size(); ++r) {
    std::string d = device;
    comm.broadcast(d, r);
    devices[r] = d;
  }

  // Every forward after the first runs on the input already on the device and leaves its output there
  // (cuda_layer_forward_resident), as the layer runs inside a model. --staged: each forward copies its input in and
  // its output out (outside the timed region); at deepseek-v3's shape that leaves NVLink idle long enough to fall
  // asleep between forwards (docs/performance.md).
  Matrix<float> y = layer->forward(x);
  auto forward = [&] {
    if (args.staged) y = layer->forward(x);
    else
      cuda_layer_forward_resident(*layer, args.gpu_lead_us * 1e-6);
  };
  for (int i = 0; i < args.warmup; ++i) forward();
  // Per iteration, per phase: the slowest rank's time.
  // dispatch_a2a and combine_a2a: the payload all-to-all alone, inside dispatch and combine (PhaseTimes).
  // expert_gemms: the grouped GEMMs with the activation between them, inside experts.
  // experts_no_sum: experts without its weighted sum (the scatter of the rows and the GEMMs: the expert phase as the
  // issue's PyTorch breakdown counts it, its weighted sum apart); weighted_sum: that sum alone; expert_scatter: the
  // copy of the pairs' rows into the GEMMs' layout alone.
  // combine_crit, combine_a2a_crit: the combine on the rank whose expert phase was the slowest in that forward (it
  // waits for no other rank's experts: the combine without the routing imbalance).
  enum {
    kRoute, kDispatch, kDispatchX, kDispatchCounts, kExperts, kExpertsNoSum, kExpertGemms, kWeightedSum,
    kExpertScatter, kCombine, kCombineX, kCombineCrit, kCombineXCrit, kShared, kLatent, kTotal, kPhases
  };
  const char* names[kPhases] = {"route",          "dispatch",       "dispatch_a2a",   "dispatch_counts",
                                "experts",        "experts_no_sum", "expert_gemms",   "weighted_sum",
                                "expert_scatter", "combine",        "combine_a2a",    "combine_crit",
                                "combine_a2a_crit", "shared",       "latent",         "total"};
  std::vector<std::vector<double>> samples(kPhases), own(kPhases);  // slowest rank's, this rank's
  for (int i = 0; i < std::max(args.iters, 1); ++i) {
    layer->times().reset();
    comm.barrier();
    forward();
    const PhaseTimes& t = layer->times();
    // The rank with the slowest expert phase, and its combine.
    struct {
      double v;
      int r;
    } mine{t.experts, comm.rank()}, slowest{0, 0};
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE_INT, MPI_MAXLOC, comm.handle());
    double crit[2] = {t.combine, t.combine_exchange};
    MPI_Bcast(crit, 2, MPI_DOUBLE, slowest.r, comm.handle());
    const double v[kPhases] = {t.route,          t.dispatch,   t.dispatch_exchange, t.dispatch_counts,
                               t.experts,        t.experts - t.weighted_sum, t.expert_gemms, t.weighted_sum,
                               t.expert_scatter, t.combine,        t.combine_exchange, crit[0], crit[1],
                               t.shared,         t.latent,     t.total};
    for (int p = 0; p < kPhases; ++p) {
      samples[p].push_back(p == kCombineCrit || p == kCombineXCrit ? v[p] : comm.max(v[p]));
      own[p].push_back(v[p]);
    }
  }
  double med[kPhases];
  for (int p = 0; p < kPhases; ++p) med[p] = median(samples[p]);
  // Each rank's own medians, for the skew between ranks (a rank that reaches the dispatch late makes the others
  // wait in dispatch_counts).
  const int kSkewPhases[] = {kRoute, kDispatchCounts, kDispatchX, kExperts, kCombine, kShared, kTotal};
  constexpr int kSkew = sizeof kSkewPhases / sizeof kSkewPhases[0];
  double own_medians[kSkew];
  for (int i = 0; i < kSkew; ++i) own_medians[i] = median(own[kSkewPhases[i]]);
  std::vector<double> per_rank(static_cast<std::size_t>(kSkew) * comm.size());  // [rank][phase], on rank 0
  MPI_Gather(own_medians, kSkew, MPI_DOUBLE, per_rank.data(), kSkew, MPI_DOUBLE, 0, comm.handle());

  const CudaLayerStats stats = cuda_layer_stats(*layer);
  const std::string trace_text = trace_table(cuda_layer_trace(*layer), std::max(args.iters, 1), comm);
  const double R = comm.size();
  const double dispatch_bytes = comm.sum(static_cast<double>(stats.dispatch_bytes_sent)) / R;
  const double combine_bytes = comm.sum(static_cast<double>(stats.combine_bytes_sent)) / R;
  const double pairs = comm.sum(static_cast<double>(stats.pairs_processed)) / R;
  const double max_pairs = comm.max(static_cast<double>(stats.pairs_processed));
  const double max_gemm_rows = comm.max(static_cast<double>(stats.gemm_rows));
  const double max_buckets = comm.max(static_cast<double>(stats.gemm_buckets));
  const double device_gib = comm.max(static_cast<double>(stats.device_bytes)) / (1 << 30);
  const double weight_gib = comm.max(static_cast<double>(stats.weight_bytes)) / (1 << 30);
  const int Dp = padded_width(model.expert_width(), args.pad);
  const double flops_per_pair =
      2.0 * (static_cast<double>(model.w13_rows()) * Dp + static_cast<double>(Dp) * model.moe_intermediate_size);
  // Right after the forwards, with the GPUs as warm as the layer left them.
  const CudaCeilings ceil = measure_cuda_ceilings(model, parallel, mean_tokens, comm,
                                                  static_cast<std::size_t>(std::max(dispatch_bytes, 1.0)), options);
  // Expert phase rate: the slowest rank's pairs over the slowest rank's time is a lower bound of what it did;
  // use the mean pairs per rank, as the dense ceiling is shaped from the mean (tokens x top_k rows).
  // Per rank, its own pairs over its own median time (the runner's rate without the routing's imbalance between
  // ranks, which the rates above count in), as % of the ceiling; on rank 0: [rank][experts, no sum, GEMMs].
  const int kOwn[3] = {kExperts, kExpertsNoSum, kExpertGemms};
  double own_pct[3];
  for (int i = 0; i < 3; ++i) {
    const double t = median(own[kOwn[i]]);
    own_pct[i] = t > 0 ? 100 * stats.pairs_processed * flops_per_pair / t / (ceil.gemm_flops / ceil.gemm_seconds) : 0;
  }
  std::vector<double> own_pct_all(3 * static_cast<std::size_t>(comm.size()));
  MPI_Gather(own_pct, 3, MPI_DOUBLE, own_pct_all.data(), 3, MPI_DOUBLE, 0, comm.handle());
  const double expert_tflops = med[kExperts] > 0 ? pairs * flops_per_pair / med[kExperts] * 1e-12 : 0;
  const double no_sum_tflops = med[kExpertsNoSum] > 0 ? pairs * flops_per_pair / med[kExpertsNoSum] * 1e-12 : 0;
  const double gemm_tflops = med[kExpertGemms] > 0 ? pairs * flops_per_pair / med[kExpertGemms] * 1e-12 : 0;
  auto gbps = [&](double bytes, int phase) { return med[phase] > 0 ? bytes / med[phase] * 1e-9 : 0.0; };
  const double dispatch_gbps = gbps(dispatch_bytes, kDispatch), combine_gbps = gbps(combine_bytes, kCombine);
  const double dispatch_a2a_gbps = gbps(dispatch_bytes, kDispatchX), combine_a2a_gbps = gbps(combine_bytes, kCombineX);
  const double combine_crit_gbps = gbps(combine_bytes, kCombineCrit);
  const double combine_a2a_crit_gbps = gbps(combine_bytes, kCombineXCrit);

  bool verified = true;
  std::string verify_text = "not run";
  if (args.verify) {
    EPMOE_REQUIRE(make_preset(args.preset).hidden_size <= 1024, ErrorKind::Usage,
                  "--verify needs every expert on the host: use a mini preset");
    LayerWeights full = generate_layer_weights(model, args.seed, 0, all_experts(model));
    testing::round_gpu_weights(full);
    const Matrix<float> all_x = alltoall ? comm.gather_rows(x, 0) : x;
    const Matrix<float> all_y = alltoall ? comm.gather_rows(y, 0) : y;
    const Matrix<int> ids = layer->last_routing().ids;
    const Matrix<int> all_ids = alltoall ? comm.gather_rows(ids, 0) : ids;
    int ok = 1;
    if (comm.rank() == 0) {
      const VerifyReport r = verify_layer(model, full, all_x, all_y, all_ids);
      ok = r.passed(1e-2);
      verify_text = r.describe();
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm.handle());
    verified = ok == 1;
  }

  if (comm.rank() == 0) {
    std::printf("# epmoe_cuda_bench: %s\n", args.command.c_str());
    for (int r = 0; r < comm.size(); ++r) std::printf("# rank %d: %s\n", r, devices[r].c_str());
    std::printf("# model: %s\n# mode %s, pad %d, placement %s, %s, %d ranks, %d iterations (median of "
                "the slowest rank), %d warm-up%s\n",
                model.summary().c_str(), to_string(args.mode), args.pad, to_string(args.placement), tokens_text.c_str(),
                comm.size(), std::max(args.iters, 1), args.warmup,
                args.staged ? ", staged (input copied in and output out around each forward)"
                            : ", resident (input on the device, output left there)");
    if (!args.staged && args.gpu_lead_us > 0)
      std::printf("# each forward after the barrier: the GPU idles %.0f us first (--gpu-lead), the host queues ahead\n",
                  args.gpu_lead_us);
    else if (!args.staged)
      std::printf("# each forward starts on an idle GPU right after the barrier (--gpu-lead 0)\n");
    std::printf("%s", balance_text.c_str());
    std::printf("# per rank: %.0f pairs (max %.0f), dispatch %.1f MB, combine %.1f MB, device memory %.2f GiB "
                "(weights %.2f GiB)\n",
                pairs, max_pairs, dispatch_bytes * 1e-6, combine_bytes * 1e-6, device_gib, weight_gib);
    const char* gemm_mode = std::getenv("EPMOE_CUDA_EXPERT_GEMM");
    std::printf("# expert GEMMs (EPMOE_CUDA_EXPERT_GEMM %s): at most %.0f rows computed for %.0f pairs on a rank, at "
                "most %.0f GEMM calls per weight matrix\n",
                gemm_mode ? gemm_mode : "unset", max_gemm_rows, max_pairs, max_buckets);
    std::printf("# dispatch: %s\n", stats.symmetric_dispatch
                                         ? "symmetric (kernels write into the receivers' NCCL symmetric windows)"
                                         : "NCCL grouped send/recv, counts through the host");
    std::printf("# combine: %s\n", stats.symmetric_combine
                                        ? "symmetric (each weighted sum stored into its home's window as it is formed: "
                                          "the sum is in combine and combine_a2a, weighted_sum is 0)"
                                        : "the weighted sums (experts), then NCCL grouped send/recv");
    std::printf("%-17s %10s %12s %12s %8s\n", "phase", "time", "achieved", "ceiling", "of_ceil");
    std::printf("%-17s %10s %12s %12s %8s\n", "", "ms", "", "", "%");
    for (int p = 0; p < kPhases; ++p) {
      char achieved[32] = "", ceiling[32] = "", pct[16] = "";
      if (p == kExperts || p == kExpertsNoSum || p == kExpertGemms) {
        const double tf = p == kExperts ? expert_tflops : p == kExpertsNoSum ? no_sum_tflops : gemm_tflops;
        std::snprintf(achieved, sizeof achieved, "%.1f TF/s", tf);
        std::snprintf(ceiling, sizeof ceiling, "%.1f TF/s", ceil.gemm_tflops());
        std::snprintf(pct, sizeof pct, "%.0f", 100 * tf / ceil.gemm_tflops());
      } else if ((p == kDispatch || p == kCombine || p == kDispatchX || p == kCombineX || p == kCombineCrit ||
                  p == kCombineXCrit) &&
                 alltoall) {
        const double g = p == kDispatch       ? dispatch_gbps
                         : p == kCombine      ? combine_gbps
                         : p == kDispatchX    ? dispatch_a2a_gbps
                         : p == kCombineX     ? combine_a2a_gbps
                         : p == kCombineCrit  ? combine_crit_gbps
                                              : combine_a2a_crit_gbps;
        std::snprintf(achieved, sizeof achieved, "%.1f GB/s", g);
        std::snprintf(ceiling, sizeof ceiling, "%.1f GB/s", ceil.alltoall_gbps());
        std::snprintf(pct, sizeof pct, "%.0f", 100 * g / ceil.alltoall_gbps());
      }
      std::printf("%-17s %10.3f %12s %12s %8s\n", names[p], med[p] * 1e3, achieved, ceiling, pct);
    }
    std::printf("# ceilings: dense GEMM %.0f x (%d + %d) at width %d: %.3f ms (median, fastest GPU; slowest %.3f ms); "
                "ncclAlltoAll %.1f MB per rank: %.3f ms\n",
                static_cast<double>(mean_tokens) * model.top_k, model.w13_rows(), Dp, Dp, ceil.gemm_seconds * 1e3,
                ceil.gemm_seconds_slowest * 1e3, ceil.alltoall_bytes * 1e-6, ceil.alltoall_seconds * 1e3);
    std::printf("# per rank, median ms (rank 0 .. %d):", comm.size() - 1);
    for (int i = 0; i < kSkew; ++i) {
      std::printf(" %s", names[kSkewPhases[i]]);
      for (int r = 0; r < comm.size(); ++r)
        std::printf("%c%.3f", r ? '/' : ' ', per_rank[static_cast<std::size_t>(r) * kSkew + i] * 1e3);
      std::printf(";");
    }
    std::printf("\n# per rank, own pairs over own median time, %% of the ceiling (rank 0 .. %d):", comm.size() - 1);
    for (int i = 0; i < 3; ++i) {
      std::printf(" %s", names[kOwn[i]]);
      for (int r = 0; r < comm.size(); ++r)
        std::printf("%c%.0f", r ? '/' : ' ', own_pct_all[static_cast<std::size_t>(r) * 3 + i]);
      std::printf(";");
    }
    std::printf("\n");
    std::fputs(trace_text.c_str(), stdout);
    if (args.verify) std::printf("# verify: %s: %s\n", verified ? "PASSED" : "FAILED", verify_text.c_str());
    if (!args.json.empty()) {
      std::ofstream j(args.json);
      j << "{\"command\": \"" << args.command << "\", \"device\": \"" << devices[0] << "\", \"ranks\": " << comm.size()
        << ", \"preset\": \"" << args.preset << "\", \"mode\": \"" << to_string(args.mode)
        << "\", \"pad\": " << args.pad << ", \"placement\": \"" << to_string(args.placement)
        << "\", \"tokens_per_rank\": " << mean_tokens << ", \"rank_tokens\": [";
      for (int r = 0; r < comm.size(); ++r) j << (r ? ", " : "") << count_of(r);
      j << "], \"dispatch\": \""
        << (stats.symmetric_dispatch ? "symmetric" : "nccl") << "\", \"combine\": \""
        << (stats.symmetric_combine ? "symmetric" : "nccl") << "\""
        << ", \"iters\": " << args.iters << ", \"staged\": " << (args.staged ? "true" : "false")
        << ", \"gpu_lead_us\": " << args.gpu_lead_us << ", \"median_ms\": {";
      for (int p = 0; p < kPhases; ++p) j << (p ? ", " : "") << "\"" << names[p] << "\": " << med[p] * 1e3;
      j << "}, \"expert_tflops\": " << expert_tflops << ", \"experts_no_sum_tflops\": " << no_sum_tflops
        << ", \"expert_gemms_tflops\": " << gemm_tflops
        << ", \"combine_crit_gbps\": " << combine_crit_gbps << ", \"combine_a2a_crit_gbps\": " << combine_a2a_crit_gbps
        << ", \"gemm_ceiling_tflops\": " << ceil.gemm_tflops() << ", \"dispatch_gbps\": " << dispatch_gbps
        << ", \"combine_gbps\": " << combine_gbps << ", \"dispatch_a2a_gbps\": " << dispatch_a2a_gbps
        << ", \"combine_a2a_gbps\": " << combine_a2a_gbps << ", \"alltoall_ceiling_gbps\": " << ceil.alltoall_gbps()
        << ", \"dispatch_bytes_per_rank\": " << dispatch_bytes << ", \"pairs_per_rank\": " << pairs
        << ", \"device_gib\": " << device_gib
        << ", \"verified\": " << (args.verify ? (verified ? "true" : "false") : "null") << "}\n";
    }
  }
  return verified ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return epmoe::run_mpi_program(argc, argv, "epmoe_cuda_bench", [&](const epmoe::MpiComm& comm) {
    const char* why = epmoe::testing::gpu_skip_reason();
    if (comm.max(why != nullptr ? 1.0 : 0.0) > 0) {
      if (comm.rank() == 0) std::printf("# epmoe_cuda_bench: skipped: %s\n", why ? why : "another rank has no GPU");
      return 77;
    }
    return run(parse(argc, argv), comm);
  });
}
