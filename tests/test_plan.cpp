// The unpad plan's invariants for every combination of padding x shared experts x latent x mode x ranks.
#include <set>

#include "catch.hpp"
#include "epmoe/plan.hpp"

using namespace epmoe;

TEST_CASE("the unpad plan holds its four invariants in every combination", "[plan]") {
  // Widths of the two real failures: GPT-OSS 2880 -> 3072 (pad 256), Nemotron-3 Nano 2688 -> 2816 (pad 256);
  // latent width 1000 -> 1024.
  for (int D : {2880, 2688}) {
    for (int pad : {0, 128, 256}) {
      for (bool shared : {false, true}) {
        for (bool latent : {false, true}) {
          for (Mode mode : {Mode::AllToAll, Mode::AllReduce}) {
            for (int ranks : {1, 2, 3, 4, 8}) {
              const int Din = latent ? 1000 : D;
              const UnpadPlan p = make_unpad_plan(PlanShape{D, Din, pad, shared, latent, mode, ranks});
              CAPTURE(D, pad, shared, latent, to_string(mode), ranks, p.one_line());
              const int Dp = p.expert_width_padded;
              REQUIRE(Dp == padded_width(Din, pad));
              REQUIRE(Dp % (pad ? pad : 1) == 0);
              REQUIRE(p.padded() == (Dp != Din));
              const std::set<int> unpadded = {D, Din, Din + D};
              int reductions = 0, scalings = 0, biases = 0, trims = 0, collectives = 0;
              bool experts_seen = false;
              for (const PlanStep& s : p.steps) {
                CAPTURE(to_string(s.stage));
                // Invariant 1: the shared add and the latent up-projection only see unpadded widths.
                if (s.stage == Stage::SharedAdd) {
                  REQUIRE(s.input_width == D);
                  REQUIRE(s.output_width == D);
                  REQUIRE(experts_seen);
                }
                if (s.stage == Stage::SharedSlice) {
                  REQUIRE((shared && latent && mode == Mode::AllReduce));
                  REQUIRE(s.output_width == D);
                }
                if (s.stage == Stage::LatentUp) {
                  REQUIRE(latent);
                  REQUIRE(s.input_width == Din);
                  REQUIRE(s.output_width == D);
                  REQUIRE(experts_seen);
                }
                // Invariant 2: no step outside the experts stage, and so no collective, sees the padded width.
                REQUIRE(unpadded.count(s.input_width) == 1);
                REQUIRE(unpadded.count(s.output_width) == 1);
                if (p.padded()) {
                  REQUIRE(s.input_width != Dp);
                  REQUIRE(s.output_width != Dp);
                }
                if (s.collective) {
                  ++collectives;
                  REQUIRE(ranks > 1);
                  REQUIRE((s.stage == Stage::Dispatch || s.stage == Stage::Combine || s.stage == Stage::AllReduce));
                }
                // Invariant 3: one reduction, one scaling, expert biases once.
                reductions += s.is_reduction;
                scalings += s.applies_routed_scaling;
                biases += s.adds_expert_bias;
                trims += s.trims;
                if (s.trims) REQUIRE(s.stage == Stage::Experts);
                if (s.stage == Stage::Experts) experts_seen = true;
                // Nothing after the experts stage ever feeds a collective before the trim: the trim is inside it.
                if (s.stage == Stage::Combine || s.stage == Stage::AllReduce) REQUIRE(experts_seen);
              }
              REQUIRE(reductions == 1);
              REQUIRE(scalings == 1);
              REQUIRE(biases == 1);
              REQUIRE(trims == (p.padded() ? 1 : 0));
              REQUIRE(collectives == (ranks > 1 ? (mode == Mode::AllToAll ? 2 : 1) : 0));
              // Invariant 4: the layer's output width is D.
              REQUIRE(p.steps.back().output_width == D);
              // allreduce: the one buffer holds the shared partial too when it cannot be added before (latent).
              if (mode == Mode::AllReduce) {
                REQUIRE(p.shared_added_before_reduce == (shared && !latent));
                REQUIRE(p.reduce_width == Din + (shared && latent ? D : 0));
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("the plan's one-line summary shows the trim inside the experts stage", "[plan]") {
  const UnpadPlan p = make_unpad_plan(PlanShape{2688, 2688, 256, true, false, Mode::AllToAll, 2});
  REQUIRE(p.one_line() ==
          "route[2688] > dispatch[2688, collective] > experts[2688->2816->2688 trim] > combine[2688, collective] > "
          "shared_add[2688]");
}
