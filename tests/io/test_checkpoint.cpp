// Checkpoints written and read back: every mini preset x f32/f16/bf16, sharded reads at any rank count with the
// bytes each rank read, streaming writes in expert batches, token and output files, and the data/ files.
#include <cmath>
#include <mpi.h>

#include "epmoe/placement.hpp"
#include "epmoe/presets.hpp"
#include "epmoe/weights.hpp"
#include "io_test_util.hpp"

using namespace epmoe;
using namespace epmoe::testing;

namespace {

MpiComm world() { return MpiComm(MPI_COMM_WORLD); }

void require_same_config(const ModelConfig& a, const ModelConfig& b) {
  CHECK(a.summary() == b.summary());
  CHECK(a.model_type == b.model_type);
  CHECK(a.swiglu_alpha == b.swiglu_alpha);
  CHECK(a.swiglu_limit == b.swiglu_limit);
  CHECK(a.routed_scaling_factor == b.routed_scaling_factor);
  CHECK(a.has_router_bias == b.has_router_bias);
  CHECK(a.has_correction_bias == b.has_correction_bias);
  CHECK(a.has_expert_bias == b.has_expert_bias);
  CHECK(a.num_layers == b.num_layers);
}

// Every tensor of `read` equals `original` after rounding to `d`.
void require_same_weights(const LayerWeights& read, const LayerWeights& original, DType d) {
  CHECK(read.expert_ids == original.expert_ids);
  CHECK(same_stored(read.router_weight, original.router_weight, d));
  CHECK(same_stored(read.router_bias, original.router_bias, d));
  CHECK(same_stored(read.correction_bias, original.correction_bias, d));
  CHECK(same_stored(read.w13, original.w13, d));
  CHECK(same_stored(read.w2, original.w2, d));
  CHECK(same_stored(read.b13, original.b13, d));
  CHECK(same_stored(read.b2, original.b2, d));
  CHECK(same_stored(read.shared_w13, original.shared_w13, d));
  CHECK(same_stored(read.shared_w2, original.shared_w2, d));
  CHECK(same_stored(read.latent_down, original.latent_down, d));
  CHECK(same_stored(read.latent_up, original.latent_up, d));
}

// Stored bytes of a shard of `n` experts: the full router/shared/latent tensors plus n experts.
long long shard_bytes(const ModelConfig& c, std::size_t n, DType d) {
  const long long D = c.hidden_size, E = c.num_experts, Din = c.expert_width(), I = c.moe_intermediate_size;
  long long elements = E * D + (c.has_router_bias ? E : 0) + (c.has_correction_bias ? E : 0);
  long long per_expert = c.w13_rows() * Din + Din * I + (c.has_expert_bias ? c.w13_rows() + Din : 0);
  elements += static_cast<long long>(n) * per_expert;
  if (c.has_shared()) elements += static_cast<long long>(c.shared_w13_rows()) * D + D * c.shared_intermediate_size;
  if (c.has_latent()) elements += 2LL * c.latent_size * D;
  return elements * dtype_bytes(d);
}

std::vector<LayerWeights> generate_all(const ModelConfig& c, std::uint64_t seed) {
  std::vector<LayerWeights> layers;
  for (int l = 0; l < c.num_layers; ++l) layers.push_back(generate_layer_weights(c, seed, l, all_experts(c)));
  return layers;
}

}  // namespace

TEST_CASE("round trip: every mini preset x f32/f16/bf16", "[roundtrip]") {
  const MpiComm comm = world();
  for (const std::string& name : mini_preset_names()) {
    for (DType d : {DType::F32, DType::F16, DType::BF16}) {
      INFO(name << " " << to_string(d));
      const ModelConfig config = make_preset(name);
      const std::string path =
          scratch("roundtrip_" + name + "_" + to_string(d) + "_r" + std::to_string(comm.rank()) + ".h5");
      const std::vector<LayerWeights> layers = generate_all(config, 77);
      write_checkpoint(path, config, layers, d);
      const ModelConfig read = read_checkpoint_config(path);
      require_same_config(read, config);
      for (int l = 0; l < config.num_layers; ++l) {
        const LayerWeights w = read_layer_shard(path, read, l, all_experts(read), comm);
        require_same_weights(w, layers[l], d);
      }
      std::remove(path.c_str());
    }
  }
}

