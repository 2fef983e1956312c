// Token files: /hidden_states [T, D] in, /output [T, D] + /topk_ids + /topk_weights out.
#include "contract.hpp"
#include "epmoe/checkpoint.hpp"
#include "h5.hpp"

namespace epmoe {
namespace {

struct TokenDataset {
  io::Handle file, dataset;
  io::DatasetShape shape;
};

TokenDataset open_tokens(const std::string& path, const std::string& dataset) {
  TokenDataset t;
  t.file = io::open_read(path);
  const std::string what = path + ": dataset '" + dataset + "'";
  EPMOE_REQUIRE(io::link_exists(t.file.get(), dataset), ErrorKind::Input, what,
                dataset == "/expert_loads"
                    ? " is missing; an expert loads file holds /expert_loads [layers, experts] (epmoe run "
                      "--save-expert-loads writes one)"
                    : " is missing; a token file holds /hidden_states [T, D] (float32, float16 or bfloat16)");
  t.dataset = io::checked(H5Dopen2(t.file.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose,
                          what + " cannot be opened (not a dataset, or the file is corrupted)");
  t.shape = io::describe_dataset(t.dataset.get());
  EPMOE_REQUIRE(t.shape.dims.size() == 2, ErrorKind::Input, what, " has shape ", io::shape_text(t.shape.dims),
                ", expected 2 dimensions [T, D]");
  EPMOE_REQUIRE(t.shape.type.dtype.has_value(), ErrorKind::Input, what, " has element type ",
                t.shape.type.description, "; accepted: float32, float16, bfloat16");
  EPMOE_REQUIRE(t.shape.dims[0] < (1ull << 31) && t.shape.dims[1] < (1ull << 31), ErrorKind::Input, what,
                " is too large: ", io::shape_text(t.shape.dims));
  return t;
}

}  // namespace

TokenFileInfo token_file_info(const std::string& path, const std::string& dataset) {
  TokenDataset t = open_tokens(path, dataset);
  TokenFileInfo info;
  info.rows = static_cast<long>(t.shape.dims[0]);
  info.width = static_cast<int>(t.shape.dims[1]);
  info.dtype = *t.shape.type.dtype;
  return info;
}

Matrix<float> read_tokens(const std::string& path, const std::string& dataset, long first_row, long num_rows,
                          int expected_width) {
  TokenDataset t = open_tokens(path, dataset);
  const std::string what = path + ": dataset '" + dataset + "'";
  const long rows = static_cast<long>(t.shape.dims[0]);
  const int width = static_cast<int>(t.shape.dims[1]);
  EPMOE_REQUIRE(width == expected_width, ErrorKind::Input, what, " has width ", width, " (shape ",
                io::shape_text(t.shape.dims), ") but the model's hidden_size is ", expected_width,
                "; the tokens must be [T, ", expected_width, "]");
  EPMOE_REQUIRE(first_row >= 0 && num_rows >= 0 && first_row + num_rows <= rows, ErrorKind::Input, what,
                ": rows [", first_row, ", ", first_row + num_rows, ") are out of range (the dataset has ", rows,
                " rows)");
  Matrix<float> x(static_cast<int>(num_rows), width);
  if (num_rows > 0) {
    io::read_floats(t.dataset.get(), t.shape, {static_cast<hsize_t>(first_row), 0},
                    {static_cast<hsize_t>(num_rows), static_cast<hsize_t>(width)}, x.data(), H5P_DEFAULT, what);
  }
  return x;
}

namespace {
void write_matrix(hid_t file, const std::string& path, const std::string& name, hid_t file_type, hid_t mem_type,
                  int rows, int cols, const void* data) {
  const std::string what = path + ": writing dataset '" + name + "'";
  const hsize_t dims[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  io::Handle space = io::checked(H5Screate_simple(2, dims, nullptr), H5Sclose, what);
  io::Handle d = io::checked(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                                        H5P_DEFAULT),
                             H5Dclose, what);
  if (rows > 0 && cols > 0) {
    io::check_status(H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), what + " failed (disk full?)");
  }
}
}  // namespace

void write_output_file(const std::string& path, const Matrix<float>& output, const Matrix<int>& topk_ids,
                       const Matrix<float>& topk_weights) {
  EPMOE_ASSERT(output.rows() == topk_ids.rows() && topk_ids.rows() == topk_weights.rows() &&
                   topk_ids.cols() == topk_weights.cols(),
               "output, topk_ids and topk_weights disagree on their shapes");
  io::TempPath temp(path);
  io::Handle file = io::create_file(temp);
  write_matrix(file.get(), path, "/output", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, output.rows(), output.cols(),
               output.data());
  write_matrix(file.get(), path, "/topk_ids", H5T_STD_I32LE, H5T_NATIVE_INT, topk_ids.rows(), topk_ids.cols(),
               topk_ids.data());
  write_matrix(file.get(), path, "/topk_weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, topk_weights.rows(),
               topk_weights.cols(), topk_weights.data());
  io::check_status(file.close(), path + ": closing the file failed (disk full?)");
  temp.commit();
}

void write_expert_loads_file(const std::string& path, const Matrix<float>& loads) {
  io::TempPath temp(path);
  io::Handle file = io::create_file(temp);
  write_matrix(file.get(), path, "/expert_loads", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, loads.rows(), loads.cols(),
               loads.data());
  io::check_status(file.close(), path + ": closing the file failed (disk full?)");
  temp.commit();
}

}  // namespace epmoe
