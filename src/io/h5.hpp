// Private HDF5 helpers of the io library: RAII handles, silenced error stacks turned into epmoe::Error, element type
// classification (float32 / half / bfloat16), attributes, raw reads converted to float.
#pragma once

#include <hdf5.h>

#include <optional>
#include <string>
#include <vector>

#include "epmoe/checkpoint.hpp"
#include "epmoe/error.hpp"

namespace epmoe::io {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() { (void)close(); }
  // Closes now and returns the close call's status (writers check it: a failed close may mean lost data).
  herr_t close() {
    herr_t status = 0;
    if (id_ >= 0 && closer_) status = closer_(id_);
    id_ = H5I_INVALID_HID;
    return status;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Turns HDF5's automatic error printing off (idempotent); every entry point of the io library calls it.
void quiet_hdf5();
// The most specific message on HDF5's current error stack ("" if none), then clears the stack.
std::string hdf5_message();
// Throws ErrorKind::Input with `what` and HDF5's message when `id` < 0; returns a handle owning it otherwise.
Handle checked(hid_t id, Handle::Closer closer, const std::string& what);
void check_status(herr_t status, const std::string& what);

// Opens an existing file read-only; `what` prefixes messages. Distinguishes a missing, unreadable and non-HDF5 file.
// With `comm` given, a parallel HDF5 and more than one rank, the file is opened with MPI-IO.
Handle open_read(const std::string& path, const MpiComm* comm = nullptr);
bool link_exists(hid_t loc, const std::string& path);

// Classification of a dataset's element type.
struct ElementType {
  std::optional<DType> dtype;  // empty: not one of the three accepted types
  bool little_endian = true;
  std::string description;     // "float32", "bfloat16", "float64", "int32", ...
};
ElementType classify(hid_t type);

struct DatasetShape {
  std::vector<hsize_t> dims;
  std::vector<hsize_t> chunk;  // empty when not chunked
  ElementType type;
};
DatasetShape describe_dataset(hid_t dataset);
std::string shape_text(const std::vector<hsize_t>& dims);

// Reads the hyperslab start/count of a float-like dataset into `out` (count's product floats), converting
// little-endian f32/f16/bf16 itself and anything else through HDF5. `dxpl` is the transfer property list
// (collective under MPI-IO). Returns the stored bytes of the selection. An empty `count` product reads nothing but
// still takes part in a collective read.
long long read_floats(hid_t dataset, const DatasetShape& shape, const std::vector<hsize_t>& start,
                      const std::vector<hsize_t>& count, float* out, hid_t dxpl, const std::string& what);

// HDF5 datatypes for the stored element types (caller owns them).
Handle file_type(DType d);

// Attribute access on `loc`. Readers accept any integer or float class with range checks, fixed or variable strings.
bool has_attribute(hid_t loc, const std::string& name);
long long read_int_attribute(hid_t loc, const std::string& name, const std::string& what);
double read_float_attribute(hid_t loc, const std::string& name, const std::string& what);
std::string read_string_attribute(hid_t loc, const std::string& name, const std::string& what);
void write_int_attribute(hid_t loc, const std::string& name, long long value);
void write_float_attribute(hid_t loc, const std::string& name, double value);
void write_string_attribute(hid_t loc, const std::string& name, const std::string& value);

// Float conversions (round to nearest even) used by the writers and readers.
std::uint16_t float_to_half(float f);
float half_to_float(std::uint16_t h);
std::uint16_t float_to_bfloat16(float f);
float bfloat16_to_float(std::uint16_t b);
// Converts `n` floats to the stored representation of `d` in `out` (n * dtype_bytes(d) bytes).
void encode(const float* in, std::size_t n, DType d, void* out);

// A temporary file next to `path` that is removed unless renamed onto `path` by commit().
class TempPath {
 public:
  explicit TempPath(std::string path);
  ~TempPath();
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  const std::string& temp() const { return temp_; }
  const std::string& final_path() const { return path_; }
  void commit();  // rename temp -> path

 private:
  std::string path_, temp_;
  bool committed_ = false;
};

// Creates a new HDF5 file at temp.temp() (latest format: checksummed metadata). `what` names the final path.
Handle create_file(const TempPath& temp);

// Bytes this process has read from the OS so far (/proc/self/io rchar), -1 when unavailable.
long long os_read_bytes();

}  // namespace epmoe::io
