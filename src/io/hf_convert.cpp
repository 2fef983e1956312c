// Hugging Face MoE checkpoints -> the epmoe contract, layer by layer and expert by expert (memory stays bounded).
#include "epmoe/hf_convert.hpp"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include "epmoe/checkpoint.hpp"
#include "epmoe/error.hpp"
#include "json.hpp"
#include "safetensors.hpp"

namespace epmoe {
namespace {

using io::Json;

enum class Family { Qwen3Moe, Mixtral, DeepseekV3, GptOss };

std::string read_text(const std::string& path, bool* found) {
  std::ifstream in(path, std::ios::binary);
  *found = in.good();
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The tensors of a Hugging Face directory, wherever they live among the shards.
class HfDirectory {
 public:
  explicit HfDirectory(const std::string& dir) : dir_(dir) {
    struct stat st {};
    EPMOE_REQUIRE(stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), ErrorKind::Input, dir,
                  ": not a directory; --hf takes a Hugging Face model directory");
    bool found = false;
    const std::string config_path = dir + "/config.json";
    const std::string text = read_text(config_path, &found);
    EPMOE_REQUIRE(found, ErrorKind::Input, config_path, ": missing; a Hugging Face model directory holds config.json");
    config_ = Json::parse(text, config_path);
    config_.object(config_path);
  }

  // Finds every tensor's shard (after config.json was understood, so its errors come first).
  void load_index() {
    bool found = false;
    const std::string& dir = dir_;
    const std::string index_path = dir + "/model.safetensors.index.json";
    const std::string index_text = read_text(index_path, &found);
    if (found) {
      const Json index = Json::parse(index_text, index_path);
      const Json* map = index.find("weight_map");
      EPMOE_REQUIRE(map, ErrorKind::Input, index_path, ": has no 'weight_map'");
      for (const auto& [name, file] : map->object(index_path + ": weight_map"))
        file_of_[name] = file.string(index_path + ": weight_map['" + name + "']");
    } else {
      const std::string single = dir + "/model.safetensors";
      EPMOE_REQUIRE(std::ifstream(single).good(), ErrorKind::Input, dir,
                    ": neither model.safetensors.index.json nor model.safetensors exists");
      for (const auto& entry : open("model.safetensors").tensors()) file_of_[entry.first] = "model.safetensors";
    }
  }

  const Json& config() const { return config_; }
  std::string config_path() const { return dir_ + "/config.json"; }
  bool has(const std::string& name) const { return file_of_.count(name) != 0; }

  io::SafetensorsFile& file(const std::string& name) {
    const auto it = file_of_.find(name);
    EPMOE_REQUIRE(it != file_of_.end(), ErrorKind::Input, dir_, ": tensor '", name,
                  "' is not in the checkpoint (model.safetensors.index.json / model.safetensors)");
    io::SafetensorsFile& f = open(it->second);
    EPMOE_REQUIRE(f.has(name), ErrorKind::Input, f.path(), ": tensor '", name,
                  "' is listed in model.safetensors.index.json but missing from this shard");
    return f;
  }
  const io::TensorInfo& info(const std::string& name) { return file(name).info(name); }

  // A tensor (or rows of its outermost dimension) as float, checked against `shape` (the rows' shape).
  std::vector<float> read(const std::string& name, const std::vector<long long>& shape, long long first = 0,
                          long long count = -1) {
    io::SafetensorsFile& f = file(name);
    check_shape(name, shape, count);
    std::vector<float> v = f.read_float(name, first, count);
    if (f.info(name).dtype == "F8_E4M3") dequantize_fp8(name, v);
    return v;
  }

  void check_shape(const std::string& name, const std::vector<long long>& shape, long long count) {
    const io::TensorInfo& t = info(name);
    std::vector<long long> got = t.shape;
    if (count >= 0 && !got.empty()) got[0] = count;
    std::vector<long long> want = shape;
    if (got != want) {
      std::ostringstream g, w;
      for (long long d : t.shape) g << d << " ";
      for (long long d : shape) w << d << " ";
      EPMOE_THROW(ErrorKind::Input, file(name).path(), ": tensor '", name, "' has shape [ ", g.str(),
                  "], expected [ ", w.str(), "] from config.json", count >= 0 ? " (per expert)" : "");
    }
  }

  std::string first_dtype(const std::string& name) { return info(name).dtype; }

 private:
  io::SafetensorsFile& open(const std::string& file) {
    auto& slot = files_[file];
    if (!slot) slot = std::make_unique<io::SafetensorsFile>(dir_ + "/" + file);
    return *slot;
  }

  // DeepSeek-V3 FP8: weight [out, in] in e4m3 times weight_scale_inv [ceil(out/128), ceil(in/128)] per 128x128 block.
  void dequantize_fp8(const std::string& name, std::vector<float>& v) {
    const std::string scale_name = name + "_scale_inv";
    EPMOE_REQUIRE(has(scale_name), ErrorKind::Input, dir_, ": FP8 tensor '", name, "' has no '", scale_name, "'");
    const io::TensorInfo& t = info(name);
    EPMOE_REQUIRE(t.shape.size() == 2, ErrorKind::Input, dir_, ": FP8 tensor '", name, "' must be 2-D");
    const long long rows = t.shape[0], cols = t.shape[1];
    const long long srows = (rows + 127) / 128, scols = (cols + 127) / 128;
    const std::vector<float> scale = read(scale_name, {srows, scols});
    for (long long r = 0; r < rows; ++r)
      for (long long c = 0; c < cols; ++c) v[static_cast<std::size_t>(r * cols + c)] *= scale[(r / 128) * scols + c / 128];
  }

  std::string dir_;
  Json config_;
  std::map<std::string, std::string> file_of_;
  std::map<std::string, std::unique_ptr<io::SafetensorsFile>> files_;
};

class Converter {
 public:
  explicit Converter(HfDirectory& hf) : hf_(hf) { read_config(); }

