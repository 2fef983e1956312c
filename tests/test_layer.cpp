// The CPU backend's layer against the float64 reference, across ranks (this binary runs under mpirun at 1-4 ranks):
// every mini preset x both modes x pad {0, 256} x both placements, and the edge cases. float32 tolerance: relative
// L2 error <= 1e-5.
#include <mpi.h>

#include "catch.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/weights.hpp"
#include "layer_check.hpp"

using namespace epmoe;
using testing::check_layer;
using testing::cpu_factory;

namespace {
constexpr double kTolerance = 1e-5;

MpiComm world() { return MpiComm(MPI_COMM_WORLD); }

// Uneven token counts, and rank 1 (when there is one) with no tokens at all.
int tokens_for(int rank, int base) { return rank == 1 ? 0 : base + 7 * rank; }
}  // namespace

TEST_CASE("every mini preset x mode x padding x placement equals the reference", "[layer]") {
  const MpiComm comm = world();
  std::uint64_t seed = 100;
  for (const std::string& name : mini_preset_names()) {
    const ModelConfig model = make_preset(name);
    for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
      for (int pad : {0, 256}) {
        for (Placement placement : {Placement::Linear, Placement::RoundRobin}) {
          const ParallelConfig parallel{mode, placement, pad, {}};
          const auto check = check_layer(model, parallel, comm, tokens_for(comm.rank(), 40), ++seed, cpu_factory());
          CAPTURE(name, to_string(mode), pad, to_string(placement), comm.size(), check.describe());
          REQUIRE(check.passed(kTolerance));
        }
      }
    }
  }
}

TEST_CASE("balanced placement from the loads a layer's routing measures equals the reference", "[layer][placement]") {
  const MpiComm comm = world();
  std::uint64_t seed = 300;
  for (const std::string name : {"deepseek-mini", "gpt-oss-mini"}) {
    const ModelConfig model = make_preset(name);
    const int E = model.num_experts, R = comm.size(), T = 48;
    const ParallelConfig linear{Mode::AllToAll, Placement::Linear, 0, {}};
    const ExpertPlacement lin(E, R, linear);
    const std::uint64_t weight_seed = ++seed;
    auto probe =
        make_cpu_layer(model, linear, comm, generate_layer_weights(model, weight_seed, 0, lin.experts_of(comm.rank())));
    const Matrix<float> x = generate_tokens(T, model.hidden_size, ++seed, T * comm.rank());
    const std::vector<double> loads = measure_expert_loads(*probe, x, comm, E);
    // What epmoe run measures instead (the router alone, on the host) is the layer's own choice.
    const Matrix<int> on_host = route_on_host(model, generate_layer_weights(model, weight_seed, 0, {}), x).ids;
    REQUIRE(on_host.size() == probe->last_routing().ids.size());
    REQUIRE(std::equal(on_host.data(), on_host.data() + on_host.size(), probe->last_routing().ids.data()));
    double pairs = 0;
    for (double l : loads) pairs += l;
    REQUIRE(pairs == static_cast<double>(T) * R * model.top_k);  // every rank's pairs, each counted once
    const ParallelConfig balanced{Mode::AllToAll, Placement::Balanced, 0, balanced_expert_owner(loads, R)};
    const std::vector<double> by_linear = rank_loads(loads, lin);
    const std::vector<double> by_balanced = rank_loads(loads, ExpertPlacement(E, R, balanced));
    CAPTURE(name, R, by_linear, by_balanced);
    REQUIRE(*std::max_element(by_balanced.begin(), by_balanced.end()) <=
            *std::max_element(by_linear.begin(), by_linear.end()));
    for (int pad : {0, 256}) {
      ParallelConfig p = balanced;
      p.pad_multiple = pad;
      const auto check = check_layer(model, p, comm, tokens_for(comm.rank(), 40), ++seed, cpu_factory());
      CAPTURE(pad, check.describe());
      REQUIRE(check.passed(kTolerance));
    }
  }
}

TEST_CASE("edge cases: one token, zero tokens everywhere but rank 0, all tokens on one expert", "[layer]") {
  const MpiComm comm = world();
  const ModelConfig model = make_preset("gpt-oss-mini");
  for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
    const ParallelConfig parallel{mode, Placement::Linear, 256, {}};
    SECTION(std::string("T = 1 on every rank, ") + to_string(mode)) {
      const auto check = check_layer(model, parallel, comm, 1, 7, cpu_factory());
      CAPTURE(check.describe());
      REQUIRE(check.passed(kTolerance));
    }
    SECTION(std::string("tokens only on rank 0, ") + to_string(mode)) {
      const auto check = check_layer(model, parallel, comm, comm.rank() == 0 ? 33 : 0, 8, cpu_factory());
      CAPTURE(check.describe());
      REQUIRE(check.passed(kTolerance));
    }
    SECTION(std::string("every token picks expert 3 first, ") + to_string(mode)) {
      // A router bias of +50 on expert 3 sends every token there (one expert, one rank gets all the work).
      const auto check = check_layer(model, parallel, comm, 29, 9, cpu_factory(),
                                     [](LayerWeights& w) { w.router_bias[3] = 50.0f; });
      CAPTURE(check.describe());
      REQUIRE(check.passed(kTolerance));
    }
  }
}

