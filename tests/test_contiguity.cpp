// Invariant 2 of the unpad plan, by construction: a trimmed strided view cannot reach a collective.
#include <type_traits>
#include <utility>

#include "catch.hpp"
#include "epmoe/comm.hpp"
#include "epmoe/tensor.hpp"

using namespace epmoe;

namespace {
template <class Buffer, class = void>
struct can_allreduce : std::false_type {};
template <class Buffer>
struct can_allreduce<Buffer, std::void_t<decltype(std::declval<const MpiComm&>().allreduce_sum(std::declval<Buffer>()))>>
    : std::true_type {};

template <class Buffer, class = void>
struct can_alltoallv : std::false_type {};
template <class Buffer>
struct can_alltoallv<Buffer, std::void_t<decltype(std::declval<const MpiComm&>().alltoallv(
                                 std::declval<Buffer>(), std::vector<int>{}, std::declval<Matrix<float>&>(),
                                 std::vector<int>{}))>> : std::true_type {};
}  // namespace

// Compile-time: the communication entry points accept owners of contiguous storage and refuse views.
static_assert(!std::is_constructible_v<Contiguous<float>, StridedView<float>>);
static_assert(!std::is_constructible_v<Contiguous<const float>, StridedView<float>>);
static_assert(!std::is_convertible_v<StridedView<float>, Contiguous<float>>);
static_assert(!std::is_convertible_v<StridedView<float>, Contiguous<const float>>);
static_assert(std::is_convertible_v<Matrix<float>&, Contiguous<float>>);
static_assert(std::is_convertible_v<const Matrix<float>&, Contiguous<const float>>);
static_assert(!std::is_convertible_v<const Matrix<float>&, Contiguous<float>>);  // no writing through a const owner
static_assert(can_allreduce<Matrix<float>&>::value);
static_assert(!can_allreduce<StridedView<float>>::value);
static_assert(!can_allreduce<const StridedView<float>&>::value);
static_assert(can_alltoallv<const Matrix<float>&>::value);
static_assert(!can_alltoallv<StridedView<float>>::value);

TEST_CASE("a trimmed padded buffer is a strided view; only materialize() makes it contiguous", "[contiguity]") {
  Matrix<float> padded(5, 8);  // e.g. width 6 padded to 8
  for (size_t i = 0; i < padded.size(); ++i) padded.data()[i] = static_cast<float>(i);
  const StridedView<float> trimmed = padded.trimmed(6);
  REQUIRE(trimmed.cols() == 6);
  REQUIRE(trimmed.row_stride() == 8);
  REQUIRE_FALSE(trimmed.is_contiguous());
  REQUIRE(padded.trimmed(8).is_contiguous());
  Matrix<float> dense = materialize(trimmed);
  REQUIRE(dense.cols() == 6);
  REQUIRE(dense.rows() == 5);
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 6; ++c) REQUIRE(dense.at(r, c) == padded.at(r, c));
  // The materialized copy is what a collective receives; on one rank the sum over ranks is the identity.
  const MpiComm comm(MPI_COMM_SELF);
  comm.allreduce_sum(dense);
  REQUIRE(dense.at(4, 5) == padded.at(4, 5));
}
