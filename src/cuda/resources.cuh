// RAII owners of CUDA resources: device buffers, pinned host buffers, streams, events and the cuBLAS handle.
// None is copyable; all are movable. Destructors never throw (a failed free at exit is not worth a crash).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

#include "check.cuh"
#include "epmoe/tensor.hpp"

namespace epmoe::cuda {

// `count` elements of T in device memory, uninitialized. reserve() grows it (contents are not kept) and says so on
// stderr: the layer sizes its buffers at start, so a growth in the steady state is worth a line.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count, const char* name = "buffer") : name_(name) { allocate(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      count_ = std::exchange(o.count_, 0);
      name_ = o.name_;
    }
    return *this;
  }

  T* data() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }
  void set_name(const char* name) { name_ = name; }

  // Ensures room for `count` elements; reallocates (contents lost) when it grows. Returns true if it grew.
  bool reserve(std::size_t count, bool log = true) {
    if (count <= count_) return false;
    if (log && count_ > 0)
      std::fprintf(stderr, "# epmoe cuda: growing device buffer '%s' from %zu to %zu elements (%.1f MiB)\n", name_,
                   count_, count, count * sizeof(T) / 1048576.0);
    release();
    allocate(count);
    return true;
  }
  // The only way a device buffer reaches a collective: [data + first, data + first + count) of this one allocation.
  Contiguous<T> contiguous(std::size_t count, std::size_t first = 0) const {
    EPMOE_ASSERT(first + count <= count_, "contiguous view of ", count, " elements from ", first, " of buffer '",
                 name_, "' holding ", count_);
    return Contiguous<T>::from_contiguous_storage(data_ + first, count);
  }
  Contiguous<const T> contiguous_const(std::size_t count) const {
    EPMOE_ASSERT(count <= count_, "contiguous view of ", count, " elements of buffer '", name_, "' holding ", count_);
    return Contiguous<const T>::from_contiguous_storage(data_, count);
  }

 private:
  void allocate(std::size_t count) {
    if (count == 0) return;
    EPMOE_CUDA_CHECK(cudaMalloc(&data_, count * sizeof(T)));
    count_ = count;
  }
  void release() noexcept {
    if (data_) cudaFree(data_);
    data_ = nullptr;
    count_ = 0;
  }
  T* data_ = nullptr;
  std::size_t count_ = 0;
  const char* name_ = "buffer";
};

// Page-locked host memory, for the count exchange and the copies in and out.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (data_) cudaFreeHost(data_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void reserve(std::size_t count) {
    if (count <= count_) return;
    if (data_) cudaFreeHost(data_);
    data_ = nullptr;
    count_ = 0;
    EPMOE_CUDA_CHECK(cudaMallocHost(&data_, count * sizeof(T)));
    count_ = count;
  }
  T* data() const { return data_; }
  std::size_t size() const { return count_; }

 private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

class Stream {
 public:
  Stream() { EPMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const { EPMOE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  explicit Event(bool timing = true) {
    EPMOE_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
  }
  ~Event() {
    if (event_) cudaEventDestroy(event_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t s) const { EPMOE_CUDA_CHECK(cudaEventRecord(event_, s)); }

 private:
  cudaEvent_t event_ = nullptr;
};

// Seconds between two recorded events (both must have completed).
inline double elapsed_seconds(const Event& start, const Event& stop) {
  float ms = 0;
  EPMOE_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
  return ms * 1e-3;
}

class CublasHandle {
 public:
  CublasHandle() { EPMOE_CUBLAS_CHECK(cublasCreate(&handle_)); }
  ~CublasHandle() {
    if (handle_) cublasDestroy(handle_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace epmoe::cuda
