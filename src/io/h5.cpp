#include "h5.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

namespace epmoe::io {

void quiet_hdf5() {
  static const bool done = [] {
    H5open();
    return true;
  }();
  (void)done;
  // Cheap; repeated because some HDF5 builds keep the setting per thread.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

namespace {
herr_t take_message(unsigned, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (err && err->desc && *err->desc) *out = err->desc;  // walked upward: the last one seen is the outermost
  return 0;
}
herr_t take_innermost(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err && err->desc) *out = err->desc;
  return 0;
}
}  // namespace

std::string hdf5_message() {
  std::string inner, outer;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, &inner);
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_message, &outer);
  H5Eclear2(H5E_DEFAULT);
  if (inner.empty()) return outer;
  if (outer.empty() || outer == inner) return inner;
  return outer + ": " + inner;
}

Handle checked(hid_t id, Handle::Closer closer, const std::string& what) {
  if (id < 0) {
    const std::string msg = hdf5_message();
    EPMOE_THROW(ErrorKind::Input, what, msg.empty() ? "" : " (HDF5: " + msg + ")");
  }
  return Handle(id, closer);
}

void check_status(herr_t status, const std::string& what) {
  if (status < 0) {
    const std::string msg = hdf5_message();
    EPMOE_THROW(ErrorKind::Input, what, msg.empty() ? "" : " (HDF5: " + msg + ")");
  }
}

namespace {
// HDF5's signature sits at offset 0 or at a power of two >= 512 (after a user block).
bool has_hdf5_signature(const std::string& path) {
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const long long size = static_cast<long long>(in.tellg());
  for (long long offset = 0; offset + 8 <= size; offset = offset == 0 ? 512 : offset * 2) {
    unsigned char buf[8] = {};
    in.seekg(offset);
    in.read(reinterpret_cast<char*>(buf), 8);
    if (in && std::memcmp(buf, kSignature, 8) == 0) return true;
  }
  return false;
}
}  // namespace

Handle open_read(const std::string& path, const MpiComm* comm) {
  quiet_hdf5();
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    EPMOE_THROW(ErrorKind::Input, path, ": cannot open: ", std::strerror(errno), "; check the path");
  }
  EPMOE_REQUIRE(!S_ISDIR(st.st_mode), ErrorKind::Input, path, ": is a directory, expected an HDF5 file");
  EPMOE_REQUIRE(access(path.c_str(), R_OK) == 0, ErrorKind::Input, path,
                ": cannot be read (permission denied); check the file's permissions");
  Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path + ": H5Pcreate");
  check_status(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), path + ": H5Pset_fclose_degree");
#ifdef EPMOE_HDF5_PARALLEL
  if (comm && comm->size() > 1) {
    check_status(H5Pset_fapl_mpio(fapl.get(), comm->handle(), MPI_INFO_NULL), path + ": H5Pset_fapl_mpio");
  }
#else
  (void)comm;
#endif
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (file < 0) {
    const std::string msg = hdf5_message();
    if (!has_hdf5_signature(path)) {
      EPMOE_THROW(ErrorKind::Input, path, ": is not an HDF5 file (no HDF5 signature); expected an epmoe checkpoint "
                  "or token file (docs/checkpoint-format.md)");
    }
    EPMOE_THROW(ErrorKind::Input, path, ": HDF5 cannot open it, the file is truncated or corrupted (HDF5: ", msg,
                "); regenerate or re-download it");
  }
  return Handle(file, H5Fclose);
}

bool link_exists(hid_t loc, const std::string& path) {
  // Checks each component so that a missing intermediate group is "absent", not an error.
  std::size_t pos = 0;
  while (true) {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (!prefix.empty() && prefix != "/") {
      const htri_t e = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
      if (e <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return false;
      }
    }
    if (pos == std::string::npos) return true;
  }
}

ElementType classify(hid_t type) {
  ElementType t;
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) {
    std::size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
    H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize);
    const std::size_t ebias = H5Tget_ebias(type);
    const bool plain = H5Tget_offset(type) == 0 && H5Tget_precision(type) == 8 * size &&
                       H5Tget_norm(type) == H5T_NORM_IMPLIED;
    t.little_endian = H5Tget_order(type) == H5T_ORDER_LE;
    auto fields = [&](std::size_t s, std::size_t ep, std::size_t es, std::size_t mp, std::size_t ms,
                      std::size_t bias) {
      return plain && spos == s && epos == ep && esize == es && mpos == mp && msize == ms && ebias == bias;
    };
    if (size == 4 && fields(31, 23, 8, 0, 23, 127)) {
      t.dtype = DType::F32;
      t.description = "float32";
    } else if (size == 2 && fields(15, 10, 5, 0, 10, 15)) {
      t.dtype = DType::F16;
      t.description = "float16";
    } else if (size == 2 && fields(15, 7, 8, 0, 7, 127)) {
      t.dtype = DType::BF16;
      t.description = "bfloat16";
    } else if (size == 8) {
      t.description = "float64";
    } else {
      t.description = detail::concat("a ", size, "-byte float (sign bit ", spos, ", ", esize, " exponent bits at ",
                                     epos, " with bias ", ebias, ", ", msize, " mantissa bits)");
    }
    if (!t.little_endian) t.description += " (big-endian)";
  } else if (cls == H5T_INTEGER) {
    t.description = detail::concat(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", 8 * size);
  } else if (cls == H5T_STRING) {
    t.description = "string";
  } else if (cls == H5T_COMPOUND) {
    t.description = "compound";
  } else if (cls == H5T_ENUM) {
    t.description = "enum (bool?)";
  } else {
    t.description = detail::concat("HDF5 type class ", static_cast<int>(cls));
  }
  return t;
}

