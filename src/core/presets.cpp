// Model presets. The model-sized ones follow the published configs of the real models (MoE layers only); the mini
// ones keep each family's router, activation, biases, shared/latent structure and width alignment (a width that
// is not a multiple of 256 in the real model is not one of 128 here), at sizes the CPU backend runs in CI and whose
// one-layer bf16 checkpoints in data/ stay under 1 MB.
#include "epmoe/presets.hpp"

#include <functional>
#include <map>

#include "epmoe/error.hpp"

namespace epmoe {
namespace {

ModelConfig gpt_oss(int hidden, int inter, int experts, int k, int layers) {
  ModelConfig c;
  c.model_type = "gpt-oss";
  c.hidden_size = hidden;
  c.moe_intermediate_size = inter;
  c.num_experts = experts;
  c.top_k = k;
  c.num_layers = layers;
  c.scoring_func = ScoringFunc::Softmax;  // softmax over the top-k logits == softmax, then renormalize
  c.norm_topk_prob = true;
  c.activation = Activation::SwigluOai;
  c.swiglu_alpha = 1.702f;
  c.swiglu_limit = 7.0f;
  c.has_router_bias = true;
  c.has_expert_bias = true;
  return c;
}

ModelConfig deepseek(int hidden, int inter, int experts, int k, int groups, int topk_groups, int shared_inter,
                     int layers) {
  ModelConfig c;
  c.model_type = "deepseek-v3";
  c.hidden_size = hidden;
  c.moe_intermediate_size = inter;
  c.num_experts = experts;
  c.top_k = k;
  c.num_layers = layers;
  c.scoring_func = ScoringFunc::Sigmoid;
  c.topk_method = TopkMethod::Grouped;
  c.n_group = groups;
  c.topk_group = topk_groups;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5f;
  c.activation = Activation::Silu;
  c.num_shared_experts = 1;
  c.shared_intermediate_size = shared_inter;
  c.has_correction_bias = true;
  return c;
}

ModelConfig softmax_moe(const char* type, int hidden, int inter, int experts, int k, int layers) {
  ModelConfig c;
  c.model_type = type;
  c.hidden_size = hidden;
  c.moe_intermediate_size = inter;
  c.num_experts = experts;
  c.top_k = k;
  c.num_layers = layers;
  c.scoring_func = ScoringFunc::Softmax;
  c.norm_topk_prob = true;
  c.activation = Activation::Silu;
  return c;
}

ModelConfig nemotron(int hidden, int inter, int experts, int k, int shared_inter, int latent, int layers) {
  ModelConfig c;
  c.model_type = "nemotron-h";
  c.hidden_size = hidden;
  c.moe_intermediate_size = inter;
  c.num_experts = experts;
  c.top_k = k;
  c.num_layers = layers;
  c.scoring_func = ScoringFunc::Sigmoid;
  c.topk_method = TopkMethod::Grouped;  // n_group 1: grouped with one group is plain top-k, as Nemotron-H declares
  c.n_group = 1;
  c.topk_group = 1;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5f;
  c.activation = Activation::Relu2;
  c.num_shared_experts = 1;
  c.shared_intermediate_size = shared_inter;
  c.latent_size = latent;
  c.has_correction_bias = true;
  return c;
}

struct Entry {
  PresetInfo info;
  std::function<ModelConfig()> make;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {{"gpt-oss-mini", "GPT-OSS-like: D 180 (2880/16), softmax+renorm, router and expert biases, swigluoai", true},
       [] { return gpt_oss(180, 64, 8, 4, 2); }},
      {{"deepseek-mini", "DeepSeek-V3-like: sigmoid, grouped top-k (8 groups, 4 kept), correction bias, 1 shared, "
                         "scaling 2.5",
        true},
       [] { return deepseek(128, 24, 32, 6, 8, 4, 48, 2); }},
      {{"nemotron-mini", "Nemotron-3-Nano-like: D 168 (2688/16), relu2, sigmoid n_group 1, correction bias, shared",
        true},
       [] { return nemotron(168, 64, 16, 6, 128, 0, 2); }},
      {{"latent-mini", "latent MoE (Nemotron-3-Super-like): D 168, L 96, relu2, sigmoid, shared", true},
       [] { return nemotron(168, 64, 16, 4, 128, 96, 2); }},
      {{"qwen3-mini", "Qwen3-MoE-like: softmax + renorm, top-8 of 32, silu", true},
       [] { return softmax_moe("qwen3-moe", 128, 24, 32, 8, 2); }},
      {{"mixtral-mini", "Mixtral-like: top-2 of 8, softmax + renorm, silu", true},
       [] { return softmax_moe("mixtral", 128, 112, 8, 2, 2); }},
      {{"deepseek-v3", "DeepSeek-V3: D 7168, I 2048, 256 experts, top-8, 8 groups/4, 1 shared, 58 MoE layers", false},
       [] { return deepseek(7168, 2048, 256, 8, 8, 4, 2048, 58); }},
      {{"qwen3-30b-a3b", "Qwen3-30B-A3B: D 2048, I 768, 128 experts, top-8, 48 layers", false},
       [] { return softmax_moe("qwen3-moe", 2048, 768, 128, 8, 48); }},
      {{"gpt-oss-120b", "GPT-OSS-120B: D 2880, I 2880, 128 experts, top-4, 36 layers", false},
       [] { return gpt_oss(2880, 2880, 128, 4, 36); }},
      {{"gpt-oss-20b", "GPT-OSS-20B: D 2880, I 2880, 32 experts, top-4, 24 layers", false},
       [] { return gpt_oss(2880, 2880, 32, 4, 24); }},
      {{"mixtral-8x7b", "Mixtral-8x7B: D 4096, I 14336, 8 experts, top-2, 32 layers", false},
       [] { return softmax_moe("mixtral", 4096, 14336, 8, 2, 32); }},
      {{"nemotron-3-nano", "Nemotron-3-Nano-30B-A3B: D 2688, I 1856, 128 experts, top-6, shared 3712, relu2", false},
       [] { return nemotron(2688, 1856, 128, 6, 3712, 0, 23); }},
      {{"nemotron-3-super", "Nemotron-3-Super-like latent MoE: D 4096, L 1024, I 2688, 512 experts, top-22, shared "
                            "(shape approximate)",
        false},
       [] { return nemotron(4096, 2688, 512, 22, 5376, 1024, 40); }},
  };
  return table;
}

}  // namespace

const std::vector<PresetInfo>& list_presets() {
  static const std::vector<PresetInfo> infos = [] {
    std::vector<PresetInfo> v;
    for (const auto& e : entries()) v.push_back(e.info);
    return v;
  }();
  return infos;
}

ModelConfig make_preset(const std::string& name, const std::string& flag) {
  std::string names;
  for (const auto& e : entries()) {
    if (e.info.name == name) {
      ModelConfig c = e.make();
      c.validate("preset " + name);
      return c;
    }
    names += names.empty() ? "" : ", ";
    names += e.info.name;
  }
  EPMOE_THROW(ErrorKind::Usage, flag, ": unknown preset '", name, "'; available: ", names);
}

std::vector<std::string> mini_preset_names() {
  std::vector<std::string> v;
  for (const auto& e : entries())
    if (e.info.mini) v.push_back(e.info.name);
  return v;
}

}  // namespace epmoe
