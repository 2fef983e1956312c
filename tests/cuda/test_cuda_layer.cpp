// The whole CUDA layer: every mini preset x {alltoall, allreduce} x pad {0, 256} against the float64 reference
// (computed on the bf16-rounded weights and inputs the GPU sees, so the comparison is fair), against the CPU
// backend on the same inputs, deterministic across two forwards, and device-generated synthetic weights equal to
// generate_layer_weights(). Run at 1, 2 and 4 ranks.
#include <algorithm>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "catch.hpp"
#include "epmoe/cuda_layer.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/reference.hpp"
#include "epmoe/routing.hpp"
#include "gpu_test_support.hpp"

namespace epmoe::testing {
namespace {

// bf16 arithmetic through the layer (inputs, weights, h, activations, outputs, the combine): rel L2 well under 1e-2.
constexpr double kTolerance = 1e-2;

struct Outcome {
  VerifyReport gpu;        // GPU vs float64 reference
  double gpu_vs_cpu = 0;   // ||gpu - cpu|| / ||cpu||
  long cpu_gpu_topk_differ = 0;
  bool deterministic = true;
  bool ranks_agree = true;  // allreduce: every rank holds rank 0's output
  std::string plan;
};

Matrix<float> tokens_for(const ModelConfig& model, const ParallelConfig& parallel, const MpiComm& comm,
                         std::uint64_t seed) {
  const bool alltoall = parallel.mode == Mode::AllToAll;
  // Uneven counts per rank (alltoall) and more tokens than the buffers start with (growth is exercised).
  const int count = alltoall ? 70 + 23 * comm.rank() : 101;
  long first = 0;
  if (alltoall) {
    long mine = count;
    MPI_Exscan(&mine, &first, 1, MPI_LONG, MPI_SUM, comm.handle());
    if (comm.rank() == 0) first = 0;
  }
  Matrix<float> x = generate_tokens(count, model.hidden_size, seed ^ 0x5eedull, first);
  round_bf16(x);
  return x;
}

// The layer's weights as the GPU holds them (rounded to bf16), all experts, and this rank's shard of them.
struct CaseWeights {
  LayerWeights full, shard;
};
CaseWeights case_weights(const ModelConfig& model, const ParallelConfig& parallel, const MpiComm& comm,
                         std::uint64_t seed) {
  CaseWeights w;
  w.full = generate_layer_weights(model, seed, 0, all_experts(model));
  round_gpu_weights(w.full);
  const ExpertPlacement placement(model.num_experts, comm.size(), parallel);
  w.shard = slice_experts(model, w.full, placement.experts_of(comm.rank()));
  return w;
}

Outcome run_case(const ModelConfig& model, const ParallelConfig& parallel, const MpiComm& comm, std::uint64_t seed) {
  const CaseWeights weights = case_weights(model, parallel, comm, seed);
  const LayerWeights& full = weights.full;
  const LayerWeights& shard = weights.shard;
  CudaOptions options;
  options.max_tokens = 48;
  auto gpu = make_cuda_layer(model, parallel, comm, shard, options);
  auto cpu = make_cpu_layer(model, parallel, comm, shard);
  const Matrix<float> x = tokens_for(model, parallel, comm, seed);

  const Matrix<float> y = gpu->forward(x);
  const Matrix<int> ids = gpu->last_routing().ids;
  const Matrix<float> y_again = gpu->forward(x);
  const Matrix<float> y_cpu = cpu->forward(x);
  const Matrix<int> ids_cpu = cpu->last_routing().ids;

  Outcome o;
  o.plan = gpu->plan().one_line();
  int same = y.storage() == y_again.storage() ? 1 : 0, all_same = 0;
  MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, comm.handle());
  o.deterministic = all_same == 1;
  const bool alltoall = parallel.mode == Mode::AllToAll;
  if (!alltoall) {
    Matrix<float> y0 = y;
    MPI_Bcast(y0.data(), static_cast<int>(y0.size()), MPI_FLOAT, 0, comm.handle());
    int agree = y0.storage() == y.storage() ? 1 : 0, all_agree = 0;
    MPI_Allreduce(&agree, &all_agree, 1, MPI_INT, MPI_MIN, comm.handle());
    o.ranks_agree = all_agree == 1;
  }
  const Matrix<float> all_x = alltoall ? comm.gather_rows(x, 0) : x;
  const Matrix<float> all_y = alltoall ? comm.gather_rows(y, 0) : y;
  const Matrix<float> all_y_cpu = alltoall ? comm.gather_rows(y_cpu, 0) : y_cpu;
  const Matrix<int> all_ids = alltoall ? comm.gather_rows(ids, 0) : ids;
  const Matrix<int> all_ids_cpu = alltoall ? comm.gather_rows(ids_cpu, 0) : ids_cpu;
  double numbers[8] = {};
  if (comm.rank() == 0) {
    const VerifyReport r = verify_layer(model, full, all_x, all_y, all_ids);
    long differ = 0;
    for (int t = 0; t < all_ids.rows(); ++t) {
      std::vector<int> a(all_ids.row(t), all_ids.row(t) + model.top_k),
          b(all_ids_cpu.row(t), all_ids_cpu.row(t) + model.top_k);
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      differ += a != b;
    }
    numbers[0] = r.rel_l2_error;
    numbers[1] = r.max_abs_error;
    numbers[2] = static_cast<double>(r.tokens);
    numbers[3] = static_cast<double>(r.topk_mismatched_tokens);
    numbers[4] = static_cast<double>(r.near_tie_tokens);
    numbers[5] = r.nonfinite;
    numbers[6] = rel_l2(all_y.data(), all_y_cpu.data(), all_y.size());
    numbers[7] = static_cast<double>(differ);
  }
  MPI_Bcast(numbers, 8, MPI_DOUBLE, 0, comm.handle());
  o.gpu.rel_l2_error = numbers[0];
  o.gpu.max_abs_error = numbers[1];
  o.gpu.tokens = static_cast<long>(numbers[2]);
  o.gpu.topk_mismatched_tokens = static_cast<long>(numbers[3]);
  o.gpu.near_tie_tokens = static_cast<long>(numbers[4]);
  o.gpu.nonfinite = numbers[5] != 0;
  o.gpu_vs_cpu = numbers[6];
  o.cpu_gpu_topk_differ = static_cast<long>(numbers[7]);
  return o;
}

}  // namespace

