// A small command-line parser for epmoe's subcommands: typed flags with defaults, ranges and help text.
// Bad flags throw epmoe::Error(ErrorKind::Usage) naming the flag, so every rank exits with code 2.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace epmoe::app {

class ArgParser {
 public:
  ArgParser(std::string command, std::string summary);

  void add_string(const std::string& name, std::string* target, const std::string& help,
                  const std::string& metavar = "STR");
  void add_int(const std::string& name, long* target, const std::string& help, long min, long max,
               const std::string& metavar = "N");
  void add_int(const std::string& name, int* target, const std::string& help, int min, int max,
               const std::string& metavar = "N");
  void add_double(const std::string& name, double* target, const std::string& help, double min, double max,
                  const std::string& metavar = "X");
  void add_bool(const std::string& name, bool* target, const std::string& help);  // --name sets true
  void add_choice(const std::string& name, std::string* target, const std::vector<std::string>& choices,
                  const std::string& help);
  // -b style short alias for a long flag already added.
  void add_alias(const std::string& alias, const std::string& name);

  // Returns false when --help was given (help printed on rank-0 by the caller through help()).
  bool parse(const std::vector<std::string>& args);
  std::string help() const;
  // True if the user gave the flag explicitly.
  bool given(const std::string& name) const;

 private:
  struct Flag {
    std::string name, help, metavar, default_text;
    bool takes_value;
    std::function<void(const std::string&)> set;
  };
  const Flag* find(const std::string& name) const;
  std::string command_, summary_;
  std::vector<Flag> flags_;
  std::vector<std::pair<std::string, std::string>> aliases_;
  std::vector<std::string> given_;
};

}  // namespace epmoe::app
