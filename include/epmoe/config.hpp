// The configuration of an MoE layer (what a checkpoint's root attributes say) and of how it runs in parallel.
// Plain data with defaults; validate() states every invariant with a message a user understands.
#pragma once

#include <string>
#include <vector>

namespace epmoe {

enum class ScoringFunc { Softmax, Sigmoid };
enum class TopkMethod { Plain, Grouped };
enum class Activation { Silu, Gelu, SwigluOai, Relu2 };
enum class Mode { AllToAll, AllReduce };
enum class Placement { Linear, RoundRobin, Balanced };
enum class BackendKind { Cpu, Cuda };

const char* to_string(ScoringFunc v);
const char* to_string(TopkMethod v);
const char* to_string(Activation v);
const char* to_string(Mode v);
const char* to_string(Placement v);
const char* to_string(BackendKind v);

// Parsers throw epmoe::Error naming `what` (a flag or an attribute) and the accepted values.
ScoringFunc parse_scoring_func(const std::string& s, const std::string& what);
TopkMethod parse_topk_method(const std::string& s, const std::string& what);
Activation parse_activation(const std::string& s, const std::string& what);
Mode parse_mode(const std::string& s, const std::string& what);
Placement parse_placement(const std::string& s, const std::string& what);
BackendKind parse_backend(const std::string& s, const std::string& what);

// Semantics: ../shared/spec/checkpoint-v1.md, restated in docs/checkpoint-format.md.
struct ModelConfig {
  std::string model_type = "custom";
  int hidden_size = 0;            // D
  int moe_intermediate_size = 0;  // I, per routed expert
  int num_experts = 0;            // E
  int top_k = 0;                  // K
  int num_layers = 1;
  ScoringFunc scoring_func = ScoringFunc::Softmax;
  TopkMethod topk_method = TopkMethod::Plain;
  int n_group = 1;
  int topk_group = 1;
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
  Activation activation = Activation::Silu;
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;
  int num_shared_experts = 0;        // S
  int shared_intermediate_size = 0;  // Is, total width of the shared expert(s)
  int latent_size = 0;               // L; 0 = routed experts work at width D

  // Which optional tensors a layer carries (a checkpoint's optional datasets; presets set them).
  bool has_router_bias = false;
  bool has_correction_bias = false;
  bool has_expert_bias = false;

  bool gated() const { return activation != Activation::Relu2; }
  bool has_shared() const { return num_shared_experts > 0; }
  bool has_latent() const { return latent_size > 0; }
  // Din: the width the routed experts see (L for latent models, else D).
  int expert_width() const { return has_latent() ? latent_size : hidden_size; }
  // Rows of w13 per expert: 2I for gated activations, I for relu2.
  int w13_rows() const { return gated() ? 2 * moe_intermediate_size : moe_intermediate_size; }
  int shared_w13_rows() const { return gated() ? 2 * shared_intermediate_size : shared_intermediate_size; }

  // Throws ErrorKind::Config naming `source` (a preset, a file) and the attribute at fault.
  void validate(const std::string& source = "model config") const;
  std::string summary() const;  // one line for reports
};

// How a layer runs across ranks; independent of the model.
struct ParallelConfig {
  Mode mode = Mode::AllToAll;
  Placement placement = Placement::Linear;
  int pad_multiple = 0;  // 0 = no padding; else the expert width is rounded up to a multiple of this
  // Placement::Balanced only: the owner rank of every expert [num_experts], from measured loads
  // (balanced_expert_owner in placement.hpp); the same on every rank.
  std::vector<int> expert_owner;
  // Throws ErrorKind::Config when these choices cannot run `model` on `num_ranks` ranks.
  void validate(const ModelConfig& model, int num_ranks) const;
};

// Rounds `width` up to a multiple of `multiple` (multiple 0 = unchanged).
int padded_width(int width, int multiple);

}  // namespace epmoe
