// Buffer types of the layer and the one rule they enforce: a collective only ever receives a contiguous buffer.
//
// Matrix<T>        owning, row-major, contiguous [rows, cols] on the host.
// StridedView<T>   a read-only window (e.g. the first `cols` of a padded row) with a row stride. It is what
//                  trimming produces. It has no conversion to Contiguous<T>: to communicate it, materialize().
// Contiguous<T>    what every communication entry point (MPI now, NCCL in src/cuda) takes: a pointer to `size`
//                  consecutive elements. It can be made only from an owner known to be contiguous (Matrix,
//                  std::vector, a device buffer through from_contiguous_storage), never from a StridedView.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "epmoe/error.hpp"

namespace epmoe {

template <class T>
class StridedView {
 public:
  StridedView(const T* data, int rows, int cols, std::int64_t row_stride)
      : data_(data), rows_(rows), cols_(cols), row_stride_(row_stride) {}
  const T* row(int r) const { return data_ + static_cast<std::int64_t>(r) * row_stride_; }
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  std::int64_t row_stride() const { return row_stride_; }
  bool is_contiguous() const { return row_stride_ == cols_ || rows_ <= 1; }

 private:
  const T* data_;
  int rows_;
  int cols_;
  std::int64_t row_stride_;
};

template <class T>
class Matrix {
 public:
  Matrix() = default;
  Matrix(int rows, int cols, T fill = T(0))
      : rows_(rows), cols_(cols), data_(static_cast<std::size_t>(rows) * cols, fill) {}
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  std::size_t size() const { return data_.size(); }
  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T* row(int r) { return data_.data() + static_cast<std::size_t>(r) * cols_; }
  const T* row(int r) const { return data_.data() + static_cast<std::size_t>(r) * cols_; }
  T& at(int r, int c) { return data_[static_cast<std::size_t>(r) * cols_ + c]; }
  const T& at(int r, int c) const { return data_[static_cast<std::size_t>(r) * cols_ + c]; }
  std::vector<T>& storage() { return data_; }
  const std::vector<T>& storage() const { return data_; }
  StridedView<T> view() const { return StridedView<T>(data(), rows_, cols_, cols_); }
  // The first `width` columns of every row: a strided view when width < cols.
  StridedView<T> trimmed(int width) const {
    EPMOE_ASSERT(width >= 0 && width <= cols_, "trim width ", width, " of a matrix with ", cols_, " columns");
    return StridedView<T>(data(), rows_, width, cols_);
  }

 private:
  int rows_ = 0;
  int cols_ = 0;
  std::vector<T> data_;
};

// Copies a (possibly strided) view into a new contiguous matrix: the only way a view reaches a collective.
template <class T>
Matrix<T> materialize(const StridedView<T>& view) {
  Matrix<T> out(view.rows(), view.cols());
  for (int r = 0; r < view.rows(); ++r) {
    const T* src = view.row(r);
    T* dst = out.row(r);
    for (int c = 0; c < view.cols(); ++c) dst[c] = src[c];
  }
  return out;
}

template <class T>
class Contiguous {
 public:
  Contiguous(Matrix<T>& m) : data_(m.data()), size_(m.size()) {}            // NOLINT: implicit on purpose
  Contiguous(std::vector<T>& v) : data_(v.data()), size_(v.size()) {}       // NOLINT
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T>>>
  Contiguous(const Matrix<U>& m) : data_(m.data()), size_(m.size()) {}      // NOLINT
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T>>>
  Contiguous(const std::vector<U>& v) : data_(v.data()), size_(v.size()) {}  // NOLINT
  // A strided view is not a contiguous buffer, whatever its stride happens to be: materialize() it first.
  template <class U>
  Contiguous(const StridedView<U>&) = delete;

  // For owners of raw contiguous storage (device buffers): the caller vouches that [data, data+size) is one block.
  static Contiguous from_contiguous_storage(T* data, std::size_t size) { return Contiguous(data, size); }

  T* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  Contiguous(T* data, std::size_t size) : data_(data), size_(size) {}
  T* data_;
  std::size_t size_;
};

using Rows = Matrix<float>;

}  // namespace epmoe
