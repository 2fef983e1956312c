// Reading checkpoints: the config (with the whole contract checked) and one rank's shard of a layer.
#include <chrono>

#include "contract.hpp"
#include "epmoe/checkpoint.hpp"
#include "h5.hpp"

namespace epmoe {

const char* to_string(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
  }
  return "?";
}

DType parse_dtype(const std::string& s, const std::string& what) {
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "f16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  EPMOE_THROW(ErrorKind::Usage, what, ": unknown element type '", s, "'; accepted: f32, f16, bf16");
}

int dtype_bytes(DType d) { return d == DType::F32 ? 4 : 2; }

void IoStats::add(const IoStats& o) {
  bytes += o.bytes;
  seconds += o.seconds;
  if (o.os_bytes >= 0) os_bytes = (os_bytes < 0 ? 0 : os_bytes) + o.os_bytes;
}

ModelConfig read_checkpoint_config(const std::string& path) {
  io::Handle file = io::open_read(path);
  const io::ContractReport report = io::check_contract(file.get(), path, false);
  if (!report.problems.empty()) {
    const std::size_t more = report.problems.size() - 1;
    EPMOE_THROW(report.first_kind, report.problems.front(),
                more ? detail::concat(" (and ", more, " more problem", more > 1 ? "s" : "",
                                      "; 'epmoe inspect ", path, "' lists them all)")
                     : std::string());
  }
  return report.config;
}

namespace {

class ShardReader {
 public:
  ShardReader(const std::string& path, const ModelConfig& config, int layer, const MpiComm& comm)
      : path_(path), config_(config), layer_(layer), comm_(comm) {
    file_ = io::open_read(path, &comm);
#ifdef EPMOE_HDF5_PARALLEL
    if (comm.size() > 1) {
      dxpl_ = io::checked(H5Pcreate(H5P_DATASET_XFER), H5Pclose, path + ": H5Pcreate");
      io::check_status(H5Pset_dxpl_mpio(dxpl_.get(), H5FD_MPIO_COLLECTIVE), path + ": H5Pset_dxpl_mpio");
    }
#endif
  }

  hid_t dxpl() const { return dxpl_.valid() ? dxpl_.get() : H5P_DEFAULT; }

  const io::DatasetSpec& spec(const std::string& name) {
    if (specs_.empty()) specs_ = io::layer_dataset_specs(config_);
    for (const auto& s : specs_)
      if (s.name == name) return s;
    EPMOE_ASSERT(false, "no spec for ", name);
  }

  // A whole (non-expert) tensor into `out` (its size must match).
  void read_full(const std::string& name, float* out) {
    const io::DatasetSpec& s = spec(name);
    const std::string full = io::layer_path(layer_, name);
    io::DatasetShape shape;
    io::Handle d = io::open_checked_dataset(file_.get(), path_, full, s.dims, s.dims_label, &shape);
    const std::vector<hsize_t> start(s.dims.size(), 0);
    bytes_ += io::read_floats(d.get(), shape, start, s.dims, out, dxpl(),
                              path_ + ": dataset '" + full + "'");
  }

  // The experts `ids` of experts/<name> into `out` ([ids.size(), rows(, cols)] floats), one hyperslab per expert.
  void read_experts(const std::string& name, const std::vector<int>& ids, float* out) {
    const io::DatasetSpec& s = spec(name);
    const std::string full = io::layer_path(layer_, name);
    io::DatasetShape shape;
    io::Handle d = io::open_checked_dataset(file_.get(), path_, full, s.dims, s.dims_label, &shape);
    std::vector<hsize_t> count = s.dims;
    count[0] = 1;
    hsize_t per_expert = 1;
    for (std::size_t k = 1; k < count.size(); ++k) per_expert *= count[k];
    std::size_t calls = ids.size();
#ifdef EPMOE_HDF5_PARALLEL
    // Collective reads: every rank makes the same number of calls; ranks with fewer experts select nothing.
    if (comm_.size() > 1) calls = static_cast<std::size_t>(comm_.max(static_cast<double>(ids.size())));
#endif
    std::vector<hsize_t> start(s.dims.size(), 0);
    std::vector<hsize_t> none(s.dims.size(), 0);
    for (std::size_t j = 0; j < calls; ++j) {
      const bool mine = j < ids.size();
      if (mine) start[0] = static_cast<hsize_t>(ids[j]);
      bytes_ += io::read_floats(d.get(), shape, start, mine ? count : none, mine ? out + j * per_expert : nullptr,
                                dxpl(), path_ + ": dataset '" + full + "' (expert " +
                                            std::to_string(mine ? ids[j] : -1) + ")");
    }
  }

