#include "contract.hpp"

#include <functional>

namespace epmoe::io {

std::string bare_message(const std::exception& e) {
  std::string s = e.what();
  if (s.rfind("[rank ", 0) == 0) {
    const std::size_t end = s.find("] ");
    if (end != std::string::npos) s = s.substr(end + 2);
  }
  return s;
}

std::string layer_path(int layer, const std::string& name) {
  return "/layers/" + std::to_string(layer) + "/" + name;
}

std::vector<DatasetSpec> layer_dataset_specs(const ModelConfig& c) {
  using V = std::vector<hsize_t>;
  const hsize_t E = static_cast<hsize_t>(c.num_experts), D = static_cast<hsize_t>(c.hidden_size);
  const hsize_t Din = static_cast<hsize_t>(c.expert_width()), I = static_cast<hsize_t>(c.moe_intermediate_size);
  const hsize_t R13 = static_cast<hsize_t>(c.w13_rows());
  const std::string r13 = c.gated() ? "2I" : "I";
  const std::string din = c.has_latent() ? "L" : "D";
  const std::string shared = "num_shared_experts = " + std::to_string(c.num_shared_experts);
  const std::string latent = "latent_size = " + std::to_string(c.latent_size);
  // Latent and shared first: when they are missing, that explains the expert shapes too.
  std::vector<DatasetSpec> specs = {
      {"router/weight", V{E, D}, "[E, D]", true, "", false},
      {"router/bias", V{E}, "[E]", false, "", false},
      {"router/e_score_correction_bias", V{E}, "[E]", false, "", false},
  };
  if (c.has_latent()) {
    const hsize_t L = static_cast<hsize_t>(c.latent_size);
    specs.push_back({"latent/down", V{L, D}, "[L, D]", true, latent, false});
    specs.push_back({"latent/up", V{D, L}, "[D, L]", true, latent, false});
  }
  if (c.has_shared()) {
    const hsize_t Is = static_cast<hsize_t>(c.shared_intermediate_size);
    const hsize_t Rs = static_cast<hsize_t>(c.shared_w13_rows());
    specs.push_back({"shared/w13", V{Rs, D}, c.gated() ? "[2Is, D]" : "[Is, D]", true, shared, false});
    specs.push_back({"shared/w2", V{D, Is}, "[D, Is]", true, shared, false});
  }
  const std::vector<DatasetSpec> experts = {
      {"experts/w13", V{E, R13, Din}, "[E, " + r13 + ", " + din + "]", true, "", true},
      {"experts/w2", V{E, Din, I}, "[E, " + din + ", I]", true, "", true},
      {"experts/b13", V{E, R13}, "[E, " + r13 + "]", false, "", true},
      {"experts/b2", V{E, Din}, "[E, " + din + "]", false, "", true},
  };
  specs.insert(specs.end(), experts.begin(), experts.end());
  return specs;
}

Handle open_checked_dataset(hid_t file, const std::string& path, const std::string& name,
                            const std::vector<hsize_t>& dims, const std::string& dims_label, DatasetShape* shape) {
  const std::string what = path + ": dataset '" + name + "'";
  EPMOE_REQUIRE(link_exists(file, name), ErrorKind::Input, what, " is missing; see docs/checkpoint-format.md");
  Handle d = checked(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose,
                     what + " cannot be opened (not a dataset, or the file is corrupted)");
  DatasetShape s = describe_dataset(d.get());
  EPMOE_REQUIRE(s.dims == dims, ErrorKind::Input, what, " has shape ", shape_text(s.dims), ", expected ", dims_label,
                " = ", shape_text(dims), " from the root attributes; fix the dataset or the attributes");
  EPMOE_REQUIRE(s.type.dtype.has_value(), ErrorKind::Input, what, " has element type ", s.type.description,
                "; the contract accepts float32, float16 and bfloat16 (convert it, e.g. with "
                "numpy .astype(np.float32))");
  if (shape) *shape = s;
  return d;
}

namespace {

class Checker {
 public:
  Checker(hid_t file, const std::string& path, ContractReport& report) : file_(file), path_(path), r_(report) {}

