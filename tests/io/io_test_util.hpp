// Helpers of the io tests: scratch paths, the stored value of a float, and error expectations.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "epmoe/checkpoint.hpp"
#include "epmoe/error.hpp"
#include "io/h5.hpp"

namespace epmoe::testing {

// Where tests write files: $EPMOE_IO_TEST_DIR (set by CTest) or the working directory.
inline std::string scratch(const std::string& name) {
  const char* dir = std::getenv("EPMOE_IO_TEST_DIR");
  const std::string d = dir && *dir ? dir : ".";
  mkdir(d.c_str(), 0755);
  return d + "/" + name;
}

inline bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// The value a float becomes when stored as `d` and read back.
inline float stored(float v, DType d) {
  if (d == DType::F16) return io::half_to_float(io::float_to_half(v));
  if (d == DType::BF16) return io::bfloat16_to_float(io::float_to_bfloat16(v));
  return v;
}

inline bool same_stored(const std::vector<float>& read, const std::vector<float>& original, DType d) {
  if (read.size() != original.size()) return false;
  for (std::size_t i = 0; i < read.size(); ++i)
    if (read[i] != stored(original[i], d)) return false;
  return true;
}

inline bool same_stored(const Matrix<float>& read, const Matrix<float>& original, DType d) {
  return read.rows() == original.rows() && read.cols() == original.cols() &&
         same_stored(read.storage(), original.storage(), d);
}

// Runs `step` and returns the epmoe::Error message it throws ("" and a failed check if it does not throw).
inline std::string error_of(const std::function<void()>& step) {
  try {
    step();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("expected an epmoe::Error, nothing was thrown");
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace epmoe::testing
