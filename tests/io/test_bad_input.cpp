// Every bad input of issue 3 gives one epmoe::Error (kind Input or Config) whose message names the file and the
// attribute or dataset, and no partial output file is left behind.
#include <mpi.h>

#include <fstream>

#include "epmoe/presets.hpp"
#include "epmoe/weights.hpp"
#include "io_test_util.hpp"

using namespace epmoe;
using namespace epmoe::testing;

namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.model_type = "test";
  c.hidden_size = 16;
  c.moe_intermediate_size = 8;
  c.num_experts = 4;
  c.top_k = 2;
  c.num_layers = 2;
  c.has_router_bias = true;
  return c;
}

std::string rank_name(const std::string& base) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return scratch(base + "_r" + std::to_string(rank) + ".h5");
}

// A valid checkpoint of `c`, then `edit` applied with the HDF5 API.
std::string broken_file(const std::string& name, const ModelConfig& c, const std::function<void(hid_t)>& edit) {
  const std::string path = rank_name(name);
  std::vector<LayerWeights> layers;
  for (int l = 0; l < c.num_layers; ++l) layers.push_back(generate_layer_weights(c, 1, l, all_experts(c)));
  write_checkpoint(path, c, layers, DType::F32);
  io::Handle f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  REQUIRE(f.valid());
  edit(f.get());
  return path;
}

void set_int(hid_t f, const char* name, long long v) {
  if (H5Aexists(f, name) > 0) H5Adelete(f, name);
  io::write_int_attribute(f, name, v);
}

void set_string(hid_t f, const char* name, const std::string& v) {
  if (H5Aexists(f, name) > 0) H5Adelete(f, name);
  io::write_string_attribute(f, name, v);
}