TEST_CASE("CUDA layer equals the float64 reference and the CPU backend for every mini preset, mode and pad",
          "[cuda][layer]") {
  const MpiComm comm;
  const std::uint64_t seed = fresh_seed(comm, "cuda layer");
  // The ways the experts' GEMMs run (gemm.cuh), in turn over the cases (mode + pad + preset): every preset meets
  // every way, and every way meets both modes and both pads. (cutlass with an unaligned width, which it hands to
  // cuBLAS, is in the next test case.)
  const std::vector<std::string> gemms = cuda_expert_gemm_choices();
  std::size_t preset_index = 0;
  for (const std::string& name : mini_preset_names()) {
    const ModelConfig model = make_preset(name);
    for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
      for (int pad : {0, 256}) {
        ParallelConfig parallel;
        parallel.mode = mode;
        parallel.pad_multiple = pad;
        // Padded cases place the experts round-robin (allreduce) or balanced for made-up skewed loads (alltoall).
        parallel.placement = !pad                      ? Placement::Linear
                             : mode == Mode::AllReduce ? Placement::RoundRobin
                                                       : Placement::Balanced;
        if (parallel.placement == Placement::Balanced) {
          std::vector<double> loads(model.num_experts);
          for (int e = 0; e < model.num_experts; ++e) loads[e] = 1 + (e * 37) % 11;
          parallel.expert_owner = balanced_expert_owner(loads, comm.size());
        }
        const char* gemm =
            gemms[(preset_index + (mode == Mode::AllReduce ? 1 : 0) + (pad ? 1 : 0)) % gemms.size()].c_str();
        // alltoall: the two dispatches in turn over pad and preset (allreduce has no dispatch).
        const char* dispatch =
            mode == Mode::AllReduce ? "-" : ((preset_index + (pad ? 1 : 0)) % 2 ? "nccl" : "symmetric");
        setenv("EPMOE_CUDA_EXPERT_GEMM", gemm, 1);
        if (mode == Mode::AllToAll) setenv("EPMOE_CUDA_DISPATCH", dispatch, 1);
        const Outcome o = run_case(model, parallel, comm, seed);
        unsetenv("EPMOE_CUDA_EXPERT_GEMM");
        unsetenv("EPMOE_CUDA_DISPATCH");
        if (comm.rank() == 0)
          std::printf("# ranks=%d %-14s %-9s pad=%-3d placement=%-11s gemm=%-7s dispatch=%-9s gpu-vs-f64: %s | "
                      "gpu-vs-cpu rel_l2=%.3g topk_differ=%ld\n",
                      comm.size(), name.c_str(), to_string(mode), pad, to_string(parallel.placement), gemm, dispatch,
                      o.gpu.describe().c_str(), o.gpu_vs_cpu, o.cpu_gpu_topk_differ);
        INFO(name << " " << to_string(mode) << " pad " << pad << " gemm " << gemm << " dispatch " << dispatch
                  << " ranks " << comm.size() << ": " << o.gpu.describe() << " plan: " << o.plan);
        CHECK(o.gpu.passed(kTolerance));
        CHECK(o.gpu_vs_cpu <= kTolerance);
        CHECK(o.deterministic);
        CHECK(o.ranks_agree);
      }
    }
    ++preset_index;
  }
}

