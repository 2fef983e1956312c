// A minimal JSON writer for the benchmark's record (-J): objects, arrays, strings, numbers, booleans.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace epmoe::app {

class JsonWriter {
 public:
  JsonWriter& begin_object(const std::string& key = "") { return open(key, '{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array(const std::string& key = "") { return open(key, '['); }
  JsonWriter& end_array() { return close(']'); }
  JsonWriter& value(const std::string& key, const std::string& v) {
    prefix(key);
    out_ << quote(v);
    return *this;
  }
  JsonWriter& value(const std::string& key, const char* v) { return value(key, std::string(v)); }
  JsonWriter& value(const std::string& key, double v) {
    prefix(key);
    if (std::isfinite(v)) {
      std::ostringstream s;
      s.precision(9);
      s << v;
      out_ << s.str();
    } else {
      out_ << "null";
    }
    return *this;
  }
  JsonWriter& value(const std::string& key, long v) {
    prefix(key);
    out_ << v;
    return *this;
  }
  JsonWriter& value(const std::string& key, int v) { return value(key, static_cast<long>(v)); }
  JsonWriter& value(const std::string& key, bool v) {
    prefix(key);
    out_ << (v ? "true" : "false");
    return *this;
  }
  std::string str() const { return out_.str() + "\n"; }

  static std::string quote(const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
      switch (c) {
        case '"': q += "\\\""; break;
        case '\\': q += "\\\\"; break;
        case '\n': q += "\\n"; break;
        case '\t': q += "\\t"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            q += buf;
          } else {
            q += c;
          }
      }
    }
    return q + "\"";
  }

 private:
  JsonWriter& open(const std::string& key, char c) {
    prefix(key);
    out_ << c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& close(char c) {
    first_.pop_back();
    out_ << c;
    return *this;
  }
  void prefix(const std::string& key) {
    if (!first_.empty()) {
      if (!first_.back()) out_ << ",";
      first_.back() = false;
    }
    if (!key.empty()) out_ << quote(key) << ":";
  }
  std::ostringstream out_;
  std::vector<bool> first_;
};

}  // namespace epmoe::app
