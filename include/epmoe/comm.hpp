// Host-side communication over MPI: the CPU backend's collectives, plus the small control-plane helpers every
// backend uses (agreeing on errors, gathering reports). Every data collective takes epmoe::Contiguous buffers, so a
// trimmed strided view cannot reach one (tensor.hpp).
#pragma once

#include <mpi.h>

#include <functional>
#include <string>
#include <vector>

#include "epmoe/tensor.hpp"

namespace epmoe {

class MpiComm {
 public:
  explicit MpiComm(MPI_Comm comm = MPI_COMM_WORLD);
  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm handle() const { return comm_; }

  // `per_rank` ints to and from each rank: recv[r * per_rank, +per_rank) = what rank r put in
  // send[this rank * per_rank, +per_rank).
  void alltoall(Contiguous<const int> send, Contiguous<int> recv, int per_rank = 1) const;
  // send_counts[r] elements go to rank r (consecutive in `send`, rank order); recv likewise.
  void alltoallv(Contiguous<const float> send, const std::vector<int>& send_counts, Contiguous<float> recv,
                 const std::vector<int>& recv_counts) const;
  // In-place sum over ranks.
  void allreduce_sum(Contiguous<float> buffer) const;

  // Control plane (small values).
  double max(double v) const;
  double sum(double v) const;
  long sum(long v) const;
  void barrier() const;
  void broadcast(std::string& s, int root) const;
  // Concatenates every rank's `local` rows on `root` (others get an empty matrix). Rows keep rank order.
  template <class T>
  Matrix<T> gather_rows(const Matrix<T>& local, int root) const;

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

// Runs `step` on every rank, then agrees: if it threw on any rank, every rank throws an epmoe::Error carrying the
// message of the lowest failing rank (marked agreed(), so the program prints it once and exits cleanly instead of
// leaving ranks stuck in a later collective).
void run_collectively(const MpiComm& comm, const std::function<void()>& step);
// True for an error that run_collectively raised on every rank.
bool is_agreed_error(const std::exception& e);

// The whole life of an MPI program: MPI_Init, the rank in error messages, `body` on MPI_COMM_WORLD, MPI_Finalize;
// returns the exit code. Errors raised identically on every rank (usage errors, agreed ones) are printed once, by
// rank 0, as "<program>: error: ..." and end the program cleanly with their exit code; any other error is printed
// by its rank and aborts the job, since peers may be waiting in a collective.
int run_mpi_program(int argc, char** argv, const char* program, const std::function<int(const MpiComm&)>& body);

// Turns a failed MPI call into an epmoe::Error with the call, file:line and MPI's message.
void check_mpi(int code, const char* call, const char* file, int line);
#define EPMOE_MPI_CHECK(call) ::epmoe::check_mpi((call), #call, __FILE__, __LINE__)

}  // namespace epmoe
