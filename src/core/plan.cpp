#include "epmoe/plan.hpp"

#include <sstream>

#include "epmoe/error.hpp"

namespace epmoe {

const char* to_string(Stage s) {
  switch (s) {
    case Stage::Route: return "route";
    case Stage::LatentDown: return "latent_down";
    case Stage::Dispatch: return "dispatch";
    case Stage::SelectLocal: return "select_local";
    case Stage::Experts: return "experts";
    case Stage::Combine: return "combine";
    case Stage::SharedAdd: return "shared_add";
    case Stage::SharedSlice: return "shared_slice";
    case Stage::AllReduce: return "all_reduce";
    case Stage::LatentUp: return "latent_up";
  }
  return "?";
}

UnpadPlan make_unpad_plan(const PlanShape& s) {
  EPMOE_ASSERT(s.hidden_size > 0 && s.expert_width > 0 && s.num_ranks >= 1, "plan shape");
  EPMOE_ASSERT(s.latent || s.expert_width == s.hidden_size, "without a latent transform Din must equal D");
  UnpadPlan p;
  p.shape = s;
  p.expert_width_padded = padded_width(s.expert_width, s.pad_multiple);
  const int D = s.hidden_size, Din = s.expert_width, Dp = p.expert_width_padded;
  const bool multi = s.num_ranks > 1;
  auto step = [&](Stage stage, int in, int out, std::string note) -> PlanStep& {
    p.steps.push_back(PlanStep{stage, in, out, false, false, false, false, false, std::move(note)});
    return p.steps.back();
  };

  step(Stage::Route, D, D, "router GEMM and top-k on x");
  if (s.latent) step(Stage::LatentDown, D, Din, "xr = x . latent_down^T");

  // The experts stage is the only place that sees the padded width: it pads its GEMM input on entry and its
  // weighted sum writes contiguous rows of the unpadded width. Everything after it is unpadded.
  auto experts = [&](const char* where) {
    PlanStep& e = step(Stage::Experts, Din, Din, std::string("GEMMs at width ") + std::to_string(Dp) + where);
    e.trims = p.padded();
    e.applies_routed_scaling = true;
    e.adds_expert_bias = true;
  };

  if (s.mode == Mode::AllToAll) {
    step(Stage::Dispatch, Din, Din, "each token once per destination rank, unpadded").collective = multi;
    experts("; weighted sum per received token");
    PlanStep& combine = step(Stage::Combine, Din, Din, "rows back to the home rank, summed there");
    combine.collective = multi;
    combine.is_reduction = true;
    if (s.latent) step(Stage::LatentUp, Din, D, "after the combine, on the summed latent rows");
    if (s.shared) step(Stage::SharedAdd, D, D, "full shared expert (replicated), on the home rank");
  } else {
    step(Stage::SelectLocal, Din, Din, "pairs of this rank's experts, all tokens");
    experts("; partial sum over this rank's experts");
    if (s.shared && !s.latent) {
      p.shared_added_before_reduce = true;
      step(Stage::SharedAdd, D, D, "this rank's slice of the shared expert into the routed partial");
    } else if (s.shared) {
      step(Stage::SharedSlice, D, D, "this rank's slice of the shared expert, in its own segment");
    }
    p.reduce_width = Din + (s.shared && s.latent ? D : 0);
    PlanStep& reduce = step(Stage::AllReduce, p.reduce_width, p.reduce_width,
                            s.shared && s.latent ? "one buffer: [routed T x L | shared T x D], segment-major"
                                                 : "one buffer of the layer's partial output");
    reduce.collective = multi;
    reduce.is_reduction = true;
    if (s.latent) {
      step(Stage::LatentUp, Din, D, "on the reduced latent segment");
      if (s.shared) step(Stage::SharedAdd, D, D, "reduced shared segment added");
    }
  }
  return p;
}

UnpadPlan make_unpad_plan(const ModelConfig& model, const ParallelConfig& parallel, int num_ranks) {
  return make_unpad_plan(PlanShape{model.hidden_size, model.expert_width(), parallel.pad_multiple,
                                   model.has_shared(), model.has_latent(), parallel.mode, num_ranks});
}

const PlanStep* UnpadPlan::find(Stage s) const {
  for (const auto& st : steps)
    if (st.stage == s) return &st;
  return nullptr;
}

std::string UnpadPlan::one_line() const {
  std::ostringstream out;
  bool first = true;
  for (const auto& st : steps) {
    out << (first ? "" : " > ") << to_string(st.stage) << "[";
    if (st.stage == Stage::Experts && padded())
      out << st.input_width << "->" << expert_width_padded << "->" << st.output_width << " trim";
    else if (st.input_width != st.output_width)
      out << st.input_width << "->" << st.output_width;
    else
      out << st.output_width;
    out << (st.collective ? ", collective" : "") << "]";
    first = false;
  }
  return out.str();
}

}  // namespace epmoe
