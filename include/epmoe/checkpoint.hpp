// HDF5 checkpoints (the v1 contract, docs/checkpoint-format.md) and token files: read the config, read one rank's
// shard of a layer, write checkpoints, read and write token tensors. Every failure is an epmoe::Error of kind
// Input or Config whose message names the file and the dataset or attribute and says what to do; HDF5's own error
// printing is silenced.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "epmoe/comm.hpp"
#include "epmoe/config.hpp"
#include "epmoe/tensor.hpp"
#include "epmoe/weights.hpp"

namespace epmoe {

// Element types a checkpoint or token file may store. Readers accept all three and convert to float.
enum class DType { F32, F16, BF16 };
const char* to_string(DType d);
DType parse_dtype(const std::string& s, const std::string& what);  // "f32" | "f16" | "bf16"
int dtype_bytes(DType d);

// Bytes of weight data a rank read and how long it took.
struct IoStats {
  long long bytes = 0;       // payload: stored bytes of every element selected (the shard, not the file)
  long long os_bytes = -1;   // bytes the process read from the OS meanwhile (/proc/self/io rchar); -1 if unknown
  double seconds = 0;        // wall time of the reads, open and close included
  void add(const IoStats& o);
  double rate_gbps() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0.0; }
};

// The checkpoint's root attributes as a ModelConfig, with has_router_bias / has_correction_bias / has_expert_bias
// set from which optional datasets layer 0 holds. Checks the whole file against the contract (attributes, and for
// every layer the presence, shape and element type of each dataset; metadata only) and throws the first violation.
ModelConfig read_checkpoint_config(const std::string& path);

// Layer `layer` for this rank: the router, shared and latent tensors in full and the routed experts `expert_ids`
// (ascending global ids) read as hyperslabs of experts/*, converted to float. `config` must come from
// read_checkpoint_config(path). With a parallel HDF5 and comm.size() > 1 every rank of `comm` must call this
// together (MPI-IO, collective reads); with a serial HDF5 each rank opens the file read-only on its own and `comm`
// is not used. Adds this call's bytes and time to `stats` when given. LayerParts::RouterOnly reads the router's
// tensors alone (`expert_ids` empty).
LayerWeights read_layer_shard(const std::string& path, const ModelConfig& config, int layer,
                              const std::vector<int>& expert_ids, const MpiComm& comm, IoStats* stats = nullptr,
                              LayerParts parts = LayerParts::All);

// What `epmoe inspect` shows: the config, every dataset, and every way the file breaks the contract.
struct CheckpointReport {
  bool config_ok = false;  // the root attributes make a valid config
  ModelConfig config;
  std::vector<std::string> problems;  // contract violations, each naming the file and the attribute or dataset
  std::vector<std::string> warnings;  // allowed but notable (layout, ignored objects)
  struct Dataset {
    std::string name;
    std::vector<long long> shape;
    std::vector<long long> chunk;  // empty: contiguous
    std::string type;              // "float32", "bfloat16", "float64", ...
  };
  std::vector<Dataset> datasets;
  long long bytes_per_expert = 0;  // stored bytes of one routed expert (experts/* of layer 0)
  long long file_bytes = 0;
  bool valid() const { return problems.empty(); }
};
// Throws only when the file cannot be opened as HDF5 at all; every other problem goes into the report.
CheckpointReport inspect_checkpoint(const std::string& path);

// Streams a checkpoint into `path`: the file is written under a temporary name next to it and renamed by commit(),
// so a file at `path` is always complete. Destroying an uncommitted writer deletes the temporary file.
// Experts are chunked one per chunk ([1, rows, cols]); every dataset carries a Fletcher-32 checksum.
class CheckpointWriter {
 public:
  CheckpointWriter(const std::string& path, const ModelConfig& config, DType dtype);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Writes the router, shared and latent tensors of `layer` and creates its expert datasets.
  void write_layer_common(int layer, const LayerWeights& weights);
  // Writes the experts weights.expert_ids of `layer` (after write_layer_common for that layer).
  void write_experts(int layer, const LayerWeights& weights);
  // Checks that every layer and expert was written, closes the file and renames it to `path`.
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes whole layers (each holding all experts) in one go.
void write_checkpoint(const std::string& path, const ModelConfig& config, const std::vector<LayerWeights>& layers,
                      DType dtype);

// Token files. Input: `dataset` [T, width] of float32, half or bfloat16.
struct TokenFileInfo {
  long rows = 0;
  int width = 0;
  DType dtype = DType::F32;
};
TokenFileInfo token_file_info(const std::string& path, const std::string& dataset = "/hidden_states");
// Rows [first_row, first_row + num_rows) as float. Throws naming the file and dataset when the width is not
// `expected_width` or the rows are out of range.
Matrix<float> read_tokens(const std::string& path, const std::string& dataset, long first_row, long num_rows,
                          int expected_width);
// Output file: /output [T, D] float32, /topk_ids [T, K] int32, /topk_weights [T, K] float32; temp name + rename.
// Called by one rank with the gathered global data.
void write_output_file(const std::string& path, const Matrix<float>& output, const Matrix<int>& topk_ids,
                       const Matrix<float>& topk_weights);

// Expert loads file: /expert_loads [layers, num_experts] float32, the pairs routed to each expert of each layer
// (epmoe run --save-expert-loads; read back by --expert-loads with read_tokens); temp name + rename. One rank.
void write_expert_loads_file(const std::string& path, const Matrix<float>& loads);

// Loads every layer of a checkpoint for this rank's experts and gathers per-rank I/O statistics.
struct ShardLoad {
  std::vector<LayerWeights> layers;
  IoStats stats;  // this rank
};
ShardLoad load_checkpoint_shard(const std::string& path, const ModelConfig& config, const std::vector<int>& expert_ids,
                                const MpiComm& comm);
// A table (rank, experts, bytes read, OS bytes, seconds, GB/s), one row per rank, on rank 0 ('#' lines are for
// people); other ranks get an empty string. Collective.
std::string io_report(const IoStats& local, int local_experts, const MpiComm& comm);

}  // namespace epmoe