TEST_CASE("f16 and bf16 encoders round to nearest even like the hardware formats", "[roundtrip]") {
  // Exact cases with known encodings; the h5py test checks against numpy on random values.
  CHECK(io::float_to_half(1.0f) == 0x3c00);
  CHECK(io::float_to_half(-2.0f) == 0xc000);
  CHECK(io::float_to_half(65504.0f) == 0x7bff);
  CHECK(io::float_to_half(65520.0f) == 0x7c00);
  CHECK(io::float_to_half(1.0f + 1.0f / 2048) == 0x3c00);  // tie: to even
  CHECK(io::float_to_half(1.0f + 3.0f / 2048) == 0x3c02);  // tie: to even (up)
  CHECK(io::float_to_half(5.960464477539063e-08f) == 0x0001);
  CHECK(io::half_to_float(0x0001) == 5.960464477539063e-08f);
  CHECK(io::float_to_bfloat16(1.0f) == 0x3f80);
  CHECK(io::float_to_bfloat16(1.00390625f) == 0x3f80);  // 1 + 2^-8: tie, to even
  CHECK(io::float_to_bfloat16(1.01171875f) == 0x3f82);  // 1 + 3*2^-8: tie, to even (up)
  CHECK(io::bfloat16_to_float(0xc040) == -3.0f);
}

TEST_CASE("sharded read: each rank reads its experts' bytes, not the file's", "[shard]") {
  const MpiComm comm = world();
  for (const std::string& name : {std::string("gpt-oss-mini"), std::string("latent-mini"), std::string("qwen3-mini")}) {
    const ModelConfig config = make_preset(name);
    const DType d = DType::BF16;
    const std::string path = scratch("shard_" + name + "_np" + std::to_string(comm.size()) + ".h5");
    if (comm.rank() == 0) write_checkpoint(path, config, generate_all(config, 5), d);
    comm.barrier();
    const ModelConfig read = read_checkpoint_config(path);
    for (Placement kind : {Placement::Linear, Placement::RoundRobin}) {
      INFO(name << " placement " << to_string(kind) << " rank " << comm.rank() << "/" << comm.size());
      const ExpertPlacement placement(config.num_experts, comm.size(), kind);
      const std::vector<int>& mine = placement.experts_of(comm.rank());
      for (int l = 0; l < config.num_layers; ++l) {
        IoStats stats;
        const LayerWeights w = read_layer_shard(path, read, l, mine, comm, &stats);
        require_same_weights(w, generate_layer_weights(config, 5, l, mine), d);
        const long long expected = shard_bytes(config, mine.size(), d);
        CHECK(stats.bytes == expected);
        CHECK(stats.seconds > 0);
        // What the process really read from the OS: the shard plus HDF5 metadata (a few KB), never the file.
        REQUIRE(stats.os_bytes >= 0);
        CHECK(stats.os_bytes >= expected);
        CHECK(stats.os_bytes <= expected + 64 * 1024);
      }
    }
    comm.barrier();
    if (comm.rank() == 0) std::remove(path.c_str());
  }
}

TEST_CASE("streamed writing in expert batches equals writing whole layers", "[roundtrip]") {
  const MpiComm comm = world();
  const ModelConfig config = make_preset("deepseek-mini");
  const std::string path = scratch("batched_r" + std::to_string(comm.rank()) + ".h5");
  {
    CheckpointWriter writer(path, config, DType::F16);
    for (int l = 0; l < config.num_layers; ++l) {
      for (int first = 0; first < config.num_experts; first += 5) {  // uneven batches, last one short
        std::vector<int> ids;
        for (int e = first; e < std::min(first + 5, config.num_experts); ++e) ids.push_back(e);
        const LayerWeights w = generate_layer_weights(config, 9, l, ids);
        if (first == 0) writer.write_layer_common(l, w);
        writer.write_experts(l, w);
      }
    }
    writer.commit();
  }
  const ModelConfig read = read_checkpoint_config(path);
  for (int l = 0; l < config.num_layers; ++l)
    require_same_weights(read_layer_shard(path, read, l, all_experts(read), comm),
                         generate_layer_weights(config, 9, l, all_experts(config)), DType::F16);
  std::remove(path.c_str());
}

