// Corrupts a real data file (data/latent-mini.h5) one byte at a time at many offsets and reads it completely after
// each flip: the outcome must be a clean epmoe::Error, or (for a byte HDF5 never looks at) exactly the original
// weights. Never a crash, never silently different numbers: the writer puts a Fletcher-32 checksum on every
// dataset and uses HDF5's checksummed metadata. CI also runs this under AddressSanitizer (EPMOE_SANITIZE=ON).
#include <mpi.h>

#include <fstream>
#include <iterator>

#include "epmoe/weights.hpp"
#include "io_test_util.hpp"

using namespace epmoe;
using namespace epmoe::testing;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Everything a run would load: the config and every layer with all experts.
struct Loaded {
  ModelConfig config;
  std::vector<LayerWeights> layers;
};

Loaded load_all(const std::string& path, const MpiComm& comm) {
  Loaded out;
  out.config = read_checkpoint_config(path);
  for (int l = 0; l < out.config.num_layers; ++l)
    out.layers.push_back(read_layer_shard(path, out.config, l, all_experts(out.config), comm));
  return out;
}

bool same(const Loaded& a, const Loaded& b) {
  if (a.config.summary() != b.config.summary() || a.layers.size() != b.layers.size()) return false;
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const LayerWeights &x = a.layers[l], &y = b.layers[l];
    if (x.router_weight.storage() != y.router_weight.storage() || x.router_bias != y.router_bias ||
        x.correction_bias != y.correction_bias || x.w13 != y.w13 || x.w2 != y.w2 || x.b13 != y.b13 ||
        x.b2 != y.b2 || x.shared_w13.storage() != y.shared_w13.storage() ||
        x.shared_w2.storage() != y.shared_w2.storage() || x.latent_down.storage() != y.latent_down.storage() ||
        x.latent_up.storage() != y.latent_up.storage())
      return false;
  }
  return true;
}

// Offsets to corrupt: densely over the first 8 KB (superblock, root object header, first metadata), evenly over
// the whole file, densely over the last 2 KB, and pseudo-random ones.
std::vector<std::size_t> offsets(std::size_t size) {
  std::vector<std::size_t> v;
  for (std::size_t o = 0; o < std::min<std::size_t>(size, 8192); o += 5) v.push_back(o);
  for (std::size_t i = 0; i < 600; ++i) v.push_back(i * size / 600);
  for (std::size_t o = size > 2048 ? size - 2048 : 0; o < size; o += 7) v.push_back(o);
  std::uint64_t state = 12345;
  for (int i = 0; i < 300; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v.push_back(static_cast<std::size_t>(state >> 33) % size);
  }
  return v;
}

}  // namespace

TEST_CASE("a corrupted byte anywhere gives a clean error or the original weights", "[corruption]") {
  const MpiComm comm(MPI_COMM_WORLD);
  const std::string source = std::string(EPMOE_DATA_DIR) + "/latent-mini.h5";
  const std::string original = read_bytes(source);
  REQUIRE(original.size() > 100000);
  const Loaded reference = load_all(source, comm);
  const std::string path = scratch("corrupt_r" + std::to_string(comm.rank()) + ".h5");
  long clean_errors = 0, untouched = 0, silent = 0;
  for (std::size_t offset : offsets(original.size())) {
    std::string bytes = original;
    bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5a);
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    try {
      const Loaded loaded = load_all(path, comm);
      if (same(loaded, reference)) {
        ++untouched;
      } else {
        ++silent;
        FAIL_CHECK("byte " << offset << " changed the weights without an error");
      }
    } catch (const Error& e) {
      ++clean_errors;
      const std::string message = e.what();
      if (!contains(message, path)) FAIL_CHECK("byte " << offset << ": message does not name the file: " << message);
    }
    // inspect walks every object of the corrupted file: it must report or throw cleanly too.
    try {
      (void)inspect_checkpoint(path);
    } catch (const Error&) {
    }
  }
  INFO("clean errors " << clean_errors << ", bytes HDF5 never reads " << untouched << ", silent changes " << silent);
  CHECK(silent == 0);
  CHECK(clean_errors > 500);  // most bytes are data or metadata that a checksum covers
  std::remove(path.c_str());
}