TEST_CASE("Grouped expert GEMMs under skewed routing (several buckets) equal the reference and the compact layouts",
          "[cuda][layer][grouped]") {
  const MpiComm comm;
  const std::uint64_t seed = fresh_seed(comm, "grouped gemm");
  int most_buckets = 0;  // over the cases: at least one must have made several (some ranks' experts may be even)
  // Zipf-skewed expert choice: the hot experts get hundreds of pairs each, the tail a few, so the grouped layout
  // forms several buckets (and pads); gpt-oss-mini has expert biases (the activation finds each row's expert) and,
  // unpadded, the width 180 that the CUTLASS GEMM cannot take (TMA rows of 16-byte multiples): cutlass mode hands
  // both its GEMMs to cuBLAS there, and runs qwen3-mini's (padded to 256) itself.
  for (const std::string name : {"gpt-oss-mini", "qwen3-mini"}) {
    const ModelConfig model = make_preset(name);
    for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
      ParallelConfig parallel;
      parallel.mode = mode;
      parallel.pad_multiple = name == "gpt-oss-mini" ? 0 : 256;
      const CaseWeights weights = case_weights(model, parallel, comm, seed);
      const LayerWeights& full = weights.full;
      const LayerWeights& shard = weights.shard;
      const bool alltoall = mode == Mode::AllToAll;
      const int T = 1500;
      const long first = alltoall ? static_cast<long>(T) * comm.rank() : 0;
      Matrix<float> x = generate_tokens(T, model.hidden_size, seed ^ 0x5eedull, first);
      round_bf16(x);
      const Matrix<int> ids =
          synthetic_expert_ids(model, parse_routing_skew("zipf:1.2", "test"), T, first, seed ^ 0xB1A5ull);
      // Every way the experts' GEMMs run in this build; grouped first (the others use the compact layout).
      const std::vector<std::string> gemms = cuda_expert_gemm_choices();
      const std::size_t G = gemms.size();
      std::vector<Matrix<float>> y(G);
      std::vector<CudaLayerStats> stats(G);
      for (std::size_t g = 0; g < G; ++g) {
        setenv("EPMOE_CUDA_EXPERT_GEMM", gemms[g].c_str(), 1);
        CudaOptions options;
        options.max_tokens = T;
        auto gpu = make_cuda_layer(model, parallel, comm, shard, options);
        unsetenv("EPMOE_CUDA_EXPERT_GEMM");
        gpu->force_expert_ids(&ids);
        y[g] = gpu->forward(x);
        stats[g] = cuda_layer_stats(*gpu);
      }
      const Matrix<float> all_x = alltoall ? comm.gather_rows(x, 0) : x;
      const Matrix<int> all_id = alltoall ? comm.gather_rows(ids, 0) : ids;
      std::vector<double> vs_reference(G, 0.0), vs_grouped(G, 0.0);
      for (std::size_t g = 0; g < G; ++g) {
        const Matrix<float> all_y = alltoall ? comm.gather_rows(y[g], 0) : y[g];
        if (comm.rank() == 0) {
          const VerifyReport r = verify_layer(model, full, all_x, all_y, all_id, 1e-4, true);
          vs_reference[g] = r.passed(kTolerance) ? r.rel_l2_error : -1.0;
        }
        vs_grouped[g] = comm.max(rel_l2(y[g].data(), y[0].data(), y[0].size()));
      }
      MPI_Bcast(vs_reference.data(), static_cast<int>(G), MPI_DOUBLE, 0, comm.handle());
      const int buckets = static_cast<int>(comm.max(static_cast<double>(stats[0].gemm_buckets)));
      if (comm.rank() == 0) {
        std::printf("# ranks=%d %-12s %-9s zipf:1.2 grouped: %d buckets, %zu rows for %zu pairs, rel_l2 %.3g", comm.size(),
                    name.c_str(), to_string(mode), stats[0].gemm_buckets, stats[0].gemm_rows, stats[0].pairs_processed,
                    vs_reference[0]);
        for (std::size_t g = 1; g < G; ++g)
          std::printf(" | %s: rel_l2 %.3g, vs grouped %.3g", gemms[g].c_str(), vs_reference[g], vs_grouped[g]);
        std::printf("\n");
      }
      INFO(name << " " << to_string(mode) << " ranks " << comm.size());
      most_buckets = std::max(most_buckets, buckets);
      CHECK(stats[0].gemm_rows >= stats[0].pairs_processed);
      for (std::size_t g = 0; g < G; ++g) {
        INFO("gemm " << gemms[g]);
        if (g > 0) CHECK(stats[g].gemm_rows == stats[g].pairs_processed);
        CHECK(vs_reference[g] >= 0);
        CHECK(vs_grouped[g] <= kTolerance);
      }
    }
  }
  CHECK(most_buckets > 1);
}