DatasetShape describe_dataset(hid_t dataset) {
  DatasetShape s;
  Handle space(H5Dget_space(dataset), H5Sclose);
  Handle type(H5Dget_type(dataset), H5Tclose);
  Handle dcpl(H5Dget_create_plist(dataset), H5Pclose);
  if (!space.valid() || !type.valid() || !dcpl.valid()) {
    check_status(-1, "cannot read the dataset's description");
  }
  const int rank = H5Sget_simple_extent_ndims(space.get());
  check_status(rank < 0 ? -1 : 0, "cannot read the dataset's shape");
  s.dims.resize(static_cast<std::size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), s.dims.data(), nullptr);
  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED && rank > 0) {
    s.chunk.resize(static_cast<std::size_t>(rank));
    if (H5Pget_chunk(dcpl.get(), rank, s.chunk.data()) < 0) s.chunk.clear();
  }
  s.type = classify(type.get());
  return s;
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

long long read_floats(hid_t dataset, const DatasetShape& shape, const std::vector<hsize_t>& start,
                      const std::vector<hsize_t>& count, float* out, hid_t dxpl, const std::string& what) {
  EPMOE_ASSERT(start.size() == shape.dims.size() && count.size() == shape.dims.size(), what);
  hsize_t n = 1;
  for (hsize_t c : count) n *= c;
  Handle file_space = checked(H5Dget_space(dataset), H5Sclose, what + ": H5Dget_space");
  // The memory space has the selection's own shape: HDF5 then maps whole chunks at once instead of visiting every
  // element (a 1-D memory space against a 3-D selection made reads ~20x slower).
  const hsize_t one = 1;
  Handle mem_space = checked(n > 0 ? H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr)
                                   : H5Screate_simple(1, &one, nullptr),
                             H5Sclose, what + ": H5Screate_simple");
  if (n > 0) {
    check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
                 what + ": selecting the hyperslab");
  } else {
    H5Sselect_none(file_space.get());
    H5Sselect_none(mem_space.get());
  }
  const DType d = *shape.type.dtype;
  const bool raw = shape.type.little_endian && d != DType::F32;
  std::unique_ptr<std::uint16_t[]> buffer(raw ? new std::uint16_t[n] : nullptr);  // uninitialized: HDF5 fills it
  Handle mem_type;
  if (raw) mem_type = checked(H5Dget_type(dataset), H5Tclose, what + ": H5Dget_type");
  const herr_t status = H5Dread(dataset, raw ? mem_type.get() : H5T_NATIVE_FLOAT, mem_space.get(), file_space.get(),
                                dxpl, raw ? static_cast<void*>(buffer.get()) : static_cast<void*>(out));
  if (status < 0) {
    const std::string msg = hdf5_message();
    EPMOE_THROW(ErrorKind::Input, what, ": reading the data failed, the file is corrupted or truncated (HDF5: ", msg,
                "); regenerate the file");
  }
  if (raw) {
    if (d == DType::F16) {
      for (hsize_t i = 0; i < n; ++i) out[i] = half_to_float(buffer[i]);
    } else {
      for (hsize_t i = 0; i < n; ++i) out[i] = bfloat16_to_float(buffer[i]);
    }
  }
  return static_cast<long long>(n) * dtype_bytes(d);
}

