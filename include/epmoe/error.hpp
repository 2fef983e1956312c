// One error type for the whole project: every failure of CUDA, NCCL, MPI, HDF5 or user input becomes an
// epmoe::Error carrying the rank, file:line, the failed call and the library's own message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace epmoe {

enum class ErrorKind {
  Usage,     // a bad flag or value on the command line: exit code 2
  Config,    // an inconsistent model or parallel configuration
  Input,     // a bad file, dataset or token tensor
  Runtime,   // a library call failed (MPI, CUDA, NCCL, HDF5, BLAS)
  Numerics,  // NaN/Inf or a verification past tolerance
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, const char* file = nullptr, int line = 0);
  ErrorKind kind() const { return kind_; }
  // Exit code the program uses for this error: 2 for usage errors, 1 otherwise.
  int exit_code() const { return kind_ == ErrorKind::Usage ? 2 : 1; }
  const std::string& where() const { return where_; }

 private:
  ErrorKind kind_;
  std::string where_;
};

// The rank printed in error messages; set once after MPI_Init (stays -1 in single-process tools).
void set_error_rank(int rank);
int error_rank();

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace epmoe

#define EPMOE_THROW(kind, ...) \
  throw ::epmoe::Error((kind), ::epmoe::detail::concat(__VA_ARGS__), __FILE__, __LINE__)

// Checks a condition that the user can violate (flags, files, shapes): the message says what to do.
#define EPMOE_REQUIRE(cond, kind, ...)   \
  do {                                   \
    if (!(cond)) {                       \
      EPMOE_THROW((kind), __VA_ARGS__);  \
    }                                    \
  } while (0)

// Checks an internal invariant: a failure is a bug in epmoe.
#define EPMOE_ASSERT(cond, ...)                                                                    \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      EPMOE_THROW(::epmoe::ErrorKind::Runtime, "internal invariant violated: " #cond ": ", \
                  __VA_ARGS__);                                                                    \
    }                                                                                              \
  } while (0)