  // Runs `step`, recording its error as a problem instead of throwing. Returns false when it failed.
  bool attempt(const std::function<void()>& step) {
    try {
      step();
      return true;
    } catch (const Error& e) {
      if (r_.problems.empty()) r_.first_kind = e.kind() == ErrorKind::Usage ? ErrorKind::Config : e.kind();
      r_.problems.push_back(bare_message(e));
      return false;
    }
  }

  std::string attr(const std::string& name) const { return path_ + ": root attribute '" + name + "'"; }

  void int_attr(const std::string& name, int* target, bool required, int min_value) {
    attempt([&] {
      if (!has_attribute(file_, name)) {
        EPMOE_REQUIRE(!required, ErrorKind::Input, attr(name), " is missing (required); see docs/checkpoint-format.md");
        return;
      }
      const long long v = read_int_attribute(file_, name, attr(name));
      EPMOE_REQUIRE(v >= min_value && v <= 1000000000LL, ErrorKind::Config, attr(name), " is ", v,
                    ", expected an integer in [", min_value, ", 1e9]");
      *target = static_cast<int>(v);
    });
  }

  void float_attr(const std::string& name, float* target) {
    attempt([&] {
      if (!has_attribute(file_, name)) return;
      *target = static_cast<float>(read_float_attribute(file_, name, attr(name)));
    });
  }

  template <class Parse>
  void string_attr(const std::string& name, bool required, Parse parse) {
    attempt([&] {
      if (!has_attribute(file_, name)) {
        EPMOE_REQUIRE(!required, ErrorKind::Input, attr(name), " is missing (required); see docs/checkpoint-format.md");
        return;
      }
      const std::string v = read_string_attribute(file_, name, attr(name));
      try {
        parse(v);
      } catch (const Error& e) {
        EPMOE_THROW(ErrorKind::Config, bare_message(e));
      }
    });
  }

  void attributes() {
    ModelConfig& c = r_.config;
    const bool format_ok = attempt([&] {
      EPMOE_REQUIRE(has_attribute(file_, "epmoe_format"), ErrorKind::Input, attr("epmoe_format"),
                    " is missing: this is not an epmoe checkpoint (docs/checkpoint-format.md; 'epmoe convert' "
                    "makes one from a Hugging Face model)");
      const long long v = read_int_attribute(file_, "epmoe_format", attr("epmoe_format"));
      EPMOE_REQUIRE(v == 1, ErrorKind::Input, attr("epmoe_format"), " is ", v,
                    "; this epmoe reads format version 1 only");
    });
    if (!format_ok) return;
    const std::size_t before = r_.problems.size();
    int norm = 0;
    int_attr("hidden_size", &c.hidden_size, true, 1);
    int_attr("moe_intermediate_size", &c.moe_intermediate_size, true, 1);
    int_attr("num_experts", &c.num_experts, true, 1);
    int_attr("top_k", &c.top_k, true, 1);
    int_attr("num_layers", &c.num_layers, true, 1);
    int_attr("n_group", &c.n_group, false, 1);
    int_attr("topk_group", &c.topk_group, false, 1);
    int_attr("norm_topk_prob", &norm, false, 0);
    int_attr("num_shared_experts", &c.num_shared_experts, false, 0);
    int_attr("shared_intermediate_size", &c.shared_intermediate_size, false, 0);
    int_attr("latent_size", &c.latent_size, false, 0);
    attempt([&] {
      EPMOE_REQUIRE(norm == 0 || norm == 1, ErrorKind::Config, attr("norm_topk_prob"), " is ", norm,
                    ", expected 0 or 1");
      c.norm_topk_prob = norm == 1;
    });
    float_attr("routed_scaling_factor", &c.routed_scaling_factor);
    float_attr("swiglu_alpha", &c.swiglu_alpha);
    float_attr("swiglu_limit", &c.swiglu_limit);
    string_attr("model_type", false, [&](const std::string& v) { c.model_type = v; });
    string_attr("scoring_func", true,
                [&](const std::string& v) { c.scoring_func = parse_scoring_func(v, attr("scoring_func")); });
    string_attr("topk_method", false,
                [&](const std::string& v) { c.topk_method = parse_topk_method(v, attr("topk_method")); });
    string_attr("activation", true,
                [&](const std::string& v) { c.activation = parse_activation(v, attr("activation")); });
    if (r_.problems.size() != before) return;
    r_.attributes_ok = attempt([&] { c.validate(path_ + " (root attributes)"); });
  }