Handle file_type(DType d) {
  if (d == DType::F32) return Handle(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  Handle t = checked(H5Tcopy(H5T_IEEE_F32LE), H5Tclose, "H5Tcopy");
  // Fields first (they must fit the current 32-bit precision), then shrink to 16 bits.
  if (d == DType::F16) {
    check_status(H5Tset_fields(t.get(), 15, 10, 5, 0, 10), "H5Tset_fields(f16)");
    check_status(H5Tset_precision(t.get(), 16), "H5Tset_precision");
    check_status(H5Tset_size(t.get(), 2), "H5Tset_size");
    check_status(H5Tset_ebias(t.get(), 15), "H5Tset_ebias");
  } else {
    check_status(H5Tset_fields(t.get(), 15, 7, 8, 0, 7), "H5Tset_fields(bf16)");
    check_status(H5Tset_precision(t.get(), 16), "H5Tset_precision");
    check_status(H5Tset_size(t.get(), 2), "H5Tset_size");
    check_status(H5Tset_ebias(t.get(), 127), "H5Tset_ebias");
  }
  return t;
}

// ---- attributes ----

bool has_attribute(hid_t loc, const std::string& name) {
  const htri_t e = H5Aexists(loc, name.c_str());
  if (e < 0) H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

namespace {
struct Attribute {
  Handle attr, type;
  H5T_class_t cls = H5T_NO_CLASS;
};

Attribute open_attribute(hid_t loc, const std::string& name, const std::string& what) {
  Attribute a;
  a.attr = checked(H5Aopen(loc, name.c_str(), H5P_DEFAULT), H5Aclose, what + ": cannot open the attribute");
  a.type = checked(H5Aget_type(a.attr.get()), H5Tclose, what + ": cannot read the attribute's type");
  Handle space = checked(H5Aget_space(a.attr.get()), H5Sclose, what + ": cannot read the attribute's shape");
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  EPMOE_REQUIRE(points == 1, ErrorKind::Input, what, ": expected a single value (scalar), found ", points,
                " values");
  a.cls = H5Tget_class(a.type.get());
  return a;
}

long long read_integer_value(Attribute& a, const std::string& what) {
  if (a.cls == H5T_ENUM) {  // numpy bool as written by h5py: an enum over an 8-bit integer
    const std::size_t size = H5Tget_size(a.type.get());
    EPMOE_REQUIRE(size >= 1 && size <= 8, ErrorKind::Input, what, ": unsupported enum size ", size);
    long long v = 0;
    unsigned char raw[8] = {};
    check_status(H5Aread(a.attr.get(), a.type.get(), raw), what + ": cannot read the attribute");
    std::memcpy(&v, raw, size);  // little-endian host
    return v;
  }
  long long v = 0;
  check_status(H5Aread(a.attr.get(), H5T_NATIVE_LLONG, &v), what + ": cannot read the attribute as an integer");
  return v;
}
}  // namespace

long long read_int_attribute(hid_t loc, const std::string& name, const std::string& what) {
  Attribute a = open_attribute(loc, name, what);
  if (a.cls == H5T_FLOAT) {
    double v = 0;
    check_status(H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, &v), what + ": cannot read the attribute");
    EPMOE_REQUIRE(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e18, ErrorKind::Input, what,
                  ": expected an integer, found ", v);
    return static_cast<long long>(v);
  }
  EPMOE_REQUIRE(a.cls == H5T_INTEGER || a.cls == H5T_ENUM, ErrorKind::Input, what, ": expected an integer, found ",
                classify(a.type.get()).description);
  return read_integer_value(a, what);
}

double read_float_attribute(hid_t loc, const std::string& name, const std::string& what) {
  Attribute a = open_attribute(loc, name, what);
  if (a.cls == H5T_INTEGER || a.cls == H5T_ENUM) return static_cast<double>(read_integer_value(a, what));
  EPMOE_REQUIRE(a.cls == H5T_FLOAT, ErrorKind::Input, what, ": expected a number, found ",
                classify(a.type.get()).description);
  double v = 0;
  check_status(H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, &v), what + ": cannot read the attribute");
  EPMOE_REQUIRE(std::isfinite(v), ErrorKind::Input, what, ": expected a finite number, found ", v);
  return v;
}

