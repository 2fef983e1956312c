// A small JSON reader for config.json, model.safetensors.index.json and safetensors headers. Parses the whole
// grammar (objects, arrays, strings with escapes, numbers, true/false/null); errors throw ErrorKind::Input naming
// `source` and the byte offset. Depth is limited so hostile input cannot exhaust the stack.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace epmoe::io {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  static Json parse(const std::string& text, const std::string& source);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed access; throw ErrorKind::Input naming `what` when the type differs.
  double number(const std::string& what) const;
  long long integer(const std::string& what) const;  // a number with no fraction
  bool boolean(const std::string& what) const;
  const std::string& string(const std::string& what) const;
  const std::vector<Json>& array(const std::string& what) const;
  const std::map<std::string, Json>& object(const std::string& what) const;

  // Object members: find() returns nullptr when absent (or when this is not an object).
  const Json* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }

 private:
  friend class JsonParser;
  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<Json> array_;
  std::map<std::string, Json> object_;
};

}  // namespace epmoe::io
