// Versions and devices for reports: what the benchmark's preamble and JSON record.
#pragma once

#include <string>

#include "epmoe/config.hpp"

namespace epmoe::app {

struct Versions {
  std::string epmoe, git_commit, mpi, hdf5, cuda, nccl;
};
Versions collect_versions();
// This rank's device: the GPU (name, PCI bus, memory) for the CUDA backend, the CPU model otherwise.
std::string device_description(BackendKind backend);

}  // namespace epmoe::app
