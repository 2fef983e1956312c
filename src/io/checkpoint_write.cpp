// Writing checkpoints: attributes, one chunk per expert, Fletcher-32 on every dataset, temp name + rename.
#include "contract.hpp"
#include "epmoe/checkpoint.hpp"
#include "h5.hpp"

namespace epmoe {

struct CheckpointWriter::Impl {
  io::TempPath temp;  // declared before `file`: the file is closed before the temporary is removed
  io::Handle file;
  ModelConfig config;
  DType dtype;
  io::Handle type;
  std::vector<bool> common_written;
  std::vector<std::vector<bool>> expert_written;
  std::vector<unsigned char> buffer;

  Impl(const std::string& path, const ModelConfig& c, DType d) : temp(path), config(c), dtype(d) {}

  std::string where(const std::string& name) const { return temp.final_path() + ": writing '" + name + "'"; }

  // A dataset of `dims`, chunked `chunk`, with a checksum per chunk.
  io::Handle create(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk) {
    io::Handle space = io::checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose,
                                   where(name));
    io::Handle dcpl = io::checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, where(name));
    io::check_status(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), where(name));
    io::check_status(H5Pset_fletcher32(dcpl.get()), where(name));
    io::check_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), where(name));
    io::Handle lcpl = io::checked(H5Pcreate(H5P_LINK_CREATE), H5Pclose, where(name));
    io::check_status(H5Pset_create_intermediate_group(lcpl.get(), 1), where(name));
    return io::checked(H5Dcreate2(file.get(), name.c_str(), type.get(), space.get(), lcpl.get(), dcpl.get(),
                                  H5P_DEFAULT),
                       H5Dclose, where(name));
  }

  // Writes `n` floats at hyperslab start/count of `dataset` in the stored type.
  void write(hid_t dataset, const std::string& name, const std::vector<hsize_t>& start,
             const std::vector<hsize_t>& count, const float* data) {
    hsize_t n = 1;
    for (hsize_t c : count) n *= c;
    buffer.resize(static_cast<std::size_t>(n) * dtype_bytes(dtype));
    io::encode(data, static_cast<std::size_t>(n), dtype, buffer.data());
    io::Handle file_space = io::checked(H5Dget_space(dataset), H5Sclose, where(name));
    io::check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                                         nullptr),
                     where(name));
    io::Handle mem_space = io::checked(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                                       H5Sclose, where(name));  // the selection's shape: whole-chunk mapping
    io::check_status(H5Dwrite(dataset, type.get(), mem_space.get(), file_space.get(), H5P_DEFAULT, buffer.data()),
                     where(name) + " failed (disk full?)");
  }

  void write_whole(const std::string& name, const std::vector<hsize_t>& dims, const float* data) {
    io::Handle d = create(name, dims, dims);
    write(d.get(), name, std::vector<hsize_t>(dims.size(), 0), dims, data);
  }
};

CheckpointWriter::CheckpointWriter(const std::string& path, const ModelConfig& c, DType dtype)
    : impl_(std::make_unique<Impl>(path, c, dtype)) {
  c.validate(path);
  impl_->file = io::create_file(impl_->temp);
  impl_->type = io::file_type(dtype);
  const hid_t f = impl_->file.get();
  io::write_int_attribute(f, "epmoe_format", 1);
  io::write_string_attribute(f, "model_type", c.model_type);
  io::write_int_attribute(f, "hidden_size", c.hidden_size);
  io::write_int_attribute(f, "moe_intermediate_size", c.moe_intermediate_size);
  io::write_int_attribute(f, "num_experts", c.num_experts);
  io::write_int_attribute(f, "top_k", c.top_k);
  io::write_int_attribute(f, "num_layers", c.num_layers);
  io::write_string_attribute(f, "scoring_func", to_string(c.scoring_func));
  io::write_string_attribute(f, "topk_method", to_string(c.topk_method));
  io::write_int_attribute(f, "n_group", c.n_group);
  io::write_int_attribute(f, "topk_group", c.topk_group);
  io::write_int_attribute(f, "norm_topk_prob", c.norm_topk_prob ? 1 : 0);
  io::write_float_attribute(f, "routed_scaling_factor", c.routed_scaling_factor);
  io::write_string_attribute(f, "activation", to_string(c.activation));
  io::write_float_attribute(f, "swiglu_alpha", c.swiglu_alpha);
  io::write_float_attribute(f, "swiglu_limit", c.swiglu_limit);
  io::write_int_attribute(f, "num_shared_experts", c.num_shared_experts);
  io::write_int_attribute(f, "shared_intermediate_size", c.shared_intermediate_size);
  io::write_int_attribute(f, "latent_size", c.latent_size);
  impl_->common_written.assign(c.num_layers, false);
  impl_->expert_written.assign(c.num_layers, std::vector<bool>(c.num_experts, false));
}

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::write_layer_common(int layer, const LayerWeights& w) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const std::string& path = m.temp.final_path();
  EPMOE_REQUIRE(layer >= 0 && layer < c.num_layers, ErrorKind::Input, path, ": layer ", layer, " out of range");
  EPMOE_REQUIRE(!m.common_written[layer], ErrorKind::Input, path, ": layer ", layer, " written twice");
  LayerWeights shape_only = w;  // check_shapes on the non-expert tensors: pretend no experts are held
  shape_only.expert_ids.clear();
  shape_only.w13.clear();
  shape_only.w2.clear();
  shape_only.b13.clear();
  shape_only.b2.clear();
  ModelConfig no_bias = c;
  no_bias.has_expert_bias = false;
  shape_only.check_shapes(no_bias, path);

  using V = std::vector<hsize_t>;
  for (const io::DatasetSpec& s : io::layer_dataset_specs(c)) {
    const std::string name = io::layer_path(layer, s.name);
    const float* data = nullptr;
    if (s.name == "router/weight") data = w.router_weight.data();
    if (s.name == "router/bias" && c.has_router_bias) data = w.router_bias.data();
    if (s.name == "router/e_score_correction_bias" && c.has_correction_bias) data = w.correction_bias.data();
    if (s.name == "shared/w13") data = w.shared_w13.data();
    if (s.name == "shared/w2") data = w.shared_w2.data();
    if (s.name == "latent/down") data = w.latent_down.data();
    if (s.name == "latent/up") data = w.latent_up.data();
    if (s.per_expert) {
      if (!s.required && !c.has_expert_bias) continue;
      V chunk = s.dims;
      chunk[0] = 1;  // one expert per chunk
      m.create(name, s.dims, chunk);
    } else if (data) {
      m.write_whole(name, s.dims, data);
    }
  }
  m.common_written[layer] = true;
}

