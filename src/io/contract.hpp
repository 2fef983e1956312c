// The checkpoint contract as code: which attributes and datasets a v1 file holds, their shapes and types. One
// checker serves read_checkpoint_config (throws the first violation) and inspect (lists them all).
#pragma once

#include <string>
#include <vector>

#include "epmoe/checkpoint.hpp"
#include "h5.hpp"

namespace epmoe::io {

// One dataset of a layer as the contract describes it, for a given config.
struct DatasetSpec {
  std::string name;                // relative to /layers/<l>/, e.g. "experts/w13"
  std::vector<hsize_t> dims;
  std::string dims_label;          // "[E, 2I, Din]"
  bool required = false;
  std::string reason;              // why it is required, e.g. "latent_size = 96"
  bool per_expert = false;         // experts/*: dimension 0 is the expert
};
std::vector<DatasetSpec> layer_dataset_specs(const ModelConfig& config);
std::string layer_path(int layer, const std::string& name);  // "/layers/<l>/<name>"

struct ContractReport {
  ModelConfig config;
  bool attributes_ok = false;          // the root attributes make a valid config
  std::vector<std::string> problems;   // violations of the contract; each names the file and attribute/dataset
  ErrorKind first_kind = ErrorKind::Input;
  std::vector<std::string> warnings;   // allowed, but worth knowing (layout, ignored datasets)
  struct Entry {
    std::string name;
    DatasetShape shape;
  };
  std::vector<Entry> datasets;         // every dataset in the file (when list_all)
  long long bytes_per_expert = 0;      // stored bytes of one expert in experts/* of layer 0
};

// Checks attributes and the metadata of every layer; reads no weight data.
ContractReport check_contract(hid_t file, const std::string& path, bool list_all);

// Opens `name` in `file` and checks it against `dims` and the accepted element types; throws naming path+dataset.
Handle open_checked_dataset(hid_t file, const std::string& path, const std::string& name,
                            const std::vector<hsize_t>& dims, const std::string& dims_label, DatasetShape* shape);

// e.what() without the "[rank N] " prefix.
std::string bare_message(const std::exception& e);

}  // namespace epmoe::io