  const ModelConfig& config() const { return c_; }
  int model_layers() const { return num_hidden_layers_; }
  const std::string& family_name() const { return family_name_; }

  bool is_moe_layer(int l) const { return hf_.has(router_name(l)); }

  // Router, biases, shared experts of model layer l (no experts).
  LayerWeights common(int l) {
    const long long E = c_.num_experts, D = c_.hidden_size;
    LayerWeights w;
    w.router_weight = Matrix<float>(c_.num_experts, c_.hidden_size);
    w.router_weight.storage() = hf_.read(router_name(l), {E, D});
    if (c_.has_router_bias) w.router_bias = hf_.read(layer_prefix(l) + "router.bias", {E});
    if (c_.has_correction_bias) w.correction_bias = hf_.read(layer_prefix(l) + "gate.e_score_correction_bias", {E});
    if (c_.has_shared()) {
      const long long Is = c_.shared_intermediate_size;
      const std::string p = layer_prefix(l) + "shared_experts.";
      w.shared_w13 = Matrix<float>(2 * c_.shared_intermediate_size, c_.hidden_size);
      std::vector<float> gate = hf_.read(p + "gate_proj.weight", {Is, D}), up = hf_.read(p + "up_proj.weight", {Is, D});
      std::copy(gate.begin(), gate.end(), w.shared_w13.data());
      std::copy(up.begin(), up.end(), w.shared_w13.data() + gate.size());
      w.shared_w2 = Matrix<float>(c_.hidden_size, c_.shared_intermediate_size);
      w.shared_w2.storage() = hf_.read(p + "down_proj.weight", {D, Is});
    }
    return w;
  }

  // Routed expert e of model layer l.
  LayerWeights expert(int l, int e) {
    const long long D = c_.hidden_size, I = c_.moe_intermediate_size;
    LayerWeights w;
    w.expert_ids = {e};
    w.w13.resize(static_cast<std::size_t>(2 * I * D));
    if (family_ == Family::GptOss) {
      gpt_oss_expert(l, e, w);
      return w;
    }
    const std::string p = expert_prefix(l, e);
    const bool mixtral = family_ == Family::Mixtral;
    const std::vector<float> gate = hf_.read(p + (mixtral ? "w1.weight" : "gate_proj.weight"), {I, D});
    const std::vector<float> up = hf_.read(p + (mixtral ? "w3.weight" : "up_proj.weight"), {I, D});
    std::copy(gate.begin(), gate.end(), w.w13.begin());
    std::copy(up.begin(), up.end(), w.w13.begin() + static_cast<long>(gate.size()));
    w.w2 = hf_.read(p + (mixtral ? "w2.weight" : "down_proj.weight"), {D, I});
    return w;
  }

  // Storage type: the source's expert weight type (fp8 and mxfp4 become bfloat16).
  DType output_dtype(int l) {
    std::string name;
    if (family_ == Family::GptOss) {
      name = layer_prefix(l) + (hf_.has(layer_prefix(l) + "experts.gate_up_proj") ? "experts.gate_up_proj"
                                                                                   : "experts.gate_up_proj_blocks");
    } else {
      name = expert_prefix(l, 0) + (family_ == Family::Mixtral ? "w1.weight" : "gate_proj.weight");
    }
    const std::string d = hf_.first_dtype(name);
    return d == "F32" ? DType::F32 : d == "F16" ? DType::F16 : DType::BF16;
  }

