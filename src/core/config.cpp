#include "epmoe/config.hpp"

#include <sstream>

#include "epmoe/error.hpp"

namespace epmoe {

const char* to_string(ScoringFunc v) { return v == ScoringFunc::Softmax ? "softmax" : "sigmoid"; }
const char* to_string(TopkMethod v) { return v == TopkMethod::Plain ? "plain" : "grouped"; }
const char* to_string(Activation v) {
  switch (v) {
    case Activation::Silu: return "silu";
    case Activation::Gelu: return "gelu";
    case Activation::SwigluOai: return "swigluoai";
    case Activation::Relu2: return "relu2";
  }
  return "?";
}
const char* to_string(Mode v) { return v == Mode::AllToAll ? "alltoall" : "allreduce"; }
const char* to_string(Placement v) {
  switch (v) {
    case Placement::Linear: return "linear";
    case Placement::RoundRobin: return "round-robin";
    case Placement::Balanced: return "balanced";
  }
  return "?";
}
const char* to_string(BackendKind v) { return v == BackendKind::Cpu ? "cpu" : "cuda"; }

namespace {
template <class E, size_t N>
E parse_enum(const std::string& s, const std::string& what, const E (&values)[N]) {
  std::string accepted;
  for (E v : values) {
    if (s == to_string(v)) return v;
    accepted += accepted.empty() ? "" : ", ";
    accepted += to_string(v);
  }
  EPMOE_THROW(ErrorKind::Usage, what, ": unknown value '", s, "'; accepted: ", accepted);
}
}  // namespace

ScoringFunc parse_scoring_func(const std::string& s, const std::string& what) {
  static const ScoringFunc v[] = {ScoringFunc::Softmax, ScoringFunc::Sigmoid};
  return parse_enum(s, what, v);
}
TopkMethod parse_topk_method(const std::string& s, const std::string& what) {
  static const TopkMethod v[] = {TopkMethod::Plain, TopkMethod::Grouped};
  return parse_enum(s, what, v);
}
Activation parse_activation(const std::string& s, const std::string& what) {
  static const Activation v[] = {Activation::Silu, Activation::Gelu, Activation::SwigluOai, Activation::Relu2};
  return parse_enum(s, what, v);
}
Mode parse_mode(const std::string& s, const std::string& what) {
  static const Mode v[] = {Mode::AllToAll, Mode::AllReduce};
  return parse_enum(s, what, v);
}
Placement parse_placement(const std::string& s, const std::string& what) {
  static const Placement v[] = {Placement::Linear, Placement::RoundRobin, Placement::Balanced};
  return parse_enum(s, what, v);
}
BackendKind parse_backend(const std::string& s, const std::string& what) {
  static const BackendKind v[] = {BackendKind::Cpu, BackendKind::Cuda};
  return parse_enum(s, what, v);
}

int padded_width(int width, int multiple) {
  if (multiple <= 0) return width;
  return (width + multiple - 1) / multiple * multiple;
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](int v, const char* name) {
    EPMOE_REQUIRE(v > 0, ErrorKind::Config, source, ": attribute '", name, "' must be > 0 (found ", v, ")");
  };
  positive(hidden_size, "hidden_size");
  positive(moe_intermediate_size, "moe_intermediate_size");
  positive(num_experts, "num_experts");
  positive(top_k, "top_k");
  positive(num_layers, "num_layers");
  EPMOE_REQUIRE(top_k <= num_experts, ErrorKind::Config, source, ": top_k (", top_k,
                ") must not exceed num_experts (", num_experts, ")");
  EPMOE_REQUIRE(n_group >= 1 && topk_group >= 1, ErrorKind::Config, source,
                ": n_group and topk_group must be >= 1 (found ", n_group, ", ", topk_group, ")");
  if (topk_method == TopkMethod::Grouped) {
    EPMOE_REQUIRE(num_experts % n_group == 0, ErrorKind::Config, source, ": n_group (", n_group,
                  ") must divide num_experts (", num_experts, ")");
    EPMOE_REQUIRE(topk_group <= n_group, ErrorKind::Config, source, ": topk_group (", topk_group,
                  ") must not exceed n_group (", n_group, ")");
    EPMOE_REQUIRE(topk_group * (num_experts / n_group) >= top_k, ErrorKind::Config, source,
                  ": topk_group (", topk_group, ") groups of ", num_experts / n_group,
                  " experts hold fewer than top_k (", top_k, ") experts");
    if (has_correction_bias) {
      EPMOE_REQUIRE(num_experts / n_group >= 2, ErrorKind::Config, source,
                    ": grouped top-k with e_score_correction_bias scores a group by its top-2 experts, so each of "
                    "the n_group groups needs at least 2 experts (num_experts / n_group = ",
                    num_experts / n_group, ")");
    }
  }
  EPMOE_REQUIRE(routed_scaling_factor == routed_scaling_factor && routed_scaling_factor != 0.0f, ErrorKind::Config,
                source, ": routed_scaling_factor must be a finite non-zero number");
  EPMOE_REQUIRE(num_shared_experts >= 0, ErrorKind::Config, source, ": num_shared_experts must be >= 0");
  if (has_shared()) positive(shared_intermediate_size, "shared_intermediate_size (needed when num_shared_experts > 0)");
  EPMOE_REQUIRE(latent_size >= 0, ErrorKind::Config, source, ": latent_size must be >= 0 (0 = no latent transform)");
  if (activation == Activation::SwigluOai) {
    EPMOE_REQUIRE(swiglu_limit > 0, ErrorKind::Config, source, ": swiglu_limit must be > 0");
  }
}

