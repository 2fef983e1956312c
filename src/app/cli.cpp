#include "cli.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "epmoe/error.hpp"

namespace epmoe::app {

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

namespace {
template <class T>
std::string text(const T& v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

long parse_long(const std::string& flag, const std::string& value) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  EPMOE_REQUIRE(!value.empty() && end && *end == '\0' && errno == 0, ErrorKind::Usage, flag,
                ": expected an integer, got '", value, "'");
  return v;
}

double parse_double(const std::string& flag, const std::string& value) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  EPMOE_REQUIRE(!value.empty() && end && *end == '\0' && errno == 0 && v == v, ErrorKind::Usage, flag,
                ": expected a number, got '", value, "'");
  return v;
}
}  // namespace

void ArgParser::add_string(const std::string& name, std::string* target, const std::string& help,
                           const std::string& metavar) {
  flags_.push_back({name, help, metavar, target->empty() ? "" : *target, true,
                    [target](const std::string& v) { *target = v; }});
}

void ArgParser::add_int(const std::string& name, long* target, const std::string& help, long min, long max,
                        const std::string& metavar) {
  flags_.push_back({name, help, metavar, text(*target), true, [=](const std::string& v) {
                      const long x = parse_long(name, v);
                      EPMOE_REQUIRE(x >= min && x <= max, ErrorKind::Usage, name, ": ", x, " is out of range [",
                                    min, ", ", max, "]");
                      *target = x;
                    }});
}

void ArgParser::add_int(const std::string& name, int* target, const std::string& help, int min, int max,
                        const std::string& metavar) {
  flags_.push_back({name, help, metavar, text(*target), true, [=](const std::string& v) {
                      const long x = parse_long(name, v);
                      EPMOE_REQUIRE(x >= min && x <= max, ErrorKind::Usage, name, ": ", x, " is out of range [",
                                    min, ", ", max, "]");
                      *target = static_cast<int>(x);
                    }});
}

void ArgParser::add_double(const std::string& name, double* target, const std::string& help, double min, double max,
                           const std::string& metavar) {
  flags_.push_back({name, help, metavar, text(*target), true, [=](const std::string& v) {
                      const double x = parse_double(name, v);
                      EPMOE_REQUIRE(x >= min && x <= max, ErrorKind::Usage, name, ": ", x, " is out of range [",
                                    min, ", ", max, "]");
                      *target = x;
                    }});
}

void ArgParser::add_bool(const std::string& name, bool* target, const std::string& help) {
  flags_.push_back({name, help, "", *target ? "on" : "off", false, [target](const std::string&) { *target = true; }});
}

void ArgParser::add_choice(const std::string& name, std::string* target, const std::vector<std::string>& choices,
                           const std::string& help) {
  std::string metavar;
  for (const auto& c : choices) metavar += (metavar.empty() ? "" : "|") + c;
  flags_.push_back({name, help, metavar, *target, true, [=](const std::string& v) {
                      EPMOE_REQUIRE(std::find(choices.begin(), choices.end(), v) != choices.end(), ErrorKind::Usage,
                                    name, ": unknown value '", v, "'; accepted: ", metavar);
                      *target = v;
                    }});
}

void ArgParser::add_alias(const std::string& alias, const std::string& name) { aliases_.push_back({alias, name}); }

const ArgParser::Flag* ArgParser::find(const std::string& name) const {
  std::string target = name;
  for (const auto& a : aliases_)
    if (a.first == name) target = a.second;
  for (const auto& f : flags_)
    if (f.name == target) return &f;
  return nullptr;
}

bool ArgParser::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i], value;
    bool has_value = false;
    if (arg == "-h" || arg == "--help") return false;
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const Flag* f = find(arg);
    EPMOE_REQUIRE(f, ErrorKind::Usage, "epmoe ", command_, ": unknown argument '", args[i], "'; see 'epmoe ",
                  command_, " --help'");
    if (f->takes_value && !has_value) {
      EPMOE_REQUIRE(i + 1 < args.size(), ErrorKind::Usage, f->name, " needs a value (", f->metavar, ")");
      value = args[++i];
    }
    EPMOE_REQUIRE(f->takes_value || !has_value, ErrorKind::Usage, f->name, " takes no value");
    f->set(value);
    given_.push_back(f->name);
  }
  return true;
}

bool ArgParser::given(const std::string& name) const {
  return std::find(given_.begin(), given_.end(), name) != given_.end();
}

std::string ArgParser::help() const {
  std::ostringstream out;
  out << "usage: epmoe " << command_ << " [flags]\n" << summary_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    std::string left = "  ";
    for (const auto& a : aliases_)
      if (a.second == f.name) left += a.first + ", ";
    left += f.name + (f.takes_value ? " " + f.metavar : "");
    out << left;
    if (left.size() < 34) out << std::string(34 - left.size(), ' ');
    else out << "\n" << std::string(34, ' ');
    out << f.help;
    if (!f.default_text.empty()) out << " (default: " << f.default_text << ")";
    out << "\n";
  }
  out << "  -h, --help                      this help\n";
  return out.str();
}

}  // namespace epmoe::app
