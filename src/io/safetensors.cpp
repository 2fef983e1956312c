#include "safetensors.hpp"

#include <cmath>
#include <cstring>

#include "epmoe/error.hpp"
#include "h5.hpp"
#include "json.hpp"

namespace epmoe::io {

long long TensorInfo::elements() const {
  long long n = 1;
  for (long long d : shape) n *= d;
  return n;
}

int safetensors_dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "F8_E4M3" || d == "F8_E5M2" || d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E8M0") return 1;
  return 0;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  EPMOE_REQUIRE(in_.good(), ErrorKind::Input, path, ": cannot open the safetensors file; check the path");
  in_.seekg(0, std::ios::end);
  const std::uint64_t size = static_cast<std::uint64_t>(in_.tellg());
  in_.seekg(0);
  unsigned char len_bytes[8] = {};
  in_.read(reinterpret_cast<char*>(len_bytes), 8);
  EPMOE_REQUIRE(in_.good() && size >= 8, ErrorKind::Input, path, ": too short for a safetensors file");
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  EPMOE_REQUIRE(header_len <= size - 8 && header_len <= (100u << 20), ErrorKind::Input, path,
                ": safetensors header length ", header_len, " does not fit the file (", size,
                " bytes); the file is truncated or not safetensors");
  std::string header(static_cast<std::size_t>(header_len), '\0');
  in_.read(&header[0], static_cast<std::streamsize>(header_len));
  EPMOE_REQUIRE(in_.good(), ErrorKind::Input, path, ": cannot read the safetensors header");
  data_start_ = 8 + header_len;
  const std::uint64_t data_size = size - data_start_;
  const Json root = Json::parse(header, path + " (safetensors header)");
  for (const auto& [name, entry] : root.object(path + ": safetensors header")) {
    if (name == "__metadata__") continue;
    const std::string what = path + ": tensor '" + name + "'";
    TensorInfo t;
    EPMOE_REQUIRE(entry.has("dtype") && entry.has("shape") && entry.has("data_offsets"), ErrorKind::Input, what,
                  ": header entry needs dtype, shape and data_offsets");
    t.dtype = entry.find("dtype")->string(what + " dtype");
    for (const Json& d : entry.find("shape")->array(what + " shape")) {
      const long long v = d.integer(what + " shape");
      EPMOE_REQUIRE(v >= 0 && v < (1LL << 40), ErrorKind::Input, what, ": bad dimension ", v);
      t.shape.push_back(v);
    }
    const auto& offsets = entry.find("data_offsets")->array(what + " data_offsets");
    EPMOE_REQUIRE(offsets.size() == 2, ErrorKind::Input, what, ": data_offsets must hold [begin, end]");
    const long long b = offsets[0].integer(what), e = offsets[1].integer(what);
    EPMOE_REQUIRE(b >= 0 && e >= b && static_cast<std::uint64_t>(e) <= data_size, ErrorKind::Input, what,
                  ": data_offsets [", b, ", ", e, "] outside the data section (", data_size,
                  " bytes); the file is truncated or corrupted");
    t.begin = static_cast<std::uint64_t>(b);
    t.end = static_cast<std::uint64_t>(e);
    const int bytes = safetensors_dtype_bytes(t.dtype);
    if (bytes > 0) {
      EPMOE_REQUIRE(static_cast<std::uint64_t>(t.elements()) * static_cast<std::uint64_t>(bytes) == t.end - t.begin,
                    ErrorKind::Input, what, ": ", t.end - t.begin, " bytes of data for shape and dtype ", t.dtype,
                    " (needs ", t.elements() * bytes, ")");
    }
    tensors_[name] = t;
  }
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = tensors_.find(name);
  EPMOE_REQUIRE(it != tensors_.end(), ErrorKind::Input, path_, ": tensor '", name, "' is missing");
  return it->second;
}

std::vector<unsigned char> SafetensorsFile::read_raw(const std::string& name, long long first, long long count) {
  const TensorInfo& t = info(name);
  const long long rows = t.shape.empty() ? 1 : t.shape[0];
  if (count < 0) count = rows - first;
  EPMOE_REQUIRE(first >= 0 && count >= 0 && first + count <= rows, ErrorKind::Input, path_, ": tensor '", name,
                "': rows [", first, ", ", first + count, ") out of range (", rows, " rows)");
  const std::uint64_t row_bytes = rows > 0 ? (t.end - t.begin) / static_cast<std::uint64_t>(rows) : 0;
  std::vector<unsigned char> out(static_cast<std::size_t>(row_bytes * static_cast<std::uint64_t>(count)));
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(data_start_ + t.begin + row_bytes * static_cast<std::uint64_t>(first)));
  in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  EPMOE_REQUIRE(in_.good() || out.empty(), ErrorKind::Input, path_, ": tensor '", name,
                "': reading its data failed (truncated file?)");
  return out;
}

std::vector<float> SafetensorsFile::read_float(const std::string& name, long long first, long long count) {
  const std::string dtype = info(name).dtype;
  const std::vector<unsigned char> raw = read_raw(name, first, count);
  std::vector<float> out;
  if (dtype == "F32") {
    out.resize(raw.size() / 4);
    std::memcpy(out.data(), raw.data(), raw.size());
  } else if (dtype == "F16" || dtype == "BF16") {
    out.resize(raw.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::uint16_t v = static_cast<std::uint16_t>(raw[2 * i] | (raw[2 * i + 1] << 8));
      out[i] = dtype == "F16" ? half_to_float(v) : bfloat16_to_float(v);
    }
  } else if (dtype == "F8_E4M3") {
    out.resize(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) out[i] = fp8_e4m3_to_float(raw[i]);
  } else {
    EPMOE_THROW(ErrorKind::Input, path_, ": tensor '", name, "' has dtype ", dtype,
                "; expected F32, F16, BF16 or F8_E4M3");
  }
  return out;
}

float fp8_e4m3_to_float(std::uint8_t v) {
  // e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, 0x7f/0xff are NaN.
  const int sign = v >> 7, exponent = (v >> 3) & 0xf, mantissa = v & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::nanf("");
  const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                        : std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
  return sign ? -magnitude : magnitude;
}

float fp4_e2m1_to_float(std::uint8_t nibble) {
  static const float kValues[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  return kValues[nibble & 0xf];
}

}  // namespace epmoe::io