std::string read_string_attribute(hid_t loc, const std::string& name, const std::string& what) {
  Attribute a = open_attribute(loc, name, what);
  EPMOE_REQUIRE(a.cls == H5T_STRING, ErrorKind::Input, what, ": expected a string, found ",
                classify(a.type.get()).description);
  Handle mem = checked(H5Tcopy(H5T_C_S1), H5Tclose, what + ": H5Tcopy");
  H5Tset_cset(mem.get(), H5Tget_cset(a.type.get()));
  if (H5Tis_variable_str(a.type.get()) > 0) {
    check_status(H5Tset_size(mem.get(), H5T_VARIABLE), what + ": H5Tset_size");
    char* p = nullptr;
    check_status(H5Aread(a.attr.get(), mem.get(), &p), what + ": cannot read the string");
    std::string s = p ? std::string(p) : std::string();
    if (p) H5free_memory(p);
    return s;
  }
  const std::size_t size = H5Tget_size(a.type.get());
  EPMOE_REQUIRE(size > 0 && size < (1u << 20), ErrorKind::Input, what, ": implausible string size ", size);
  check_status(H5Tset_size(mem.get(), size), what + ": H5Tset_size");
  H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
  std::string s(size, '\0');
  check_status(H5Aread(a.attr.get(), mem.get(), &s[0]), what + ": cannot read the string");
  s.resize(std::strlen(s.c_str()));
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

namespace {
void write_scalar(hid_t loc, const std::string& name, hid_t file_t, hid_t mem_t, const void* value) {
  Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  Handle attr = checked(H5Acreate2(loc, name.c_str(), file_t, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                        "cannot create attribute '" + name + "'");
  check_status(H5Awrite(attr.get(), mem_t, value), "cannot write attribute '" + name + "'");
}
}  // namespace

void write_int_attribute(hid_t loc, const std::string& name, long long value) {
  EPMOE_ASSERT(value >= INT32_MIN && value <= INT32_MAX, name);
  const int v = static_cast<int>(value);
  write_scalar(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, &v);
}

void write_float_attribute(hid_t loc, const std::string& name, double value) {
  const float v = static_cast<float>(value);
  write_scalar(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &v);
}

void write_string_attribute(hid_t loc, const std::string& name, const std::string& value) {
  // A fixed-length UTF-8 string: it lives inside the (checksummed) object header. A variable-length string, as h5py
  // writes a Python str, lives in the global heap, which has no checksum: a corrupted byte there crashes HDF5 1.10.
  Handle type = checked(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  H5Tset_size(type.get(), value.empty() ? 1 : value.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  write_scalar(loc, name, type.get(), type.get(), value.c_str());
}

// ---- float conversions ----

std::uint16_t float_to_half(float f) {
  std::uint32_t x = 0;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return static_cast<std::uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to infinity
  if (a < 0x38800000u) {  // below 2^-14: a subnormal half; scaling by 2^24 is exact, nearbyint rounds to even
    float af = 0;
    std::memcpy(&af, &a, 4);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(af * 16777216.0f)));
  }
  const std::uint32_t exponent = (a >> 23) - 127 + 15;
  std::uint32_t h = (exponent << 10) | ((a & 0x7fffffu) >> 13);
  const std::uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is still correct
  return static_cast<std::uint16_t>(sign | h);
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t x = 0;
  if (exponent == 0) {
    const float v = std::ldexp(static_cast<float>(mantissa), -24);
    std::memcpy(&x, &v, 4);
    x |= sign;
  } else if (exponent == 31) {
    x = sign | 0x7f800000u | (mantissa << 13);
  } else {
    x = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float f = 0;
  std::memcpy(&f, &x, 4);
  return f;
}

std::uint16_t float_to_bfloat16(float f) {
  std::uint32_t x = 0;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

float bfloat16_to_float(std::uint16_t b) {
  const std::uint32_t x = static_cast<std::uint32_t>(b) << 16;
  float f = 0;
  std::memcpy(&f, &x, 4);
  return f;
}

void encode(const float* in, std::size_t n, DType d, void* out) {
  if (d == DType::F32) {
    std::memcpy(out, in, n * sizeof(float));
    return;
  }
  auto* o = static_cast<std::uint16_t*>(out);
  if (d == DType::F16) {
    for (std::size_t i = 0; i < n; ++i) o[i] = float_to_half(in[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) o[i] = float_to_bfloat16(in[i]);
  }
}

// ---- files ----

TempPath::TempPath(std::string path) : path_(std::move(path)) {
  static std::atomic<int> counter{0};
  temp_ = path_ + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

TempPath::~TempPath() {
  if (!committed_) std::remove(temp_.c_str());
}

void TempPath::commit() {
  if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    EPMOE_THROW(ErrorKind::Input, path_, ": cannot rename the finished temporary file '", temp_,
                "' onto it: ", std::strerror(err), "; check that the path is writable");
  }
  committed_ = true;
}

Handle create_file(const TempPath& temp) {
  quiet_hdf5();
  Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate");
  // Version-1.10 structures: every piece of metadata carries a checksum, so corruption is detected, and HDF5 1.10
  // and later read the file.
  check_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), "H5Pset_libver_bounds");
  check_status(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "H5Pset_fclose_degree");
  const hid_t file = H5Fcreate(temp.temp().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (file < 0) {
    const int err = errno;
    const std::string msg = hdf5_message();
    EPMOE_THROW(ErrorKind::Input, temp.final_path(), ": cannot create the output file (temporary name '",
                temp.temp(), "'): ", std::strerror(err), " (HDF5: ", msg,
                "); check that the directory exists and is writable");
  }
  return Handle(file, H5Fclose);
}

long long os_read_bytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  long long value = 0;
  while (in >> key >> value) {
    if (key == "rchar:") return value;
  }
  return -1;
}

}  // namespace epmoe::io
