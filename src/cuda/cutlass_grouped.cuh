// Internal to the CUTLASS grouped GEMM (cutlass_gemm.cuh): the kernel template, the argument block's layout and the
// launcher. Included by the sm_90a translation units only, one per tile configuration (cutlass_tile_*.cu), so that
// the configurations compile in parallel.
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <algorithm>
#include <cstddef>
#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

#include "check.cuh"
#include "cutlass_gemm.cuh"

namespace epmoe::cuda::cutlass_detail {

using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // (M, N, K) per group
using Shape3 = ProblemShape::UnderlyingProblemShape;
using Element = cutlass::bfloat16_t;
// out = x . w^T: A = x is row-major M x K, B = w^T is the column-major K x N view of w[N, K] (both K-major, the
// layout Hopper's tensor cores read without a transpose), D = out is row-major M x N.
using LayoutA = cutlass::layout::RowMajor;
using LayoutB = cutlass::layout::ColumnMajor;
using LayoutD = cutlass::layout::RowMajor;
constexpr int kAlign = 8;  // elements per 16 bytes
// Strides of the pointer-array kernels: (leading dimension, 1, 0) for all three operands.
using Stride = cute::Stride<int64_t, cute::Int<1>, cute::Int<0>>;

template <class Tile, class Cluster, class MainloopSchedule, class EpilogueSchedule>
struct GroupedGemm {
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,  //
      void, LayoutD*, kAlign,                                         // no C: out = x . w^T, nothing added
      Element, LayoutD*, kAlign, EpilogueSchedule,
      cutlass::epilogue::fusion::LinearCombination<Element, float, void>>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA*, kAlign, Element, LayoutB*, kAlign, float,
      Tile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  static_assert(std::is_same_v<typename Kernel::InternalStrideA, Stride> &&
                    std::is_same_v<typename Kernel::InternalStrideB, Stride> &&
                    std::is_same_v<typename Kernel::InternalStrideD, Stride>,
                "every configuration reads one argument block");
};

constexpr std::size_t round16(std::size_t n) {
  return (n + 15) / 16 * 16;
}

// The argument block: [shapes | A pointers | B pointers | D pointers | A strides | B strides | D strides], each
// array of max_groups entries starting on 16 bytes.
struct BlockLayout {
  std::size_t shapes, a, b, d, sa, sb, sd, bytes;
  explicit BlockLayout(int groups) {
    const std::size_t n = static_cast<std::size_t>(std::max(groups, 1));
    shapes = 0;
    a = round16(shapes + n * sizeof(Shape3));
    b = round16(a + n * sizeof(void*));
    d = round16(b + n * sizeof(void*));
    sa = round16(d + n * sizeof(void*));
    sb = round16(sa + n * sizeof(Stride));
    sd = round16(sb + n * sizeof(Stride));
    bytes = round16(sd + n * sizeof(Stride));
  }
};

template <class T>
T* at(const void* block, std::size_t offset) {
  return reinterpret_cast<T*>(const_cast<unsigned char*>(static_cast<const unsigned char*>(block)) + offset);
}

// What one launch needs besides the configuration.
struct Launch {
  const void* device_block;
  const void* host_block;
  int max_groups, groups;
  int sm_count;
  CutlassSchedule schedule;
  void* workspace;
  std::size_t workspace_bytes;
  cudaStream_t stream;
};

inline void check_status(cutlass::Status status, const char* what) {
  if (status == cutlass::Status::kSuccess) return;
  EPMOE_THROW(ErrorKind::Runtime, "CUTLASS grouped GEMM: ", what, " failed: ", cutlassGetStatusString(status));
}

template <class Gemm>
typename Gemm::Arguments arguments(const Launch& l) {
  const BlockLayout b(l.max_groups);
  cutlass::KernelHardwareInfo hw;
  hw.sm_count = l.sm_count;
  typename Gemm::Arguments args{
      cutlass::gemm::GemmUniversalMode::kGrouped,
      {l.groups, at<Shape3>(l.device_block, b.shapes), at<Shape3>(l.host_block, b.shapes)},
      {at<const Element*>(l.device_block, b.a), at<Stride>(l.device_block, b.sa),
       at<const Element*>(l.device_block, b.b), at<Stride>(l.device_block, b.sb)},
      {{}, nullptr, nullptr, at<Element*>(l.device_block, b.d), at<Stride>(l.device_block, b.sd)},
      hw};
  auto& fusion = args.epilogue.thread;
  fusion.alpha = 1.0f;
  fusion.beta = 0.0f;
  fusion.alpha_ptr = nullptr;
  fusion.beta_ptr = nullptr;
  fusion.alpha_ptr_array = nullptr;
  fusion.beta_ptr_array = nullptr;
  fusion.dAlpha = {cute::_0{}, cute::_0{}, 0};
  fusion.dBeta = {cute::_0{}, cute::_0{}, 0};
  using Raster = cutlass::gemm::kernel::detail::RasterOrderOptions;
  args.scheduler.raster_order = l.schedule.raster_along_n ? Raster::AlongN : Raster::AlongM;
  args.scheduler.max_swizzle_size = l.schedule.swizzle;
  return args;
}

// The workspace (per-SM TMA descriptors) one launch of this configuration needs.
template <class Gemm>
std::size_t workspace_bytes(const Launch& l) {
  return Gemm::get_workspace_size(arguments<Gemm>(l));
}

template <class Gemm>
void launch(const Launch& l) {
  const typename Gemm::Arguments args = arguments<Gemm>(l);
  EPMOE_ASSERT(Gemm::get_workspace_size(args) <= l.workspace_bytes, "CUTLASS workspace of ", l.workspace_bytes,
               " bytes, the GEMM needs ", Gemm::get_workspace_size(args));
  Gemm gemm;
  check_status(gemm.can_implement(args), "can_implement");
  check_status(gemm.initialize(args, l.workspace, l.stream), "initialize");
  check_status(gemm.run(l.stream), "run");
  EPMOE_CUDA_LAUNCH_CHECK();
}

// The entry of one tile configuration: the workspace it needs (query) or the launch. Every configuration is
// cooperative with 128 x 256 x 64 tiles (cutlass_gemm.cuh says why); ClusterM CTAs along M share the weights' tile.
// Each is instantiated in its own translation unit (cutlass_tile_*.cu), so that they compile in parallel.
template <int ClusterM>
std::size_t run_tile_128x256(const Launch& l, bool query) {
  using Gemm = typename GroupedGemm<cute::Shape<cute::_128, cute::_256, cute::_64>,
                                    cute::Shape<cute::Int<ClusterM>, cute::_1, cute::_1>,
                                    cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                                    cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>::Gemm;
  if (query) return workspace_bytes<Gemm>(l);
  launch<Gemm>(l);
  return 0;
}
extern template std::size_t run_tile_128x256<1>(const Launch&, bool);
extern template std::size_t run_tile_128x256<2>(const Launch&, bool);

}  // namespace epmoe::cuda::cutlass_detail
