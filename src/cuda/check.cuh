// Error checks for CUDA, cuBLAS and NCCL: a failure becomes an epmoe::Error carrying file:line, the failed call and
// the library's own message. Every kernel launch is followed by EPMOE_CUDA_LAUNCH_CHECK().
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "epmoe/error.hpp"

namespace epmoe::cuda {

inline void check_cuda(cudaError_t code, const char* call, const char* file, int line) {
  if (code == cudaSuccess) return;
  throw Error(ErrorKind::Runtime,
              std::string("CUDA call failed: ") + call + ": " + cudaGetErrorName(code) + ": " + cudaGetErrorString(code),
              file, line);
}

inline void check_cublas(cublasStatus_t code, const char* call, const char* file, int line) {
  if (code == CUBLAS_STATUS_SUCCESS) return;
  throw Error(ErrorKind::Runtime,
              std::string("cuBLAS call failed: ") + call + ": " + cublasGetStatusName(code) + ": " +
                  cublasGetStatusString(code),
              file, line);
}

inline void check_nccl(ncclResult_t code, const char* call, const char* file, int line) {
  if (code == ncclSuccess) return;
  std::string last = ncclGetLastError(nullptr) ? ncclGetLastError(nullptr) : "";
  throw Error(ErrorKind::Runtime,
              std::string("NCCL call failed: ") + call + ": " + ncclGetErrorString(code) + (last.empty() ? "" : ": ") +
                  last,
              file, line);
}

}  // namespace epmoe::cuda

#define EPMOE_CUDA_CHECK(call) ::epmoe::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define EPMOE_CUBLAS_CHECK(call) ::epmoe::cuda::check_cublas((call), #call, __FILE__, __LINE__)
#define EPMOE_NCCL_CHECK(call) ::epmoe::cuda::check_nccl((call), #call, __FILE__, __LINE__)
// After every kernel launch: catches bad launch configurations at the launch site, not at the next sync.
#define EPMOE_CUDA_LAUNCH_CHECK() ::epmoe::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