TEST_CASE("an uncommitted or incomplete writer leaves no file behind", "[roundtrip]") {
  const MpiComm comm = world();
  const ModelConfig config = make_preset("mixtral-mini");
  const std::string path = scratch("incomplete_r" + std::to_string(comm.rank()) + ".h5");
  std::remove(path.c_str());
  {
    CheckpointWriter writer(path, config, DType::F32);
    writer.write_layer_common(0, generate_layer_weights(config, 1, 0, {0, 1}));
    const std::string message = error_of([&] { writer.commit(); });
    CHECK(contains(message, path));
    CHECK(contains(message, "never written"));
  }
  CHECK(!file_exists(path));
}

TEST_CASE("token files: slices of f32, f16 and bf16 /hidden_states; output files", "[tokens]") {
  const MpiComm comm = world();
  const int T = 37, D = 24;
  const Matrix<float> x = generate_tokens(T, D, 3);
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    INFO(to_string(d));
    const std::string path = scratch(std::string("tokens_") + to_string(d) + "_r" + std::to_string(comm.rank()) + ".h5");
    {
      io::Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
      const hsize_t dims[2] = {T, D};
      io::Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
      io::Handle type = io::file_type(d);
      io::Handle ds(H5Dcreate2(f.get(), "/hidden_states", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT,
                               H5P_DEFAULT),
                    H5Dclose);
      REQUIRE(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data()) >= 0);
    }
    const TokenFileInfo info = token_file_info(path);
    CHECK(info.rows == T);
    CHECK(info.width == D);
    CHECK(info.dtype == d);
    const Matrix<float> slice = read_tokens(path, "/hidden_states", 5, 11, D);
    REQUIRE(slice.rows() == 11);
    // HDF5 converted the floats on write (its own rounding); the values read must be the stored ones exactly.
    for (int t = 0; t < 11; ++t)
      for (int c = 0; c < D; ++c) {
        const float v = x.at(5 + t, c);
        const float got = slice.at(t, c);
        CHECK(std::fabs(got - v) <= (d == DType::F32 ? 0.0f : std::fabs(v) * (d == DType::F16 ? 1e-3f : 8e-3f)));
      }
    CHECK(read_tokens(path, "/hidden_states", T, 0, D).rows() == 0);
    std::remove(path.c_str());
  }
  // Output file round trip.
  const std::string out = scratch("output_r" + std::to_string(comm.rank()) + ".h5");
  Matrix<int> ids(T, 4);
  Matrix<float> weights(T, 4);
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < 4; ++k) {
      ids.at(t, k) = (t * 7 + k) % 16;
      weights.at(t, k) = 0.25f + 0.01f * k;
    }
  write_output_file(out, x, ids, weights);
  const Matrix<float> back = read_tokens(out, "/output", 0, T, D);
  CHECK(back.storage() == x.storage());
  CHECK(read_tokens(out, "/topk_weights", 0, T, 4).storage() == weights.storage());
  {
    io::Handle f = io::open_read(out);
    io::Handle ds(H5Dopen2(f.get(), "/topk_ids", H5P_DEFAULT), H5Dclose);
    Matrix<int> ids_back(T, 4);
    REQUIRE(H5Dread(ds.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids_back.data()) >= 0);
    CHECK(ids_back.storage() == ids.storage());
  }
  std::remove(out.c_str());
}

TEST_CASE("data/ checkpoints hold what make-checkpoint generates for seed 1234", "[data]") {
  const MpiComm comm = world();
  for (const std::string& name : mini_preset_names()) {
    INFO(name);
    const std::string path = std::string(EPMOE_DATA_DIR) + "/" + name + ".h5";
    REQUIRE(file_exists(path));
    const ModelConfig read = read_checkpoint_config(path);
    ModelConfig preset = make_preset(name);
    preset.num_layers = read.num_layers;
    require_same_config(read, preset);
    const ExpertPlacement placement(read.num_experts, comm.size(), Placement::Linear);
    const std::vector<int>& mine = placement.experts_of(comm.rank());
    for (int l = 0; l < read.num_layers; ++l)
      require_same_weights(read_layer_shard(path, read, l, mine, comm), generate_layer_weights(preset, 1234, l, mine),
                           DType::BF16);
  }
}
