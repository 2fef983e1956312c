// Configuration, presets and expert placement.
#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>

#include "catch.hpp"
#include "cuda/env.cuh"
#include "epmoe/config.hpp"
#include "epmoe/error.hpp"
#include "epmoe/placement.hpp"
#include "epmoe/presets.hpp"

using namespace epmoe;

namespace {
// The message of the epmoe::Error that `f` throws ("" when it throws nothing).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("every preset validates and mini presets keep their family's width alignment", "[config]") {
  for (const auto& p : list_presets()) {
    INFO(p.name);
    const ModelConfig c = make_preset(p.name);
    REQUIRE_NOTHROW(c.validate());
    if (p.mini) REQUIRE(c.hidden_size <= 512);
  }
  // Real GPT-OSS (2880) and Nemotron-3 Nano (2688) widths are not multiples of 256 (the kernels' alignment);
  // neither are their minis' (nor of 128).
  REQUIRE(make_preset("gpt-oss-120b").hidden_size % 256 != 0);
  REQUIRE(make_preset("nemotron-3-nano").hidden_size % 256 != 0);
  REQUIRE(make_preset("gpt-oss-mini").hidden_size % 128 != 0);
  REQUIRE(make_preset("nemotron-mini").hidden_size % 128 != 0);
  REQUIRE(make_preset("latent-mini").latent_size % 128 != 0);
  REQUIRE(make_preset("gpt-oss-120b").hidden_size == 2880);
  REQUIRE(make_preset("nemotron-3-nano").hidden_size == 2688);
  const ModelConfig ds = make_preset("deepseek-mini");
  REQUIRE(ds.topk_method == TopkMethod::Grouped);
  REQUIRE(ds.has_correction_bias);
  REQUIRE(ds.routed_scaling_factor == 2.5f);
  REQUIRE(ds.num_shared_experts == 1);
  REQUIRE(make_preset("qwen3-mini").top_k == 8);
  REQUIRE(make_preset("mixtral-mini").top_k == 2);
  REQUIRE(make_preset("latent-mini").has_latent());
  REQUIRE(make_preset("gpt-oss-mini").has_expert_bias);
}

TEST_CASE("unknown preset and bad enum values name the flag and the accepted values", "[config]") {
  const std::string e = error_of([] { make_preset("gpt-5", "--preset"); });
  REQUIRE(contains(e, "--preset"));
  REQUIRE(contains(e, "gpt-oss-mini"));
  REQUIRE(contains(error_of([] { parse_mode("broadcast", "--mode"); }), "alltoall"));
  REQUIRE(contains(error_of([] { parse_activation("tanh", "activation"); }), "swigluoai"));
}

TEST_CASE("validate() names the attribute at fault", "[config]") {
  ModelConfig c = make_preset("qwen3-mini");
  SECTION("top_k > num_experts") {
    c.top_k = c.num_experts + 1;
    REQUIRE(contains(error_of([&] { c.validate("file.h5"); }), "top_k"));
    REQUIRE(contains(error_of([&] { c.validate("file.h5"); }), "file.h5"));
  }
  SECTION("n_group not dividing E") {
    c.topk_method = TopkMethod::Grouped;
    c.n_group = 5;
    c.topk_group = 2;
    REQUIRE(contains(error_of([&] { c.validate(); }), "n_group"));
  }
  SECTION("groups too small for top_k") {
    c.topk_method = TopkMethod::Grouped;
    c.n_group = 8;
    c.topk_group = 1;  // 4 experts < top_k 8
    REQUIRE(contains(error_of([&] { c.validate(); }), "topk_group"));
  }
  SECTION("shared experts without a width") {
    c.num_shared_experts = 1;
    c.shared_intermediate_size = 0;
    REQUIRE(contains(error_of([&] { c.validate(); }), "shared_intermediate_size"));
  }
  SECTION("zero sizes") {
    c.hidden_size = 0;
    REQUIRE(contains(error_of([&] { c.validate(); }), "hidden_size"));
  }
}

