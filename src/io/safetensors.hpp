// Reading safetensors files: 8-byte little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}}, then the raw little-endian data. Every offset and size is checked against the file before use.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace epmoe::io {

struct TensorInfo {
  std::string dtype;                // "F32", "F16", "BF16", "F8_E4M3", "U8", "I8", ...
  std::vector<long long> shape;
  std::uint64_t begin = 0, end = 0;  // byte offsets within the data section
  long long elements() const;
};

// Bytes per element of a safetensors dtype, 0 for unknown ones.
int safetensors_dtype_bytes(const std::string& dtype);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  // Raw bytes of rows [first, first + count) of the outermost dimension (all of it by default).
  std::vector<unsigned char> read_raw(const std::string& name, long long first = 0, long long count = -1);
  // The same rows converted to float: F32, F16, BF16, F8_E4M3 (no scale applied).
  std::vector<float> read_float(const std::string& name, long long first = 0, long long count = -1);

 private:
  std::string path_;
  std::ifstream in_;
  std::uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

float fp8_e4m3_to_float(std::uint8_t v);
// FP4 e2m1 (MXFP4 element) to float.
float fp4_e2m1_to_float(std::uint8_t nibble);

}  // namespace epmoe::io
