#include <cstdio>
#include <cstring>
#include <numeric>

#include "epmoe/comm.hpp"
#include "epmoe/error.hpp"

namespace epmoe {
namespace {

class AgreedError : public Error {
 public:
  AgreedError(ErrorKind kind, const std::string& msg) : Error(kind, msg) {}
};

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<int>() { return MPI_INT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

std::vector<int> displacements(const std::vector<int>& counts) {
  std::vector<int> d(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) d[i] = d[i - 1] + counts[i - 1];
  return d;
}

}  // namespace

void check_mpi(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw Error(ErrorKind::Runtime, std::string("MPI call failed: ") + call + ": " + std::string(text, len), file,
              line);
}

MpiComm::MpiComm(MPI_Comm comm) : comm_(comm) {
  EPMOE_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  EPMOE_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

void MpiComm::alltoall(Contiguous<const int> send, Contiguous<int> recv, int per_rank) const {
  const std::size_t n = static_cast<std::size_t>(size_) * per_rank;
  EPMOE_ASSERT(per_rank >= 1 && send.size() >= n && recv.size() >= n, "alltoall of ", per_rank,
               " ints per rank over buffers of ", send.size(), " and ", recv.size());
  EPMOE_MPI_CHECK(MPI_Alltoall(send.data(), per_rank, MPI_INT, recv.data(), per_rank, MPI_INT, comm_));
}

void MpiComm::alltoallv(Contiguous<const float> send, const std::vector<int>& send_counts, Contiguous<float> recv,
                        const std::vector<int>& recv_counts) const {
  EPMOE_ASSERT(send_counts.size() == static_cast<size_t>(size_) && recv_counts.size() == static_cast<size_t>(size_),
               "alltoallv counts");
  EPMOE_ASSERT(static_cast<size_t>(std::accumulate(send_counts.begin(), send_counts.end(), 0L)) <= send.size() &&
                   static_cast<size_t>(std::accumulate(recv_counts.begin(), recv_counts.end(), 0L)) <= recv.size(),
               "alltoallv buffers smaller than their counts");
  const std::vector<int> sd = displacements(send_counts), rd = displacements(recv_counts);
  EPMOE_MPI_CHECK(MPI_Alltoallv(send.data(), send_counts.data(), sd.data(), MPI_FLOAT, recv.data(),
                                recv_counts.data(), rd.data(), MPI_FLOAT, comm_));
}

void MpiComm::allreduce_sum(Contiguous<float> buffer) const {
  // MPI counts are int: reduce in chunks so that large buffers work.
  const size_t chunk = size_t(1) << 30;
  for (size_t off = 0; off < buffer.size(); off += chunk) {
    const int n = static_cast<int>(std::min(chunk, buffer.size() - off));
    EPMOE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buffer.data() + off, n, MPI_FLOAT, MPI_SUM, comm_));
  }
}

double MpiComm::max(double v) const {
  double out = 0;
  EPMOE_MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, comm_));
  return out;
}
double MpiComm::sum(double v) const {
  double out = 0;
  EPMOE_MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_SUM, comm_));
  return out;
}
long MpiComm::sum(long v) const {
  long out = 0;
  EPMOE_MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_LONG, MPI_SUM, comm_));
  return out;
}
void MpiComm::barrier() const { EPMOE_MPI_CHECK(MPI_Barrier(comm_)); }

void MpiComm::broadcast(std::string& s, int root) const {
  int n = static_cast<int>(s.size());
  EPMOE_MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT, root, comm_));
  s.resize(n);
  if (n > 0) EPMOE_MPI_CHECK(MPI_Bcast(&s[0], n, MPI_CHAR, root, comm_));
}

template <class T>
Matrix<T> MpiComm::gather_rows(const Matrix<T>& local, int root) const {
  int rows = local.rows(), cols = local.cols();
  std::vector<int> all_rows(size_);
  EPMOE_MPI_CHECK(MPI_Gather(&rows, 1, MPI_INT, all_rows.data(), 1, MPI_INT, root, comm_));
  int max_cols = 0;
  EPMOE_MPI_CHECK(MPI_Allreduce(&cols, &max_cols, 1, MPI_INT, MPI_MAX, comm_));
  Matrix<T> out;
  std::vector<int> counts(size_), displs(size_);
  if (rank_ == root) {
    const int total = std::accumulate(all_rows.begin(), all_rows.end(), 0);
    out = Matrix<T>(total, max_cols);
    for (int r = 0; r < size_; ++r) counts[r] = all_rows[r] * max_cols;
    displs = displacements(counts);
  }
  EPMOE_ASSERT(local.rows() == 0 || cols == max_cols, "gather_rows: ranks disagree on the width");
  EPMOE_MPI_CHECK(MPI_Gatherv(local.data(), static_cast<int>(local.size()), mpi_type<T>(), out.data(),
                              counts.data(), displs.data(), mpi_type<T>(), root, comm_));
  return out;
}
template Matrix<float> MpiComm::gather_rows(const Matrix<float>&, int) const;
template Matrix<int> MpiComm::gather_rows(const Matrix<int>&, int) const;
template Matrix<double> MpiComm::gather_rows(const Matrix<double>&, int) const;

void run_collectively(const MpiComm& comm, const std::function<void()>& step) {
  std::string message;
  int kind = 0;
  int failed = 0;
  try {
    step();
  } catch (const Error& e) {
    message = e.what();
    kind = static_cast<int>(e.kind());
    failed = 1;
  } catch (const std::exception& e) {
    message = std::string("[rank ") + std::to_string(comm.rank()) + "] " + e.what();
    kind = static_cast<int>(ErrorKind::Runtime);
    failed = 1;
  }
  // The lowest failing rank's message and kind go to everyone.
  int mine = failed ? comm.rank() : comm.size();
  int first = comm.size();
  EPMOE_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm.handle()));
  if (first == comm.size()) return;
  comm.broadcast(message, first);
  EPMOE_MPI_CHECK(MPI_Bcast(&kind, 1, MPI_INT, first, comm.handle()));
  throw AgreedError(static_cast<ErrorKind>(kind), message);
}

bool is_agreed_error(const std::exception& e) { return dynamic_cast<const AgreedError*>(&e) != nullptr; }

int run_mpi_program(int argc, char** argv, const char* program, const std::function<int(const MpiComm&)>& body) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  set_error_rank(rank);
  int code = 0;
  try {
    code = body(MpiComm(MPI_COMM_WORLD));
  } catch (const Error& e) {
    const bool agreed = e.kind() == ErrorKind::Usage || is_agreed_error(e);
    if (!agreed || rank == 0) std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    std::fflush(stderr);
    if (!agreed) MPI_Abort(MPI_COMM_WORLD, e.exit_code());
    code = e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: [rank %d] %s\n", program, rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}

}  // namespace epmoe