TEST_CASE("parallel config: more ranks than experts and bad padding are refused", "[config]") {
  const ModelConfig c = make_preset("mixtral-mini");  // 8 experts
  ParallelConfig p;
  REQUIRE_NOTHROW(p.validate(c, 8));
  const std::string e = error_of([&] { p.validate(c, 9); });
  REQUIRE(contains(e, "more ranks (9) than experts (8)"));
  p.pad_multiple = 5000;
  REQUIRE(contains(error_of([&] { p.validate(c, 2); }), "--pad-multiple"));
}

TEST_CASE("padded_width rounds up to the multiple", "[config]") {
  REQUIRE(padded_width(2880, 256) == 3072);
  REQUIRE(padded_width(2688, 256) == 2816);
  REQUIRE(padded_width(2688, 128) == 2688);
  REQUIRE(padded_width(2688, 0) == 2688);
  REQUIRE(padded_width(256, 256) == 256);
}

TEST_CASE("placement: every expert has exactly one owner, local indices ascend", "[placement]") {
  for (Placement kind : {Placement::Linear, Placement::RoundRobin}) {
    for (int E : {1, 7, 8, 16, 33}) {
      for (int R = 1; R <= E && R <= 9; ++R) {
        CAPTURE(to_string(kind), E, R);
        const ExpertPlacement pl(E, R, kind);
        std::set<int> seen;
        int max_count = 0, min_count = E;
        for (int r = 0; r < R; ++r) {
          const auto& experts = pl.experts_of(r);
          REQUIRE(!experts.empty());
          max_count = std::max<int>(max_count, static_cast<int>(experts.size()));
          min_count = std::min<int>(min_count, static_cast<int>(experts.size()));
          for (size_t i = 0; i < experts.size(); ++i) {
            REQUIRE(pl.owner(experts[i]) == r);
            REQUIRE(pl.local_index(experts[i]) == static_cast<int>(i));
            if (i) REQUIRE(experts[i] > experts[i - 1]);
            seen.insert(experts[i]);
          }
        }
        REQUIRE(static_cast<int>(seen.size()) == E);
        REQUIRE(max_count - min_count <= 1);
      }
    }
  }
  // linear: the remainder goes to the first ranks, in contiguous blocks.
  const ExpertPlacement lin(10, 4, Placement::Linear);
  REQUIRE(lin.experts_of(0) == std::vector<int>{0, 1, 2});
  REQUIRE(lin.experts_of(1) == std::vector<int>{3, 4, 5});
  REQUIRE(lin.experts_of(2) == std::vector<int>{6, 7});
  REQUIRE(lin.experts_of(3) == std::vector<int>{8, 9});
  const ExpertPlacement rr(10, 4, Placement::RoundRobin);
  REQUIRE(rr.experts_of(1) == std::vector<int>{1, 5, 9});
  REQUIRE(contains(error_of([] { ExpertPlacement(4, 5, Placement::Linear); }), "more ranks (5) than experts (4)"));
}