TEST_CASE("top_k equal to the experts per rank, gelu, and a latent model without shared experts", "[layer]") {
  const MpiComm comm = world();
  ModelConfig model = make_preset("mixtral-mini");
  model.num_experts = 3 * comm.size();
  model.top_k = 3;  // == experts per rank
  model.activation = Activation::Gelu;
  model.has_expert_bias = true;
  model.routed_scaling_factor = 1.5f;
  for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
    for (int pad : {0, 256}) {
      const auto check =
          check_layer(model, ParallelConfig{mode, Placement::RoundRobin, pad, {}}, comm, 17, 11, cpu_factory());
      CAPTURE(to_string(mode), pad, check.describe());
      REQUIRE(check.passed(kTolerance));
    }
  }
  ModelConfig latent = make_preset("latent-mini");
  latent.num_shared_experts = 0;
  latent.shared_intermediate_size = 0;
  for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
    const auto check =
        check_layer(latent, ParallelConfig{mode, Placement::Linear, 128, {}}, comm, 21, 12, cpu_factory());
    CAPTURE(to_string(mode), check.describe());
    REQUIRE(check.passed(kTolerance));
  }
}

// vLLM (PRs #40794, #40865): GPT-OSS pads 2880 -> 3072; with TP=2 the trimmed [T, 2880] view of the padded routed
// output reached the all-reduce, which crashed or returned garbage. Here: GPT-OSS-like (padded, no shared expert)
// in allreduce mode; the all-reduce must see one contiguous unpadded buffer and the result must equal the reference.
TEST_CASE("regression: GPT-OSS-like padded layer in allreduce mode (trimmed view reached the all-reduce)",
          "[regression][gpt-oss-regression]") {
  const MpiComm comm = world();
  const ModelConfig model = make_preset("gpt-oss-mini");  // D 180, not a multiple of 128; no shared expert
  for (int pad : {128, 256}) {
    const auto check =
        check_layer(model, ParallelConfig{Mode::AllReduce, Placement::Linear, pad, {}}, comm, 48, 21, cpu_factory());
    CAPTURE(pad, comm.size(), check.describe());
    REQUIRE(check.plan.find("all_reduce[180") != std::string::npos);
    REQUIRE(check.plan.find("180->256->180 trim") != std::string::npos);
    REQUIRE(check.passed(kTolerance));
  }
}

// vLLM (PR #45707): Nemotron-3 Nano pads 2688 -> 2816 and has a shared expert; the padded routed output met the
// shared-expert output as [T, 2816] + [T, 2688]. Here: Nemotron-like (padded, shared expert): the shared add must
// see width D on both sides and the result must equal the reference.
TEST_CASE("regression: Nemotron-like padded layer with a shared expert ([T,2816] + [T,2688])",
          "[regression][nemotron-regression]") {
  const MpiComm comm = world();
  const ModelConfig model = make_preset("nemotron-mini");  // D 168 -> 256 with pad 256
  for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
    const auto check =
        check_layer(model, ParallelConfig{mode, Placement::Linear, 256, {}}, comm, 40, 22, cpu_factory());
    CAPTURE(to_string(mode), comm.size(), check.describe());
    REQUIRE(check.plan.find("168->256->168 trim") != std::string::npos);
    REQUIRE(check.plan.find("shared_add[168]") != std::string::npos);
    REQUIRE(check.passed(kTolerance));
  }
}

TEST_CASE("alltoall of several ints per rank delivers each rank's block in rank order", "[comm]") {
  const MpiComm comm = world();
  const int R = comm.size();
  for (int per_rank : {1, 3, 17}) {
    // Block for rank d from rank s: per_rank values encoding (s, d, i).
    std::vector<int> send(static_cast<std::size_t>(R) * per_rank), recv(send.size(), -1);
    for (int d = 0; d < R; ++d)
      for (int i = 0; i < per_rank; ++i)
        send[static_cast<std::size_t>(d) * per_rank + i] = (comm.rank() * 64 + d) * 100 + i;
    comm.alltoall(send, recv, per_rank);
    bool ok = true;
    for (int s = 0; s < R; ++s)
      for (int i = 0; i < per_rank; ++i)
        ok = ok && recv[static_cast<std::size_t>(s) * per_rank + i] == (s * 64 + comm.rank()) * 100 + i;
    CAPTURE(per_rank, R);
    CHECK(ok);
  }
  // Buffers smaller than R * per_rank are refused before MPI sees them.
  std::vector<int> small(1), out(1);
  if (R > 1) CHECK_THROWS_AS(comm.alltoall(small, out, 1), Error);
}
