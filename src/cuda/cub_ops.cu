// The CUB device-wide primitives the layer uses, behind plain functions so that host code (and tests) need no CUB.
#include <cub/device/device_radix_sort.cuh>
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

void sort_pairs(const int* keys_in, int* keys_out, const int* values_in, int* values_out, int n, int max_key,
                DeviceBuffer<unsigned char>& temp, cudaStream_t stream) {
  if (n <= 0) return;
  int end_bit = 1;
  while ((1 << end_bit) <= max_key) ++end_bit;
  std::size_t bytes = 0;
  EPMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_in, keys_out, values_in, values_out, n, 0,
                                                   end_bit, stream));
  temp.reserve(bytes);
  EPMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, keys_in, keys_out, values_in, values_out, n, 0,
                                                   end_bit, stream));
}

std::size_t cub_temp_bytes(int scan_items, int sort_items, int max_key) {
  int end_bit = 1;
  while ((1 << end_bit) <= max_key) ++end_bit;
  std::size_t scan = 0, sort = 0;
  EPMOE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan, static_cast<const int*>(nullptr),
                                                 static_cast<int*>(nullptr), std::max(scan_items, 1)));
  EPMOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort, static_cast<const int*>(nullptr),
                                                   static_cast<int*>(nullptr), static_cast<const int*>(nullptr),
                                                   static_cast<int*>(nullptr), std::max(sort_items, 1), 0, end_bit));
  return std::max(scan, sort);
}

}  // namespace epmoe::cuda
