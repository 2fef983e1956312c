// The CUDA backend's tunables come from the environment, read once at layer construction.
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <string>

#include "epmoe/error.hpp"

namespace epmoe::cuda {

// The index in `words` of the value of environment variable `name`; unset gives 0 (the first word is the default),
// any other value is a usage error that lists the words.
inline int env_choice(const char* name, std::initializer_list<const char*> words) {
  const char* v = std::getenv(name);
  if (!v) return 0;
  std::string listed;
  int i = 0;
  for (const char* w : words) {
    if (std::string(v) == w) return i;
    listed += (i++ ? " | " : "") + std::string(w);
  }
  EPMOE_THROW(ErrorKind::Usage, name, " must be one of ", listed, ", found '", v, "'");
}

// The integer value of environment variable `name` in [lo, hi]; unset gives `fallback`, anything else is a usage
// error naming the range.
inline int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  EPMOE_REQUIRE(end != v && *end == '\0' && n >= lo && n <= hi, ErrorKind::Usage, name, " must be an integer in [",
                lo, ", ", hi, "], found '", v, "'");
  return static_cast<int>(n);
}

}  // namespace epmoe::cuda
