// Files written by h5py (tests/io/write_h5py_checkpoint.py, run by CTest first) load: attributes of Python's
// types, float32/float16/bfloat16 datasets, contiguous or chunked, optional attributes absent. The encoders match
// numpy's float16 and a round-to-nearest-even bfloat16 on random values.
#include <mpi.h>

#include "epmoe/placement.hpp"
#include "io_test_util.hpp"

using namespace epmoe;
using namespace epmoe::testing;

namespace {

const std::vector<std::string> kNames = {"router/weight", "router/bias", "router/e_score_correction_bias",
                                         "experts/w13", "experts/w2", "experts/b13", "experts/b2",
                                         "shared/w13", "shared/w2", "latent/down", "latent/up"};

// The script's value(tensor_id, i).
float value(int tensor_id, long long i) {
  return static_cast<float>(((i * 37 + tensor_id * 11) % 255) - 127) / 64.0f;
}

int tensor_id(int layer, const std::string& name) {
  for (std::size_t t = 0; t < kNames.size(); ++t)
    if (kNames[t] == name) return 100 * layer + static_cast<int>(t);
  return -1;
}

// Expected contents of a whole tensor, or of the experts `ids` of a per-expert tensor.
std::vector<float> expected(int layer, const std::string& name, std::size_t size, const std::vector<int>* ids = nullptr,
                            std::size_t per_expert = 0) {
  std::vector<float> v;
  const int id = tensor_id(layer, name);
  if (!ids) {
    for (std::size_t i = 0; i < size; ++i) v.push_back(value(id, static_cast<long long>(i)));
    return v;
  }
  for (int e : *ids)
    for (std::size_t j = 0; j < per_expert; ++j)
      v.push_back(value(id, static_cast<long long>(e) * static_cast<long long>(per_expert) + static_cast<long long>(j)));
  return v;
}

std::string fixture(const std::string& name) { return scratch(name); }

}  // namespace

TEST_CASE("an h5py-written file with every optional part loads", "[h5py]") {
  const MpiComm comm(MPI_COMM_WORLD);
  const std::string path = fixture("h5py_full.h5");
  const ModelConfig c = read_checkpoint_config(path);
  CHECK(c.model_type == "custom-h5py");
  CHECK(c.hidden_size == 24);
  CHECK(c.moe_intermediate_size == 16);
  CHECK(c.num_experts == 6);
  CHECK(c.top_k == 2);
  CHECK(c.num_layers == 2);
  CHECK(c.scoring_func == ScoringFunc::Sigmoid);
  CHECK(c.topk_method == TopkMethod::Grouped);
  CHECK(c.n_group == 2);
  CHECK(c.topk_group == 1);
  CHECK(c.norm_topk_prob);
  CHECK(c.routed_scaling_factor == 2.5f);
  CHECK(c.activation == Activation::SwigluOai);
  CHECK(c.swiglu_alpha == 1.5f);
  CHECK(c.swiglu_limit == 6.0f);
  CHECK(c.num_shared_experts == 1);
  CHECK(c.shared_intermediate_size == 20);
  CHECK(c.latent_size == 12);
  CHECK(c.has_router_bias);
  CHECK(c.has_correction_bias);
  CHECK(c.has_expert_bias);
  const ExpertPlacement placement(c.num_experts, comm.size(), Placement::RoundRobin);
  const std::vector<int>& ids = placement.experts_of(comm.rank());
  const std::size_t R13 = c.w13_rows(), L = c.latent_size, I = c.moe_intermediate_size, D = c.hidden_size;
  for (int l = 0; l < c.num_layers; ++l) {
    INFO("layer " << l);
    const LayerWeights w = read_layer_shard(path, c, l, ids, comm);
    CHECK(w.router_weight.storage() == expected(l, "router/weight", 6 * D));
    CHECK(w.router_bias == expected(l, "router/bias", 6));
    CHECK(w.correction_bias == expected(l, "router/e_score_correction_bias", 6));
    CHECK(w.w13 == expected(l, "experts/w13", 0, &ids, R13 * L));
    CHECK(w.w2 == expected(l, "experts/w2", 0, &ids, L * I));
    CHECK(w.b13 == expected(l, "experts/b13", 0, &ids, R13));
    CHECK(w.b2 == expected(l, "experts/b2", 0, &ids, L));
    CHECK(w.shared_w13.storage() == expected(l, "shared/w13", 40 * D));
    CHECK(w.shared_w2.storage() == expected(l, "shared/w2", D * 20));
    CHECK(w.latent_down.storage() == expected(l, "latent/down", L * D));
    CHECK(w.latent_up.storage() == expected(l, "latent/up", D * L));
  }
}

TEST_CASE("an h5py-written file with only the required attributes takes the defaults", "[h5py]") {
  const MpiComm comm(MPI_COMM_WORLD);
  const std::string path = fixture("h5py_minimal.h5");
  const ModelConfig c = read_checkpoint_config(path);
  CHECK(c.model_type == "custom");
  CHECK(c.topk_method == TopkMethod::Plain);
  CHECK(c.n_group == 1);
  CHECK(c.topk_group == 1);
  CHECK(!c.norm_topk_prob);
  CHECK(c.routed_scaling_factor == 1.0f);
  CHECK(c.num_shared_experts == 0);
  CHECK(c.latent_size == 0);
  CHECK(c.activation == Activation::Relu2);
  CHECK(!c.has_router_bias);
  CHECK(!c.has_correction_bias);
  CHECK(!c.has_expert_bias);
  const std::vector<int> ids = {1, 3};
  const LayerWeights w = read_layer_shard(path, c, 0, ids, comm);
  CHECK(w.w13 == expected(0, "experts/w13", 0, &ids, 8 * 16));
  CHECK(w.w2 == expected(0, "experts/w2", 0, &ids, 16 * 8));
  CHECK(w.router_weight.storage() == expected(0, "router/weight", 4 * 16));
}

TEST_CASE("f16 and bf16 encoders equal numpy's on random values", "[h5py]") {
  const std::string path = fixture("h5py_encoders.h5");
  io::Handle f = io::open_read(path);
  auto read = [&](const char* name, hid_t mem, void* out) {
    io::Handle d(H5Dopen2(f.get(), name, H5P_DEFAULT), H5Dclose);
    REQUIRE(d.valid());
    REQUIRE(H5Dread(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
  };
  io::Handle d(H5Dopen2(f.get(), "x32", H5P_DEFAULT), H5Dclose);
  io::Handle space(H5Dget_space(d.get()), H5Sclose);
  const std::size_t n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get()));
  REQUIRE(n > 10000);
  std::vector<float> x(n);
  std::vector<std::uint16_t> f16(n), bf16(n);
  read("x32", H5T_NATIVE_FLOAT, x.data());
  read("f16_bits", H5T_NATIVE_UINT16, f16.data());
  read("bf16_bits", H5T_NATIVE_UINT16, bf16.data());
  std::size_t f16_mismatch = 0, bf16_mismatch = 0, decode_mismatch = 0;
  for (std::size_t i = 0; i < n; ++i) {
    f16_mismatch += io::float_to_half(x[i]) != f16[i];
    bf16_mismatch += io::float_to_bfloat16(x[i]) != bf16[i];
    decode_mismatch += io::float_to_half(io::half_to_float(f16[i])) != f16[i];
  }
  CHECK(f16_mismatch == 0);
  CHECK(bf16_mismatch == 0);
  CHECK(decode_mismatch == 0);
}
