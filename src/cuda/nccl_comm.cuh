// The rank's GPU and its NCCL communicator, built from MPI. Every data collective takes epmoe::Contiguous<T> made from
// an owning device buffer (DeviceBuffer::contiguous), never a strided view.
#pragma once

#include <nccl.h>

#include <vector>

#include "epmoe/comm.hpp"
#include "epmoe/tensor.hpp"
#include "resources.cuh"

namespace epmoe::cuda {

// local_rank = rank in MPI_Comm_split_type(MPI_COMM_TYPE_SHARED); device = local_rank % device_count. Refuses two
// ranks on one GPU unless allow_shared_gpu. Sets the device for this thread and returns it. Collective over `comm`.
int select_device(const MpiComm& comm, bool allow_shared_gpu);

template <class T>
ncclDataType_t nccl_type();

class NcclComm {
 public:
  // Collective over `comm`: rank 0 makes the unique id and broadcasts it over MPI. The device must be selected.
  explicit NcclComm(const MpiComm& comm);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  ncclComm_t get() const { return comm_; }

  // All-to-all-v as grouped ncclSend/ncclRecv: `send_counts[r]` elements (consecutive, rank order) to rank r, and
  // `recv_counts[r]` from it. Counts are elements of T, known on the host. Asynchronous on `stream`.
  template <class T>
  void alltoallv(Contiguous<const T> send, const std::vector<std::size_t>& send_counts, Contiguous<T> recv,
                 const std::vector<std::size_t>& recv_counts, cudaStream_t stream) const;
  // Several all-to-all-v exchanges fused in one NCCL group (one launch), e.g. rows and their pair metadata.
  // Each exchange is {send, recv, per-rank element counts of send, of recv, element size in bytes}.
  struct Exchange {
    const void* send;
    void* recv;
    std::size_t send_capacity;  // elements
    std::size_t recv_capacity;
    const std::vector<std::size_t>* send_counts;
    const std::vector<std::size_t>* recv_counts;
    ncclDataType_t type;
  };
  void alltoallv_group(const std::vector<Exchange>& exchanges, cudaStream_t stream) const;
  // In-place sum over ranks. Asynchronous on `stream`.
  template <class T>
  void allreduce_sum(Contiguous<T> buffer, cudaStream_t stream) const;
  // Equal split: `count_per_rank` elements to and from every rank (the ceiling of the all-to-all-v above).
  template <class T>
  void alltoall(Contiguous<const T> send, Contiguous<T> recv, std::size_t count_per_rank, cudaStream_t stream) const;

 private:
  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
  int size_ = 1;
};

template <class T>
NcclComm::Exchange make_exchange(Contiguous<const T> send, Contiguous<T> recv,
                                 const std::vector<std::size_t>& send_counts,
                                 const std::vector<std::size_t>& recv_counts) {
  return NcclComm::Exchange{send.data(), recv.data(), send.size(), recv.size(), &send_counts, &recv_counts,
                            nccl_type<T>()};
}

}  // namespace epmoe::cuda
