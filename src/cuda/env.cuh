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

}  // namespace epmoe::cuda