  // Checks every layer's datasets; sets the presence flags from layer 0.
  void layers() {
    ModelConfig& c = r_.config;
    const std::vector<DatasetSpec> specs = layer_dataset_specs(c);
    std::vector<bool> present0(specs.size(), false);
    for (int l = 0; l < c.num_layers; ++l) {
      const std::string group = "/layers/" + std::to_string(l);
      if (!attempt([&] {
            EPMOE_REQUIRE(link_exists(file_, group), ErrorKind::Input, path_, ": group '", group,
                          "' is missing, but num_layers = ", c.num_layers, " says it should exist");
          })) {
        continue;
      }
      for (std::size_t i = 0; i < specs.size(); ++i) {
        const DatasetSpec& s = specs[i];
        const std::string name = layer_path(l, s.name);
        const bool exists = link_exists(file_, name);
        if (l == 0) present0[i] = exists;
        attempt([&] {
          if (!exists) {
            EPMOE_REQUIRE(!s.required, ErrorKind::Input, path_, ": dataset '", name, "' ", s.dims_label,
                          " is missing", s.reason.empty() ? "" : " (required because " + s.reason + ")",
                          "; see docs/checkpoint-format.md");
            EPMOE_REQUIRE(!present0[i], ErrorKind::Input, path_, ": dataset '", name,
                          "' is missing, but layer 0 has it; every layer must hold the same optional datasets");
            return;
          }
          EPMOE_REQUIRE(l == 0 || present0[i], ErrorKind::Input, path_, ": dataset '", name,
                        "' exists, but layer 0 has no '", s.name,
                        "'; every layer must hold the same optional datasets");
          DatasetShape shape;
          Handle d = open_checked_dataset(file_, path_, name, s.dims, s.dims_label, &shape);
          if (l == 0 && s.per_expert) {
            hsize_t per = 1;
            for (std::size_t k = 1; k < shape.dims.size(); ++k) per *= shape.dims[k];
            r_.bytes_per_expert += static_cast<long long>(per) * dtype_bytes(*shape.type.dtype);
          }
          if (l == 0 && s.per_expert && !shape.chunk.empty()) {
            std::vector<hsize_t> one = shape.dims;
            one[0] = 1;
            if (shape.chunk != one) {
              r_.warnings.push_back(path_ + ": dataset '" + name + "' is chunked " + shape_text(shape.chunk) +
                                    ", not one expert per chunk " + shape_text(one) +
                                    "; ranks reading their experts touch more bytes than their shard");
            }
          } else if (l == 0 && s.per_expert) {
            r_.warnings.push_back(path_ + ": dataset '" + name +
                                  "' is contiguous (allowed); chunking it one expert per chunk is recommended");
          }
        });
      }
      const std::string b13 = layer_path(l, "experts/b13"), b2 = layer_path(l, "experts/b2");
      attempt([&] {
        EPMOE_REQUIRE(link_exists(file_, b13) == link_exists(file_, b2), ErrorKind::Input, path_,
                      ": datasets '", b13, "' and '", b2, "' must both exist or both be absent");
      });
    }
    auto present = [&](const char* name) {
      for (std::size_t i = 0; i < specs.size(); ++i)
        if (specs[i].name == name) return static_cast<bool>(present0[i]);
      return false;
    };
    c.has_router_bias = present("router/bias");
    c.has_correction_bias = present("router/e_score_correction_bias");
    c.has_expert_bias = present("experts/b13") && present("experts/b2");
    if (c.has_correction_bias) attempt([&] { c.validate(path_ + " (root attributes)"); });
    if (!c.has_shared() && link_exists(file_, "/layers/0/shared")) {
      r_.warnings.push_back(path_ + ": group '/layers/0/shared' is ignored because num_shared_experts = 0");
    }
    if (!c.has_latent() && link_exists(file_, "/layers/0/latent")) {
      r_.warnings.push_back(path_ + ": group '/layers/0/latent' is ignored because latent_size = 0");
    }
    if (link_exists(file_, "/layers/" + std::to_string(c.num_layers))) {
      r_.warnings.push_back(path_ + ": groups beyond /layers/" + std::to_string(c.num_layers - 1) +
                            " are ignored (num_layers = " + std::to_string(c.num_layers) + ")");
    }
  }

