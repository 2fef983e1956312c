// The CUB device-wide primitive the layer uses, behind plain functions so that host code (and tests) need no CUB.
#include <cub/device/device_scan.cuh>

#include <algorithm>

#include "kernels.cuh"

namespace epmoe::cuda {

void exclusive_scan(const int* in, int* out, int n, DeviceBuffer<unsigned char>& temp, cudaStream_t stream) {
  if (n <= 0) return;
  std::size_t bytes = 0;
  EPMOE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, in, out, n, stream));
  temp.reserve(bytes);
  EPMOE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp.data(), bytes, in, out, n, stream));
}

std::size_t cub_temp_bytes(int scan_items) {
  std::size_t scan = 0;
  EPMOE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan, static_cast<const int*>(nullptr),
                                                 static_cast<int*>(nullptr), std::max(scan_items, 1)));
  return scan;
}

}  // namespace epmoe::cuda