  std::string source_format(int l) {
    if (family_ == Family::GptOss)
      return hf_.has(layer_prefix(l) + "experts.gate_up_proj_blocks") ? "MXFP4 (dequantized)" : "bfloat16";
    const std::string name = expert_prefix(l, 0) + (family_ == Family::Mixtral ? "w1.weight" : "gate_proj.weight");
    const std::string d = hf_.first_dtype(name);
    return d == "F8_E4M3" ? "FP8 e4m3 with 128x128 block scales (dequantized)" : d;
  }

 private:
  std::string layer_prefix(int l) const {
    return "model.layers." + std::to_string(l) + (family_ == Family::Mixtral ? ".block_sparse_moe." : ".mlp.");
  }
  std::string router_name(int l) const {
    return layer_prefix(l) + (family_ == Family::GptOss ? "router.weight" : "gate.weight");
  }
  std::string expert_prefix(int l, int e) const { return layer_prefix(l) + "experts." + std::to_string(e) + "."; }

  // GPT-OSS: gate and up interleaved along the output dimension (even rows gate, odd rows up).
  void gpt_oss_expert(int l, int e, LayerWeights& w) {
    const long long D = c_.hidden_size, I = c_.moe_intermediate_size;
    const std::string p = layer_prefix(l) + "experts.";
    std::vector<float> gate_up;  // [2I, D], rows interleaved
    std::vector<float> down;     // [D, I]
    if (hf_.has(p + "gate_up_proj")) {
      // bfloat16 form (transformers' GptOssExperts): gate_up_proj [E, D, 2I], down_proj [E, I, D]: [in, out].
      const std::vector<float> gu = hf_.read(p + "gate_up_proj", {1, D, 2 * I}, e, 1);
      gate_up.resize(static_cast<std::size_t>(2 * I * D));
      for (long long d = 0; d < D; ++d)
        for (long long r = 0; r < 2 * I; ++r) gate_up[r * D + d] = gu[d * 2 * I + r];
      const std::vector<float> dn = hf_.read(p + "down_proj", {1, I, D}, e, 1);
      down.resize(static_cast<std::size_t>(D * I));
      for (long long i = 0; i < I; ++i)
        for (long long d = 0; d < D; ++d) down[d * I + i] = dn[i * D + d];
    } else {
      // Original MXFP4 form: *_blocks [E, out, in/32, 16] (two e2m1 values a byte, low nibble first) and
      // *_scales [E, out, in/32] (E8M0: 2^(s-127)); [out, in] orientation.
      gate_up = mxfp4(p + "gate_up_proj", e, 2 * I, D);
      down = mxfp4(p + "down_proj", e, D, I);
    }
    for (long long j = 0; j < I; ++j) {
      std::copy(gate_up.begin() + (2 * j) * D, gate_up.begin() + (2 * j + 1) * D, w.w13.begin() + j * D);
      std::copy(gate_up.begin() + (2 * j + 1) * D, gate_up.begin() + (2 * j + 2) * D, w.w13.begin() + (I + j) * D);
    }
    w.w2 = std::move(down);
    const std::vector<float> gub = hf_.read(p + "gate_up_proj_bias", {1, 2 * I}, e, 1);
    w.b13.resize(static_cast<std::size_t>(2 * I));
    for (long long j = 0; j < I; ++j) {
      w.b13[j] = gub[2 * j];
      w.b13[I + j] = gub[2 * j + 1];
    }
    w.b2 = hf_.read(p + "down_proj_bias", {1, D}, e, 1);
  }

