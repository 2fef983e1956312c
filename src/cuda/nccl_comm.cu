#include "nccl_comm.cuh"

#include <cuda_bf16.h>
#include <mpi.h>

#include <numeric>

namespace epmoe::cuda {

template <>
ncclDataType_t nccl_type<float>() { return ncclFloat32; }
template <>
ncclDataType_t nccl_type<const float>() { return ncclFloat32; }
template <>
ncclDataType_t nccl_type<int>() { return ncclInt32; }
template <>
ncclDataType_t nccl_type<const int>() { return ncclInt32; }
template <>
ncclDataType_t nccl_type<__nv_bfloat16>() { return ncclBfloat16; }
template <>
ncclDataType_t nccl_type<const __nv_bfloat16>() { return ncclBfloat16; }

namespace {

std::size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclBfloat16:
    case ncclFloat16: return 2;
    case ncclFloat32:
    case ncclInt32:
    case ncclUint32: return 4;
    default: return 8;
  }
}

}  // namespace

int select_device(const MpiComm& comm, bool allow_shared_gpu) {
  MPI_Comm node = MPI_COMM_NULL;
  EPMOE_MPI_CHECK(MPI_Comm_split_type(comm.handle(), MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &node));
  int local_rank = 0, local_size = 1;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  int count = 0;
  EPMOE_CUDA_CHECK(cudaGetDeviceCount(&count));
  EPMOE_REQUIRE(count > 0, ErrorKind::Runtime, "no CUDA device visible to rank ", comm.rank());
  EPMOE_REQUIRE(local_size <= count || allow_shared_gpu, ErrorKind::Config, local_size,
                " ranks on this node share ", count,
                " GPU(s): run one rank per GPU (e.g. mpirun -np ", count,
                "), or allow sharing explicitly (CudaOptions::allow_shared_gpu, --allow-shared-gpu)");
  const int device = local_rank % count;
  EPMOE_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

NcclComm::NcclComm(const MpiComm& comm) : rank_(comm.rank()), size_(comm.size()) {
  ncclUniqueId id;
  if (rank_ == 0) EPMOE_NCCL_CHECK(ncclGetUniqueId(&id));
  EPMOE_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm.handle()));
  EPMOE_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
}

NcclComm::~NcclComm() {
  if (comm_) ncclCommDestroy(comm_);
}

void NcclComm::alltoallv_group(const std::vector<Exchange>& exchanges, cudaStream_t stream) const {
  for (const Exchange& x : exchanges) {
    EPMOE_ASSERT(x.send_counts->size() == static_cast<std::size_t>(size_) &&
                     x.recv_counts->size() == static_cast<std::size_t>(size_),
                 "alltoallv counts per rank");
    EPMOE_ASSERT(std::accumulate(x.send_counts->begin(), x.send_counts->end(), std::size_t(0)) <= x.send_capacity &&
                     std::accumulate(x.recv_counts->begin(), x.recv_counts->end(), std::size_t(0)) <= x.recv_capacity,
                 "alltoallv buffers smaller than their counts");
  }
  EPMOE_NCCL_CHECK(ncclGroupStart());
  for (const Exchange& x : exchanges) {
    const std::size_t elem = type_size(x.type);
    std::size_t send_off = 0, recv_off = 0;
    for (int r = 0; r < size_; ++r) {
      const std::size_t sc = (*x.send_counts)[r], rc = (*x.recv_counts)[r];
      if (sc) EPMOE_NCCL_CHECK(ncclSend(static_cast<const char*>(x.send) + send_off * elem, sc, x.type, r, comm_, stream));
      if (rc) EPMOE_NCCL_CHECK(ncclRecv(static_cast<char*>(x.recv) + recv_off * elem, rc, x.type, r, comm_, stream));
      send_off += sc;
      recv_off += rc;
    }
  }
  EPMOE_NCCL_CHECK(ncclGroupEnd());
}

template <class T>
void NcclComm::alltoallv(Contiguous<const T> send, const std::vector<std::size_t>& send_counts, Contiguous<T> recv,
                         const std::vector<std::size_t>& recv_counts, cudaStream_t stream) const {
  alltoallv_group(std::vector<Exchange>{make_exchange(send, recv, send_counts, recv_counts)}, stream);
}

template <class T>
void NcclComm::allreduce_sum(Contiguous<T> buffer, cudaStream_t stream) const {
  if (buffer.size() == 0) return;
  EPMOE_NCCL_CHECK(
      ncclAllReduce(buffer.data(), buffer.data(), buffer.size(), nccl_type<T>(), ncclSum, comm_, stream));
}

template <class T>
void NcclComm::alltoall(Contiguous<const T> send, Contiguous<T> recv, std::size_t count_per_rank,
                        cudaStream_t stream) const {
  EPMOE_ASSERT(send.size() >= count_per_rank * size_ && recv.size() >= count_per_rank * size_, "alltoall buffers");
  EPMOE_NCCL_CHECK(ncclAlltoAll(send.data(), recv.data(), count_per_rank, nccl_type<T>(), comm_, stream));
}

template void NcclComm::alltoallv(Contiguous<const __nv_bfloat16>, const std::vector<std::size_t>&,
                                  Contiguous<__nv_bfloat16>, const std::vector<std::size_t>&, cudaStream_t) const;
template void NcclComm::alltoallv(Contiguous<const int>, const std::vector<std::size_t>&, Contiguous<int>,
                                  const std::vector<std::size_t>&, cudaStream_t) const;
template void NcclComm::allreduce_sum(Contiguous<__nv_bfloat16>, cudaStream_t) const;
template void NcclComm::allreduce_sum(Contiguous<float>, cudaStream_t) const;
template void NcclComm::alltoall(Contiguous<const __nv_bfloat16>, Contiguous<__nv_bfloat16>, std::size_t,
                                 cudaStream_t) const;
template void NcclComm::alltoall(Contiguous<const int>, Contiguous<int>, std::size_t, cudaStream_t) const;

}  // namespace epmoe::cuda