// Replaces dataset `name` with one of `dims` and HDF5 type `type`.
void replace_dataset(hid_t f, const std::string& name, const std::vector<hsize_t>& dims, hid_t type) {
  H5Ldelete(f, name.c_str(), H5P_DEFAULT);
  io::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  io::Handle d(H5Dcreate2(f, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  REQUIRE(d.valid());
}

// The config read of `path` fails with a message naming the file and every one of `parts`.
void require_config_error(const std::string& path, const std::vector<std::string>& parts) {
  ErrorKind kind = ErrorKind::Runtime;
  std::string message;
  try {
    read_checkpoint_config(path);
  } catch (const Error& e) {
    kind = e.kind();
    message = e.what();
  }
  INFO(message);
  CHECK((kind == ErrorKind::Input || kind == ErrorKind::Config));
  CHECK(contains(message, path));
  for (const auto& p : parts) CHECK(contains(message, p));
  // inspect reports the same problem instead of throwing (when the file opens at all).
  if (file_exists(path) && contains(message, "dataset") == contains(message, "dataset")) {
    try {
      const CheckpointReport r = inspect_checkpoint(path);
      CHECK(!r.valid());
    } catch (const Error& e) {
      CHECK(contains(e.what(), path));
    }
  }
  std::remove(path.c_str());
}

}  // namespace

TEST_CASE("files that cannot be opened", "[bad]") {
  const std::string missing = rank_name("does_not_exist");
  std::remove(missing.c_str());
  require_config_error(missing, {"cannot open", "No such file"});

  const std::string text = rank_name("not_hdf5");
  std::ofstream(text) << "this is not an HDF5 file\n";
  require_config_error(text, {"not an HDF5 file"});

  const std::string empty = rank_name("empty");
  std::ofstream(empty).flush();
  require_config_error(empty, {"not an HDF5 file"});

  const std::string dir = scratch("a_directory.h5");
  mkdir(dir.c_str(), 0755);
  CHECK(contains(error_of([&] { read_checkpoint_config(dir); }), "is a directory"));
}

TEST_CASE("a truncated file", "[bad]") {
  const ModelConfig c = small_config();
  const std::string path = broken_file("truncated", c, [](hid_t) {});
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (std::size_t keep : {bytes.size() / 2, bytes.size() - 1, std::size_t{100}}) {
    INFO("kept " << keep << " of " << bytes.size() << " bytes");
    const std::string cut = rank_name("truncated_cut");
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    require_config_error(cut, {"truncated or corrupted"});
  }
  std::remove(path.c_str());
}

TEST_CASE("root attributes: format, missing, wrong type, unknown value, not scalar", "[bad]") {
  const ModelConfig c = small_config();
  require_config_error(broken_file("format2", c, [](hid_t f) { set_int(f, "epmoe_format", 2); }),
                       {"'epmoe_format'", "is 2", "version 1"});
  require_config_error(broken_file("noformat", c, [](hid_t f) { H5Adelete(f, "epmoe_format"); }),
                       {"'epmoe_format'", "missing", "not an epmoe checkpoint"});
  require_config_error(broken_file("nohidden", c, [](hid_t f) { H5Adelete(f, "hidden_size"); }),
                       {"'hidden_size'", "missing"});
  require_config_error(broken_file("hiddenstr", c, [](hid_t f) { set_string(f, "hidden_size", "16"); }),
                       {"'hidden_size'", "expected an integer", "string"});
  require_config_error(broken_file("tanh", c, [](hid_t f) { set_string(f, "activation", "tanh"); }),
                       {"'activation'", "tanh", "silu"});
  require_config_error(broken_file("negative", c, [](hid_t f) { set_int(f, "num_experts", -4); }),
                       {"'num_experts'", "-4"});
  require_config_error(broken_file("array", c,
                                   [](hid_t f) {
                                     H5Adelete(f, "top_k");
                                     const hsize_t two = 2;
                                     io::Handle s(H5Screate_simple(1, &two, nullptr), H5Sclose);
                                     io::Handle a(H5Acreate2(f, "top_k", H5T_STD_I32LE, s.get(), H5P_DEFAULT,
                                                             H5P_DEFAULT),
                                                  H5Aclose);
                                     const int v[2] = {1, 2};
                                     H5Awrite(a.get(), H5T_NATIVE_INT, v);
                                   }),
                       {"'top_k'", "single value"});
}

TEST_CASE("inconsistent attributes", "[bad]") {
  const ModelConfig c = small_config();
  require_config_error(broken_file("topk", c, [](hid_t f) { set_int(f, "top_k", 5); }), {"top_k", "num_experts"});
  require_config_error(broken_file("ngroup", c,
                                   [](hid_t f) {
                                     set_string(f, "topk_method", "grouped");
                                     set_int(f, "n_group", 3);
                                   }),
                       {"n_group", "divide"});
  require_config_error(broken_file("latent", c, [](hid_t f) { set_int(f, "latent_size", 8); }),
                       {"/layers/0/latent/down", "latent_size = 8"});
  require_config_error(broken_file("shared", c,
                                   [](hid_t f) {
                                     set_int(f, "num_shared_experts", 1);
                                     set_int(f, "shared_intermediate_size", 8);
                                   }),
                       {"/layers/0/shared/w13", "num_shared_experts = 1"});
  require_config_error(broken_file("layers", c, [](hid_t f) { set_int(f, "num_layers", 3); }),
                       {"'/layers/2'", "num_layers = 3"});
}

TEST_CASE("datasets: missing, wrong shape, unsupported type, inconsistent across layers", "[bad]") {
  const ModelConfig c = small_config();
  require_config_error(broken_file("now2", c, [](hid_t f) { H5Ldelete(f, "/layers/1/experts/w2", H5P_DEFAULT); }),
                       {"'/layers/1/experts/w2'", "missing"});
  require_config_error(broken_file("norouter", c, [](hid_t f) { H5Ldelete(f, "/layers/0/router", H5P_DEFAULT); }),
                       {"'/layers/0/router/weight'", "missing"});
  require_config_error(broken_file("shape", c,
                                   [](hid_t f) { replace_dataset(f, "/layers/0/router/weight", {4, 17}, H5T_IEEE_F32LE); }),
                       {"'/layers/0/router/weight'", "[4, 17]", "[4, 16]"});
  require_config_error(broken_file("rank", c,
                                   [](hid_t f) { replace_dataset(f, "/layers/1/experts/w13", {4, 256}, H5T_IEEE_F32LE); }),
                       {"'/layers/1/experts/w13'", "shape"});
  require_config_error(broken_file("f64", c,
                                   [](hid_t f) { replace_dataset(f, "/layers/0/experts/w13", {4, 16, 16}, H5T_IEEE_F64LE); }),
                       {"'/layers/0/experts/w13'", "float64"});
  require_config_error(broken_file("i32", c,
                                   [](hid_t f) { replace_dataset(f, "/layers/0/router/weight", {4, 16}, H5T_STD_I32LE); }),
                       {"'/layers/0/router/weight'", "int32"});
  require_config_error(broken_file("optional", c,
                                   [](hid_t f) { H5Ldelete(f, "/layers/0/router/bias", H5P_DEFAULT); }),
                       {"'/layers/1/router/bias'", "layer 0"});
  require_config_error(broken_file("group", c,
                                   [](hid_t f) {
                                     H5Ldelete(f, "/layers/0/router/weight", H5P_DEFAULT);
                                     io::Handle g(H5Gcreate2(f, "/layers/0/router/weight", H5P_DEFAULT, H5P_DEFAULT,
                                                             H5P_DEFAULT),
                                                  H5Gclose);
                                   }),
                       {"'/layers/0/router/weight'", "cannot be opened"});
}

TEST_CASE("shard requests out of range", "[bad]") {
  const MpiComm comm(MPI_COMM_WORLD);
  const ModelConfig c = small_config();
  const std::string path = broken_file("ok", c, [](hid_t) {});
  const ModelConfig read = read_checkpoint_config(path);
  CHECK(contains(error_of([&] { read_layer_shard(path, read, 2, {0}, comm); }), "layer 2"));
  CHECK(contains(error_of([&] { read_layer_shard(path, read, 0, {1, 0}, comm); }), "ascend"));
  CHECK(contains(error_of([&] { read_layer_shard(path, read, 0, {4}, comm); }), "[0, 4)"));
  std::remove(path.c_str());
}

TEST_CASE("token files: missing dataset, wrong width, wrong type, rows out of range", "[bad]") {
  const std::string path = rank_name("tokens");
  {
    io::TempPath temp(path);
    io::Handle f = io::create_file(temp);
    replace_dataset(f.get(), "/hidden_states", {10, 12}, H5T_IEEE_F32LE);
    replace_dataset(f.get(), "/doubles", {10, 16}, H5T_IEEE_F64LE);
    replace_dataset(f.get(), "/vector", {10}, H5T_IEEE_F32LE);
    f.close();
    temp.commit();
  }
  std::string m = error_of([&] { read_tokens(path, "/hidden_states", 0, 10, 16); });
  CHECK(contains(m, path));
  CHECK(contains(m, "'/hidden_states'"));
  CHECK(contains(m, "width 12"));
  CHECK(contains(m, "hidden_size is 16"));
  m = error_of([&] { read_tokens(path, "/missing", 0, 1, 12); });
  CHECK(contains(m, "'/missing'"));
  CHECK(contains(m, "missing"));
  m = error_of([&] { read_tokens(path, "/doubles", 0, 1, 16); });
  CHECK(contains(m, "'/doubles'"));
  CHECK(contains(m, "float64"));
  m = error_of([&] { token_file_info(path, "/vector"); });
  CHECK(contains(m, "2 dimensions"));
  m = error_of([&] { read_tokens(path, "/hidden_states", 5, 6, 12); });
  CHECK(contains(m, "out of range"));
  std::remove(path.c_str());
}

TEST_CASE("outputs that cannot be written leave nothing behind", "[bad]") {
  const std::string dir = scratch("no_such_dir_x") + "/sub";
  const std::string out = dir + "/out.h5";
  Matrix<float> x(3, 4);
  Matrix<int> ids(3, 2);
  Matrix<float> w(3, 2);
  std::string m = error_of([&] { write_output_file(out, x, ids, w); });
  CHECK(contains(m, out));
  CHECK(contains(m, "writable"));
  CHECK(!file_exists(out));

  const ModelConfig c = small_config();
  std::vector<LayerWeights> layers;
  for (int l = 0; l < c.num_layers; ++l) layers.push_back(generate_layer_weights(c, 1, l, all_experts(c)));
  m = error_of([&] { write_checkpoint(out, c, layers, DType::BF16); });
  CHECK(contains(m, out));

  // A writer failing halfway (layer 1's tensors do not fit the config) leaves neither the file nor its temporary.
  const std::string path = rank_name("halfway");
  std::remove(path.c_str());
  layers[1].w2.pop_back();
  m = error_of([&] { write_checkpoint(path, c, layers, DType::F32); });
  CHECK(contains(m, path));
  CHECK(!file_exists(path));
  // This rank's temporary (path + ".tmp-..."): another rank's may legitimately exist while it is still writing.
  const std::string dir_of = scratch("");
  const std::string mine = path.substr(path.find_last_of('/') + 1);
  const std::string cmd = "ls '" + dir_of + "' | grep -F -c '" + mine + ".tmp' > /dev/null";
  CHECK(std::system(cmd.c_str()) != 0);  // grep finds no temporary file of this rank
}
