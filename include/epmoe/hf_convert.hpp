// Conversion of Hugging Face MoE checkpoints (config.json, model.safetensors.index.json, *.safetensors) into the
// epmoe checkpoint contract. Families: Qwen3-MoE, Mixtral, DeepSeek-V3 (incl. FP8 e4m3 with 128x128
// weight_scale_inv), GPT-OSS (bfloat16 and MXFP4). Dense layers are skipped; non-MoE weights are ignored.
#pragma once

#include <string>
#include <vector>

#include "epmoe/config.hpp"

namespace epmoe {

// Model layers [first, last] (inclusive) to convert; last = -1 means "to the end".
struct HfLayerRange {
  int first = 0;
  int last = -1;
};
// Parses "a-b" or "a"; throws ErrorKind::Usage naming `flag`.
HfLayerRange parse_layer_range(const std::string& text, const std::string& flag);

struct HfConvertReport {
  ModelConfig config;                 // as written (num_layers = MoE layers converted)
  std::vector<int> model_layers;      // the model's layer index of each converted layer
  std::vector<std::string> messages;  // skipped dense layers, detected family, dequantization
};

// Reads `hf_dir`, writes `out` (bfloat16 storage when the source is bf16/fp8/mxfp4, else float32).
HfConvertReport convert_huggingface(const std::string& hf_dir, const std::string& out, const HfLayerRange& range);

}  // namespace epmoe
