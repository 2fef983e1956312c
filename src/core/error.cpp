#include "epmoe/error.hpp"

#include <cstring>

namespace epmoe {
namespace {
int g_error_rank = -1;

std::string decorate(const std::string& message) {
  std::ostringstream out;
  if (g_error_rank >= 0 && message.rfind("[rank ", 0) != 0) out << "[rank " << g_error_rank << "] ";
  out << message;
  return out.str();
}

std::string location(const char* file, int line) {
  if (!file) return "";
  const char* base = std::strstr(file, "src/");
  if (!base) base = std::strstr(file, "include/");
  std::ostringstream out;
  out << (base ? base : file) << ":" << line;
  return out.str();
}
}  // namespace

Error::Error(ErrorKind kind, const std::string& message, const char* file, int line)
    : std::runtime_error(decorate(message)), kind_(kind), where_(location(file, line)) {}

void set_error_rank(int rank) { g_error_rank = rank; }
int error_rank() { return g_error_rank; }

}  // namespace epmoe