std::string ModelConfig::summary() const {
  std::ostringstream out;
  out << model_type << ": D=" << hidden_size << " I=" << moe_intermediate_size << " E=" << num_experts
      << " top_k=" << top_k << " " << to_string(scoring_func) << "/" << to_string(topk_method);
  if (topk_method == TopkMethod::Grouped) out << "(" << n_group << "," << topk_group << ")";
  out << (norm_topk_prob ? " renorm" : "") << " act=" << to_string(activation);
  if (routed_scaling_factor != 1.0f) out << " scale=" << routed_scaling_factor;
  if (has_shared()) out << " shared=" << num_shared_experts << "x(Is=" << shared_intermediate_size << ")";
  if (has_latent()) out << " latent L=" << latent_size;
  if (has_router_bias) out << " router_bias";
  if (has_correction_bias) out << " correction_bias";
  if (has_expert_bias) out << " expert_bias";
  out << " layers=" << num_layers;
  return out.str();
}

void ParallelConfig::validate(const ModelConfig& model, int num_ranks) const {
  EPMOE_REQUIRE(num_ranks >= 1, ErrorKind::Config, "number of ranks must be >= 1");
  EPMOE_REQUIRE(num_ranks <= model.num_experts, ErrorKind::Config, "more ranks (", num_ranks, ") than experts (",
                model.num_experts, ") of ", model.model_type,
                ": every rank must own at least one expert; run with at most ", model.num_experts, " ranks");
  EPMOE_REQUIRE(pad_multiple >= 0 && pad_multiple <= 4096, ErrorKind::Usage,
                "--pad-multiple must be between 0 (no padding) and 4096 (found ", pad_multiple, ")");
  if (placement == Placement::Balanced) {
    EPMOE_REQUIRE(static_cast<int>(expert_owner.size()) == model.num_experts, ErrorKind::Usage,
                  "placement balanced needs the owner of each of the ", model.num_experts, " experts (",
                  expert_owner.size(), " given): measure the loads first (balanced_expert_owner)");
  } else {
    EPMOE_REQUIRE(expert_owner.empty(), ErrorKind::Usage, "an expert owner map is given with placement ",
                  to_string(placement), "; it belongs to placement balanced");
  }
  if (mode == Mode::AllReduce && model.has_shared()) {
    EPMOE_REQUIRE(model.shared_intermediate_size >= num_ranks, ErrorKind::Config,
                  "allreduce mode shards the shared expert's width (", model.shared_intermediate_size,
                  ") across ranks; use at most that many ranks");
  }
}

}  // namespace epmoe
