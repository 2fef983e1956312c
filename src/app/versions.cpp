#include "versions.hpp"

#include <hdf5.h>
#include <mpi.h>

#include <fstream>

#ifdef EPMOE_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "epmoe/cuda_layer.hpp"
#endif

#include "epmoe_git_commit.h"  // generated at build time: src/app/CMakeLists.txt
#ifndef EPMOE_VERSION
#define EPMOE_VERSION "unknown"
#endif

namespace epmoe::app {

Versions collect_versions() {
  Versions v;
  v.epmoe = EPMOE_VERSION;
  v.git_commit = EPMOE_GIT_COMMIT;
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  v.mpi = std::string(mpi, len);
  v.mpi = v.mpi.substr(0, v.mpi.find_first_of(",\n"));
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  v.hdf5 = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
#ifdef EPMOE_HAVE_CUDA
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  v.cuda = "runtime " + std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10) + ", driver " +
           std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10);
  int nccl = 0;
  ncclGetVersion(&nccl);
  v.nccl = std::to_string(nccl / 10000) + "." + std::to_string(nccl / 100 % 100) + "." + std::to_string(nccl % 100);
#else
  v.cuda = "not built";
  v.nccl = "not built";
#endif
  return v;
}

std::string device_description(BackendKind backend) {
#ifdef EPMOE_HAVE_CUDA
  if (backend == BackendKind::Cuda) return cuda_device_description();
#else
  (void)backend;
#endif
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) return "cpu: " + line.substr(line.find(':') + 2);
  return "cpu";
}

}  // namespace epmoe::app