void CheckpointWriter::write_experts(int layer, const LayerWeights& w) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const std::string& path = m.temp.final_path();
  EPMOE_REQUIRE(layer >= 0 && layer < c.num_layers && m.common_written[layer], ErrorKind::Input, path,
                ": write_layer_common(", layer, ") must come before write_experts");
  const std::size_t n = w.expert_ids.size();
  const std::size_t R13 = c.w13_rows(), Din = c.expert_width(), I = c.moe_intermediate_size;
  EPMOE_REQUIRE(w.w13.size() == n * R13 * Din && w.w2.size() == n * Din * I &&
                    (!c.has_expert_bias || (w.b13.size() == n * R13 && w.b2.size() == n * Din)),
                ErrorKind::Input, path, ": expert tensors of layer ", layer, " do not match ", c.summary());
  struct Tensor {
    const char* name;
    const std::vector<float>* data;
    std::vector<hsize_t> count;
  };
  std::vector<Tensor> tensors = {{"experts/w13", &w.w13, {1, R13, Din}}, {"experts/w2", &w.w2, {1, Din, I}}};
  if (c.has_expert_bias) {
    tensors.push_back({"experts/b13", &w.b13, {1, R13}});
    tensors.push_back({"experts/b2", &w.b2, {1, Din}});
  }
  for (const Tensor& t : tensors) {
    const std::string name = io::layer_path(layer, t.name);
    io::Handle d = io::checked(H5Dopen2(m.file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, m.where(name));
    std::size_t per = 1;
    for (hsize_t v : t.count) per *= v;
    for (std::size_t j = 0; j < n; ++j) {
      const int e = w.expert_ids[j];
      EPMOE_REQUIRE(e >= 0 && e < c.num_experts, ErrorKind::Input, path, ": expert id ", e, " out of range");
      std::vector<hsize_t> start(t.count.size(), 0);
      start[0] = static_cast<hsize_t>(e);
      m.write(d.get(), name, start, t.count, t.data->data() + j * per);
    }
  }
  for (int e : w.expert_ids) m.expert_written[layer][e] = true;
}

void CheckpointWriter::commit() {
  Impl& m = *impl_;
  const std::string& path = m.temp.final_path();
  for (int l = 0; l < m.config.num_layers; ++l) {
    EPMOE_REQUIRE(m.common_written[l], ErrorKind::Input, path, ": layer ", l, " was never written");
    for (int e = 0; e < m.config.num_experts; ++e)
      EPMOE_REQUIRE(m.expert_written[l][e], ErrorKind::Input, path, ": expert ", e, " of layer ", l,
                    " was never written");
  }
  m.type.reset();
  io::check_status(H5Fflush(m.file.get(), H5F_SCOPE_GLOBAL), path + ": flushing the file failed (disk full?)");
  io::check_status(m.file.close(), path + ": closing the file failed (disk full?)");
  m.temp.commit();
}

void write_checkpoint(const std::string& path, const ModelConfig& config, const std::vector<LayerWeights>& layers,
                      DType dtype) {
  EPMOE_REQUIRE(static_cast<int>(layers.size()) == config.num_layers, ErrorKind::Input, path, ": ", layers.size(),
                " layers given but num_layers = ", config.num_layers);
  CheckpointWriter writer(path, config, dtype);
  for (int l = 0; l < config.num_layers; ++l) {
    writer.write_layer_common(l, layers[l]);
    writer.write_experts(l, layers[l]);
  }
  writer.commit();
}

}  // namespace epmoe