  // Every dataset under `group`, recursively (depth-limited: links may form cycles).
  void list(const std::string& group, int depth) {
    if (depth > 8) return;
    H5G_info_t info{};
    if (H5Gget_info_by_name(file_, group.c_str(), &info, H5P_DEFAULT) < 0) {
      H5Eclear2(H5E_DEFAULT);
      r_.problems.push_back(path_ + ": group '" + group + "' cannot be read (corrupted?)");
      return;
    }
    for (hsize_t i = 0; i < info.nlinks && i < 100000; ++i) {
      char name[1024] = {};
      const ssize_t len = H5Lget_name_by_idx(file_, group.c_str(), H5_INDEX_NAME, H5_ITER_INC, i, name,
                                             sizeof(name), H5P_DEFAULT);
      if (len < 0) {
        H5Eclear2(H5E_DEFAULT);
        continue;
      }
      const std::string child = (group == "/" ? "/" : group + "/") + name;
      const hid_t obj = H5Oopen(file_, child.c_str(), H5P_DEFAULT);
      if (obj < 0) {
        H5Eclear2(H5E_DEFAULT);
        r_.problems.push_back(path_ + ": object '" + child + "' cannot be opened (dangling link or corrupted)");
        continue;
      }
      Handle o(obj, H5Oclose);
      const H5I_type_t type = H5Iget_type(obj);
      if (type == H5I_GROUP) {
        list(child, depth + 1);
      } else if (type == H5I_DATASET) {
        attempt([&] { r_.datasets.push_back({child, describe_dataset(obj)}); });
      }
    }
  }

 private:
  hid_t file_;
  const std::string& path_;
  ContractReport& r_;
};

}  // namespace

ContractReport check_contract(hid_t file, const std::string& path, bool list_all) {
  ContractReport report;
  Checker checker(file, path, report);
  checker.attributes();
  if (report.attributes_ok) checker.layers();
  if (list_all) checker.list("/", 0);
  return report;
}

}  // namespace epmoe::io

namespace epmoe {

CheckpointReport inspect_checkpoint(const std::string& path) {
  io::Handle file = io::open_read(path);
  const io::ContractReport r = io::check_contract(file.get(), path, true);
  CheckpointReport out;
  out.config_ok = r.attributes_ok;
  out.config = r.config;
  out.problems = r.problems;
  out.warnings = r.warnings;
  out.bytes_per_expert = r.bytes_per_expert;
  hsize_t size = 0;
  if (H5Fget_filesize(file.get(), &size) >= 0) out.file_bytes = static_cast<long long>(size);
  H5Eclear2(H5E_DEFAULT);
  for (const auto& d : r.datasets) {
    CheckpointReport::Dataset e;
    e.name = d.name;
    e.shape.assign(d.shape.dims.begin(), d.shape.dims.end());
    e.chunk.assign(d.shape.chunk.begin(), d.shape.chunk.end());
    e.type = d.shape.type.description;
    out.datasets.push_back(e);
  }
  return out;
}

}  // namespace epmoe