  std::vector<float> mxfp4(const std::string& name, int e, long long rows, long long cols) {
    EPMOE_REQUIRE(cols % 32 == 0, ErrorKind::Input, hf_.config_path(), ": MXFP4 needs widths divisible by 32, '",
                  name, "' has ", cols);
    const long long blocks = cols / 32;
    hf_.check_shape(name + "_blocks", {1, rows, blocks, 16}, 1);
    hf_.check_shape(name + "_scales", {1, rows, blocks}, 1);
    EPMOE_REQUIRE(hf_.info(name + "_blocks").dtype == "U8" && hf_.info(name + "_scales").dtype == "U8",
                  ErrorKind::Input, hf_.file(name + "_blocks").path(), ": '", name,
                  "_blocks' and '_scales' must be U8");
    const std::vector<unsigned char> packed = hf_.file(name + "_blocks").read_raw(name + "_blocks", e, 1);
    const std::vector<unsigned char> scales = hf_.file(name + "_scales").read_raw(name + "_scales", e, 1);
    std::vector<float> out(static_cast<std::size_t>(rows * cols));
    for (long long r = 0; r < rows; ++r)
      for (long long b = 0; b < blocks; ++b) {
        const float scale = std::ldexp(1.0f, static_cast<int>(scales[r * blocks + b]) - 127);
        const unsigned char* bytes = packed.data() + (r * blocks + b) * 16;
        float* dst = out.data() + r * cols + b * 32;
        for (int k = 0; k < 16; ++k) {
          dst[2 * k] = io::fp4_e2m1_to_float(bytes[k] & 0xf) * scale;
          dst[2 * k + 1] = io::fp4_e2m1_to_float(bytes[k] >> 4) * scale;
        }
      }
    return out;
  }

  int get_int(const char* key, int fallback, bool required = false) const {
    const Json* v = hf_.config().find(key);
    EPMOE_REQUIRE(v || !required, ErrorKind::Input, hf_.config_path(), ": key '", key, "' is missing (", family_name_,
                  ")");
    if (!v || v->is_null()) return fallback;
    const long long x = v->integer(hf_.config_path() + ": key '" + key + "'");
    EPMOE_REQUIRE(x >= 0 && x < (1LL << 31), ErrorKind::Input, hf_.config_path(), ": key '", key, "' is ", x);
    return static_cast<int>(x);
  }
  float get_float(const char* key, float fallback) const {
    const Json* v = hf_.config().find(key);
    if (!v || v->is_null()) return fallback;
    return static_cast<float>(v->number(hf_.config_path() + ": key '" + key + "'"));
  }
  bool get_bool(const char* key, bool fallback) const {
    const Json* v = hf_.config().find(key);
    if (!v || v->is_null()) return fallback;
    return v->boolean(hf_.config_path() + ": key '" + key + "'");
  }
  std::string get_string(const char* key, const std::string& fallback) const {
    const Json* v = hf_.config().find(key);
    if (!v || v->is_null()) return fallback;
    return v->string(hf_.config_path() + ": key '" + key + "'");
  }

  void read_config() {
    const std::string type = get_string("model_type", "");
    if (type == "qwen3_moe") family_ = Family::Qwen3Moe, family_name_ = "Qwen3-MoE", c_.model_type = "qwen3-moe";
    else if (type == "mixtral") family_ = Family::Mixtral, family_name_ = "Mixtral", c_.model_type = "mixtral";
    else if (type == "deepseek_v3") family_ = Family::DeepseekV3, family_name_ = "DeepSeek-V3", c_.model_type = "deepseek-v3";
    else if (type == "gpt_oss") family_ = Family::GptOss, family_name_ = "GPT-OSS", c_.model_type = "gpt-oss";
    else
      EPMOE_THROW(ErrorKind::Input, hf_.config_path(), ": model_type '", type,
                  "' is not supported; convert handles qwen3_moe, mixtral, deepseek_v3 and gpt_oss");
    c_.hidden_size = get_int("hidden_size", 0, true);
    num_hidden_layers_ = get_int("num_hidden_layers", 0, true);
    c_.scoring_func = ScoringFunc::Softmax;
    c_.norm_topk_prob = true;
    c_.activation = Activation::Silu;
    switch (family_) {
      case Family::Qwen3Moe:
        c_.moe_intermediate_size = get_int("moe_intermediate_size", 0, true);
        c_.num_experts = get_int("num_experts", 0, true);
        c_.top_k = get_int("num_experts_per_tok", 0, true);
        c_.norm_topk_prob = get_bool("norm_topk_prob", false);
        break;
      case Family::Mixtral:
        c_.moe_intermediate_size = get_int("intermediate_size", 0, true);
        c_.num_experts = get_int("num_local_experts", 0, true);
        c_.top_k = get_int("num_experts_per_tok", 0, true);
        break;
      case Family::DeepseekV3: {
        c_.moe_intermediate_size = get_int("moe_intermediate_size", 0, true);
        c_.num_experts = get_int("n_routed_experts", 0, true);
        c_.top_k = get_int("num_experts_per_tok", 0, true);
        c_.scoring_func = parse_scoring_func(get_string("scoring_func", "sigmoid"), hf_.config_path() + ": scoring_func");
        const std::string method = get_string("topk_method", "noaux_tc");
        c_.topk_method = method == "greedy" ? TopkMethod::Plain : TopkMethod::Grouped;
        c_.n_group = get_int("n_group", 1);
        c_.topk_group = get_int("topk_group", 1);
        c_.norm_topk_prob = get_bool("norm_topk_prob", true);
        c_.routed_scaling_factor = get_float("routed_scaling_factor", 1.0f);
        c_.num_shared_experts = get_int("n_shared_experts", 0);
        c_.shared_intermediate_size = c_.num_shared_experts * c_.moe_intermediate_size;
        c_.has_correction_bias = method == "noaux_tc";
        break;
      }
      case Family::GptOss:
        c_.moe_intermediate_size = get_int("intermediate_size", 0, true);
        c_.num_experts = get_int("num_local_experts", 0, true);
        c_.top_k = get_int("num_experts_per_tok", get_int("experts_per_token", 0), false);
        c_.activation = Activation::SwigluOai;
        c_.swiglu_alpha = 1.702f;
        c_.swiglu_limit = get_float("swiglu_limit", 7.0f);
        c_.has_router_bias = true;
        c_.has_expert_bias = true;
        break;
    }
    if (family_ != Family::GptOss) {
      const std::string act = get_string("hidden_act", "silu");
      EPMOE_REQUIRE(act == "silu" || act == "gelu", ErrorKind::Input, hf_.config_path(), ": hidden_act '", act,
                    "' is not supported (silu, gelu)");
      c_.activation = act == "silu" ? Activation::Silu : Activation::Gelu;
    }
    c_.validate(hf_.config_path());
  }

