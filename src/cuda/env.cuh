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

// The value of environment variable `name` as a number in [lo, hi] (`integer`: a whole one); unset gives
// `fallback`; anything else (not a number, trailing characters, out of range) is a usage error that says `what`.
inline double env_number(const char* name, double fallback, double lo, double hi, bool integer, const char* what) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double x = integer ? static_cast<double>(std::strtol(v, &end, 10)) : std::strtod(v, &end);
  EPMOE_REQUIRE(end != v && *end == '\0' && x >= lo && x <= hi, ErrorKind::Usage, name, " must be ", what,
                ", found '", v, "'");
  return x;
}

}  // namespace epmoe::cuda