TEST_CASE("balanced placement: linear's expert counts, the heaviest spread first, strict owner maps", "[placement]") {
  // Loads of 12 experts on 3 ranks (4 each): linear puts the three heaviest (0, 1, 2) on rank 0.
  const std::vector<double> loads = {90, 80, 70, 10, 10, 10, 10, 10, 5, 5, 5, 5};
  const std::vector<int> owner = balanced_expert_owner(loads, 3);
  REQUIRE(owner == balanced_expert_owner(loads, 3));  // deterministic
  ParallelConfig parallel;
  parallel.placement = Placement::Balanced;
  parallel.expert_owner = owner;
  const ExpertPlacement pl(12, 3, parallel);
  REQUIRE(pl.kind() == Placement::Balanced);
  REQUIRE(pl.owner(0) != pl.owner(1));
  REQUIRE(pl.owner(1) != pl.owner(2));
  REQUIRE(pl.owner(0) != pl.owner(2));
  const std::vector<double> by_balanced = rank_loads(loads, pl);
  const std::vector<double> by_linear = rank_loads(loads, ExpertPlacement(12, 3, Placement::Linear));
  REQUIRE(by_linear == std::vector<double>{250, 40, 20});
  REQUIRE(*std::max_element(by_balanced.begin(), by_balanced.end()) == 105);  // the best split (greedy alone: 110)
  for (int r = 0; r < 3; ++r) {
    REQUIRE(pl.experts_of(r).size() == 4u);
    for (std::size_t i = 1; i < pl.experts_of(r).size(); ++i) REQUIRE(pl.experts_of(r)[i] > pl.experts_of(r)[i - 1]);
  }
  // Uneven: 7 experts on 3 ranks keep linear's 3, 2, 2.
  const ExpertPlacement seven(
      7, 3, ParallelConfig{Mode::AllToAll, Placement::Balanced, 0, balanced_expert_owner({1, 1, 1, 1, 1, 1, 9}, 3)});
  REQUIRE(seven.experts_of(0).size() == 3u);
  REQUIRE(seven.experts_of(1).size() == 2u);
  REQUIRE(seven.experts_of(2).size() == 2u);
  REQUIRE(to_string(parse_placement("balanced", "--placement")) == std::string("balanced"));
  // Owner maps that cannot hold, and balanced without one.
  const auto with_owner = [](std::vector<int> o) {
    return [o] { ExpertPlacement(4, 2, ParallelConfig{Mode::AllToAll, Placement::Balanced, 0, o}); };
  };
  REQUIRE(contains(error_of(with_owner({0, 1, 0})), "3 entries for 4 experts"));
  REQUIRE(contains(error_of(with_owner({0, 1, 2, 0})), "expert 2 has owner 2, outside the 2 ranks"));
  REQUIRE(contains(error_of(with_owner({0, 0, 0, 1})), "as many experts as linear placement"));
  REQUIRE(contains(error_of([] { ExpertPlacement(4, 2, Placement::Balanced); }), "needs the experts' owner map"));
  REQUIRE(contains(error_of([] { balanced_expert_owner({1, 2}, 3); }), "more ranks (3) than experts (2)"));
  ParallelConfig no_map;
  no_map.placement = Placement::Balanced;
  REQUIRE(
      contains(error_of([&] { no_map.validate(make_preset("qwen3-mini"), 2); }), "placement balanced needs the owner"));
  ParallelConfig stray;
  stray.expert_owner = {0, 1};
  REQUIRE(
      contains(error_of([&] { stray.validate(make_preset("qwen3-mini"), 2); }), "it belongs to placement balanced"));
}

TEST_CASE("the CUDA backend's environment settings are parsed strictly", "[config]") {
  // env.cuh is plain C++: its parsers are tested here, where CI runs them (its GPU tests skip without a GPU).
  const char* name = "EPMOE_TEST_SETTING";
  unsetenv(name);
  CHECK(cuda::env_number(name, 4, 1, 32, true, "1..32") == 4);
  CHECK(cuda::env_choice(name, {"a", "b"}) == 0);
  setenv(name, "7", 1);
  CHECK(cuda::env_number(name, 4, 1, 32, true, "1..32") == 7);
  setenv(name, "0.75", 1);
  CHECK(cuda::env_number(name, 0.9, 0.5, 1.0, false, "a number in [0.5, 1]") == 0.75);
  for (const char* bad : {"", "x", "7x", "33", "0", "1.5"}) {
    setenv(name, bad, 1);
    INFO("'" << bad << "'");
    CHECK(contains(error_of([&] { cuda::env_number(name, 4, 1, 32, true, "1..32"); }),
                   "EPMOE_TEST_SETTING must be 1..32, found '" + std::string(bad) + "'"));
  }
  setenv(name, "b", 1);
  CHECK(cuda::env_choice(name, {"a", "b"}) == 1);
  setenv(name, "c", 1);
  CHECK(contains(error_of([&] { cuda::env_choice(name, {"a", "b"}); }), "must be one of a | b, found 'c'"));
  unsetenv(name);
}