  long long bytes() const { return bytes_; }

 private:
  const std::string& path_;
  const ModelConfig& config_;
  int layer_;
  const MpiComm& comm_;
  io::Handle file_;
  io::Handle dxpl_;
  std::vector<io::DatasetSpec> specs_;
  long long bytes_ = 0;
};

}  // namespace

LayerWeights read_layer_shard(const std::string& path, const ModelConfig& c, int layer,
                              const std::vector<int>& expert_ids, const MpiComm& comm, IoStats* stats,
                              LayerParts parts) {
  EPMOE_ASSERT(parts == LayerParts::All || expert_ids.empty(), "a router-only layer holds no experts");
  const auto t0 = std::chrono::steady_clock::now();
  const long long os0 = io::os_read_bytes();
  EPMOE_REQUIRE(layer >= 0 && layer < c.num_layers, ErrorKind::Input, path, ": layer ", layer,
                " does not exist (num_layers = ", c.num_layers, ")");
  for (std::size_t j = 0; j < expert_ids.size(); ++j) {
    EPMOE_REQUIRE(expert_ids[j] >= 0 && expert_ids[j] < c.num_experts && (j == 0 || expert_ids[j] > expert_ids[j - 1]),
                  ErrorKind::Input, path, ": expert ids must ascend within [0, ", c.num_experts, ")");
  }
  LayerWeights w;
  long long bytes = 0;
  {
    ShardReader reader(path, c, layer, comm);
    const std::size_t n = expert_ids.size();
    const int D = c.hidden_size, Din = c.expert_width(), I = c.moe_intermediate_size, R13 = c.w13_rows();
    w.router_weight = Matrix<float>(c.num_experts, D);
    reader.read_full("router/weight", w.router_weight.data());
    if (c.has_router_bias) {
      w.router_bias.resize(c.num_experts);
      reader.read_full("router/bias", w.router_bias.data());
    }
    if (c.has_correction_bias) {
      w.correction_bias.resize(c.num_experts);
      reader.read_full("router/e_score_correction_bias", w.correction_bias.data());
    }
    if (parts == LayerParts::All) {  // else the router's tensors alone
      w.expert_ids = expert_ids;
      w.w13.resize(n * static_cast<std::size_t>(R13) * Din);
      w.w2.resize(n * static_cast<std::size_t>(Din) * I);
      reader.read_experts("experts/w13", expert_ids, w.w13.data());
      reader.read_experts("experts/w2", expert_ids, w.w2.data());
      if (c.has_expert_bias) {
        w.b13.resize(n * R13);
        w.b2.resize(n * Din);
        reader.read_experts("experts/b13", expert_ids, w.b13.data());
        reader.read_experts("experts/b2", expert_ids, w.b2.data());
      }
      if (c.has_shared()) {
        w.shared_w13 = Matrix<float>(c.shared_w13_rows(), D);
        w.shared_w2 = Matrix<float>(D, c.shared_intermediate_size);
        reader.read_full("shared/w13", w.shared_w13.data());
        reader.read_full("shared/w2", w.shared_w2.data());
      }
      if (c.has_latent()) {
        w.latent_down = Matrix<float>(c.latent_size, D);
        w.latent_up = Matrix<float>(D, c.latent_size);
        reader.read_full("latent/down", w.latent_down.data());
        reader.read_full("latent/up", w.latent_up.data());
      }
    }
    bytes = reader.bytes();
  }  // the file is closed here, inside the timed region
  if (stats) {
    IoStats s;
    s.bytes = bytes;
    const long long os1 = io::os_read_bytes();
    s.os_bytes = (os0 >= 0 && os1 >= 0) ? os1 - os0 : -1;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats->add(s);
  }
  return w;
}

}  // namespace epmoe