TEST_CASE("The symmetric dispatch and combine equal NCCL's over forwards of changing sizes",
          "[cuda][layer][dispatch]") {
  const MpiComm comm;
  const std::uint64_t seed = fresh_seed(comm, "symmetric dispatch");
  // deepseek-mini: shared expert beside the dispatch, grouped router; gpt-oss-mini: width 180 (rows of 360 bytes,
  // not 16-byte multiples). Per forward the ranks hold different token counts, one forward leaves rank 1 (or the
  // only rank) without tokens, and one exceeds max_tokens: every window grows, collectively. The last gives rank 0
  // alone 400 tokens: at several ranks it then sends more rows than a window held, while each rank receives fewer
  // (only the sending side of the overflow test sees it; the combine's rows come back into that window).
  for (const std::string name : {"deepseek-mini", "gpt-oss-mini"}) {
    const ModelConfig model = make_preset(name);
    ParallelConfig parallel;
    parallel.mode = Mode::AllToAll;
    const CaseWeights weights = case_weights(model, parallel, comm, seed);
    const LayerWeights& full = weights.full;
    const LayerWeights& shard = weights.shard;
    CudaOptions options;
    options.max_tokens = 48;
    setenv("EPMOE_CUDA_DISPATCH", "nccl", 1);
    auto by_nccl = make_cuda_layer(model, parallel, comm, shard, options);
    setenv("EPMOE_CUDA_DISPATCH", "symmetric", 1);
    auto by_window = make_cuda_layer(model, parallel, comm, shard, options);  // and the combine (auto)
    setenv("EPMOE_CUDA_COMBINE", "nccl", 1);
    auto by_window_nccl_combine = make_cuda_layer(model, parallel, comm, shard, options);
    unsetenv("EPMOE_CUDA_COMBINE");
    // The shared expert (deepseek-mini) started beside the push instead of once this rank's rows are sent.
    setenv("EPMOE_CUDA_SHARED_START", "push", 1);
    auto by_window_pushed = make_cuda_layer(model, parallel, comm, shard, options);
    unsetenv("EPMOE_CUDA_SHARED_START");
    unsetenv("EPMOE_CUDA_DISPATCH");
    // The symmetric combine needs the symmetric dispatch's windows: asked for without them, every rank gets a usage
    // error that names the setting (before any collective, so no rank waits for another).
    setenv("EPMOE_CUDA_DISPATCH", "nccl", 1);
    setenv("EPMOE_CUDA_COMBINE", "symmetric", 1);
    std::string refused;
    try {
      make_cuda_layer(model, parallel, comm, shard, options);
    } catch (const Error& e) {
      refused = e.what();
    }
    unsetenv("EPMOE_CUDA_COMBINE");
    unsetenv("EPMOE_CUDA_DISPATCH");
    CHECK(refused.find("EPMOE_CUDA_COMBINE=symmetric needs the symmetric dispatch") != std::string::npos);
    CHECK_FALSE(cuda_layer_stats(*by_nccl).symmetric_dispatch);
    CHECK(cuda_layer_stats(*by_window).symmetric_dispatch);
    CHECK(cuda_layer_stats(*by_window).symmetric_combine);
    CHECK(cuda_layer_stats(*by_window_nccl_combine).symmetric_dispatch);
    CHECK_FALSE(cuda_layer_stats(*by_window_nccl_combine).symmetric_combine);
    CHECK_FALSE(cuda_layer_stats(*by_nccl).symmetric_combine);
    const int sizes[] = {40, 0, 48, 150, 7, 150, -400};
    int window_before = 0;
    for (int f = 0; f < 7; ++f) {
      const int T = sizes[f] < 0   ? (comm.rank() == 0 ? -sizes[f] : 0)
                    : sizes[f] == 0 ? (comm.rank() == std::min(1, comm.size() - 1) ? 0 : 30)
                                    : sizes[f] + 5 * comm.rank();
      const long first = 100000L * f + 1000L * comm.rank();  // distinct tokens everywhere
      Matrix<float> x = generate_tokens(T, model.hidden_size, seed ^ 0xd15ull, first);
      round_bf16(x);
      const Matrix<float> y_nccl = by_nccl->forward(x);
      const Matrix<float> y_window = by_window->forward(x);
      const Matrix<float> y_pushed = by_window_pushed->forward(x);
      const Matrix<float> y_nccl_combine = by_window_nccl_combine->forward(x);
      const double differ = comm.max(T ? rel_l2(y_window.data(), y_nccl.data(), y_nccl.size()) : 0.0);
      const double differ_pushed = comm.max(T ? rel_l2(y_pushed.data(), y_nccl.data(), y_nccl.size()) : 0.0);
      const double differ_nccl_combine =
          comm.max(T ? rel_l2(y_nccl_combine.data(), y_nccl.data(), y_nccl.size()) : 0.0);
      const Matrix<float> all_x = comm.gather_rows(x, 0);
      const Matrix<float> all_y = comm.gather_rows(y_window, 0);
      const Matrix<int> all_ids = comm.gather_rows(by_window->last_routing().ids, 0);
      double vs_reference = 0;
      if (comm.rank() == 0) {
        const VerifyReport r = verify_layer(model, full, all_x, all_y, all_ids, 1e-4, true);
        vs_reference = r.passed(kTolerance) ? r.rel_l2_error : -1.0;
      }
      MPI_Bcast(&vs_reference, 1, MPI_DOUBLE, 0, comm.handle());
      if (comm.rank() == 0)
        std::printf("# ranks=%d %-13s forward %d, %d tokens on rank 0: symmetric vs nccl rel_l2 %.3g, vs f64 %.3g\n",
                    comm.size(), name.c_str(), f, T, differ, vs_reference);
      INFO(name << " forward " << f << " ranks " << comm.size());
      CHECK(differ == 0.0);  // the same rows in the same order: the same arithmetic
      CHECK(differ_pushed == 0.0);
      CHECK(differ_nccl_combine == 0.0);
      CHECK(vs_reference >= 0);
      // The windows grow when a forward's counts need it (every rank sees it in the same counts; no rank asks the
      // others first): by forward 3 (150 tokens per rank, beyond max_tokens) they hold more than they started with.
      const int window = cuda_layer_stats(*by_window).symmetric_window_tokens;
      if (f < 3) CHECK(window >= options.max_tokens);
      else CHECK(window > options.max_tokens);
      if (f == 6) CHECK(window > window_before);  // rank 0's 400 tokens did not fit what forward 5 left
      window_before = window;
    }
  }
}

TEST_CASE("Device-generated synthetic weights equal generate_layer_weights()", "[cuda][synthetic]") {
  const MpiComm comm;
  const std::uint64_t seed = fresh_seed(comm, "synthetic weights");
  for (const std::string& name : mini_preset_names()) {
    const ModelConfig model = make_preset(name);
    for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
      ParallelConfig parallel;
      parallel.mode = mode;
      parallel.pad_multiple = 256;
      const ExpertPlacement placement(model.num_experts, comm.size(), parallel);
      const LayerWeights shard = generate_layer_weights(model, seed, 3, placement.experts_of(comm.rank()));
      auto uploaded = make_cuda_layer(model, parallel, comm, shard, CudaOptions{});
      auto generated = make_cuda_layer_synthetic(model, parallel, comm, seed, 3, CudaOptions{});
      Matrix<float> x = generate_tokens(64, model.hidden_size, seed + 1, 64 * comm.rank());
      const Matrix<float> a = uploaded->forward(x);
      const Matrix<float> b = generated->forward(x);
      INFO(name << " " << to_string(mode));
      CHECK(a.storage() == b.storage());
      CHECK(uploaded->last_routing().ids.storage() == generated->last_routing().ids.storage());
    }
  }
}

}  // namespace epmoe::testing
