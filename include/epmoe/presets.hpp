// Built-in model presets: small ones shaped like real models (for demos and tests) and model-sized ones.
#pragma once

#include <string>
#include <vector>

#include "epmoe/config.hpp"

namespace epmoe {

struct PresetInfo {
  std::string name;
  std::string description;
  bool mini;  // small enough for the CPU backend and CI
};

const std::vector<PresetInfo>& list_presets();
// Throws ErrorKind::Usage naming the flag and listing the presets when `name` is unknown.
ModelConfig make_preset(const std::string& name, const std::string& flag = "--preset");
std::vector<std::string> mini_preset_names();

}  // namespace epmoe