  HfDirectory& hf_;
  ModelConfig c_;
  Family family_ = Family::Qwen3Moe;
  std::string family_name_;
  int num_hidden_layers_ = 0;
};

}  // namespace

HfLayerRange parse_layer_range(const std::string& text, const std::string& flag) {
  HfLayerRange r;
  const std::size_t dash = text.find('-');
  try {
    std::size_t used = 0;
    r.first = std::stoi(text.substr(0, dash), &used);
    EPMOE_REQUIRE(used == (dash == std::string::npos ? text.size() : dash), ErrorKind::Usage, "");
    if (dash == std::string::npos) {
      r.last = r.first;
    } else {
      const std::string tail = text.substr(dash + 1);
      r.last = std::stoi(tail, &used);
      EPMOE_REQUIRE(used == tail.size(), ErrorKind::Usage, "");
    }
  } catch (const std::exception&) {
    EPMOE_THROW(ErrorKind::Usage, flag, ": expected A-B or A (model layer indices), got '", text, "'");
  }
  EPMOE_REQUIRE(r.first >= 0 && r.last >= r.first, ErrorKind::Usage, flag, ": '", text,
                "' is not a range A-B with 0 <= A <= B");
  return r;
}

HfConvertReport convert_huggingface(const std::string& hf_dir, const std::string& out, const HfLayerRange& range) {
  HfDirectory hf(hf_dir);
  Converter conv(hf);
  hf.load_index();
  HfConvertReport report;
  report.messages.push_back("detected " + conv.family_name() + " (" + conv.config().summary() + ")");
  const int last = range.last < 0 ? conv.model_layers() - 1 : std::min(range.last, conv.model_layers() - 1);
  for (int l = range.first; l <= last; ++l) {
    if (conv.is_moe_layer(l)) {
      report.model_layers.push_back(l);
    } else {
      report.messages.push_back("model layer " + std::to_string(l) + " is dense (no router): skipped");
    }
  }
  EPMOE_REQUIRE(!report.model_layers.empty(), ErrorKind::Input, hf_dir, ": no MoE layer in model layers ",
                range.first, "-", last, " (the model has ", conv.model_layers(), " layers)");
  ModelConfig c = conv.config();
  c.num_layers = static_cast<int>(report.model_layers.size());
  const DType dtype = conv.output_dtype(report.model_layers.front());
  report.messages.push_back("experts stored as " + conv.source_format(report.model_layers.front()) + "; writing " +
                            to_string(dtype));
  CheckpointWriter writer(out, c, dtype);
  for (int k = 0; k < c.num_layers; ++k) {
    const int l = report.model_layers[k];
    writer.write_layer_common(k, conv.common(l));
    for (int e = 0; e < c.num_experts; ++e) writer.write_experts(k, conv.expert(l, e));
    report.messages.push_back("model layer " + std::to_string(l) + " -> /layers/" + std::to_string(k));
  }
  writer.commit();
  report.config = c;
  return report;
}

}  // namespace epmoe
