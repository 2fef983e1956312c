// The CUTLASS grouped GEMM of the experts (see cutlass_gemm.cuh). This file is compiled for sm_90a only, and only
// where the CUTLASS headers were found (EPMOE_HAVE_CUTLASS; gemm.cu refuses EPMOE_CUDA_EXPERT_GEMM=cutlass elsewhere).
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <algorithm>
#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <vector>

#include "check.cuh"
#include "cutlass_gemm.cuh"
#include "env.cuh"

namespace epmoe::cuda {

namespace {

using namespace cute;

using ProblemShape = cutlass::gemm::GroupProblemShape<Shape<int, int, int>>;  // (M, N, K) per group
using Shape3 = ProblemShape::UnderlyingProblemShape;
using Element = cutlass::bfloat16_t;
// out = x . w^T: A = x is row-major M x K, B = w^T is the column-major K x N view of w[N, K] (both K-major, the
// layout Hopper's tensor cores read without a transpose), D = out is row-major M x N.
using LayoutA = cutlass::layout::RowMajor;
using LayoutB = cutlass::layout::ColumnMajor;
using LayoutD = cutlass::layout::RowMajor;
constexpr int kAlign = 8;  // elements per 16 bytes

template <class Tile, class Cluster>
struct GroupedGemm {
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,  //
      void, LayoutD*, kAlign,                                         // no C: out = x . w^T, nothing added
      Element, LayoutD*, kAlign, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
      cutlass::epilogue::fusion::LinearCombination<Element, float, void>>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA*, kAlign, Element, LayoutB*, kAlign, float,
      Tile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
};

using GemmM128N256 = GroupedGemm<Shape<_128, _256, _64>, Shape<_2, _1, _1>>::Gemm;
using GemmM256N128 = GroupedGemm<Shape<_256, _128, _64>, Shape<_1, _2, _1>>::Gemm;

using StrideA = GemmM128N256::GemmKernel::InternalStrideA;
using StrideB = GemmM128N256::GemmKernel::InternalStrideB;
using StrideD = GemmM128N256::GemmKernel::InternalStrideD;
static_assert(std::is_same_v<StrideA, GemmM256N128::GemmKernel::InternalStrideA> &&
                  std::is_same_v<StrideB, GemmM256N128::GemmKernel::InternalStrideB> &&
                  std::is_same_v<StrideD, GemmM256N128::GemmKernel::InternalStrideD>,
              "both tile configurations read one argument block");

constexpr std::size_t round16(std::size_t n) {
  return (n + 15) / 16 * 16;
}

// The argument block: [shapes | A pointers | B pointers | D pointers | A strides | B strides | D strides], each
// array of max_groups entries starting on 16 bytes.
struct BlockLayout {
  std::size_t shapes, a, b, d, sa, sb, sd, bytes;
  explicit BlockLayout(int g) {
    const std::size_t n = static_cast<std::size_t>(std::max(g, 1));
    shapes = 0;
    a = round16(shapes + n * sizeof(Shape3));
    b = round16(a + n * sizeof(void*));
    d = round16(b + n * sizeof(void*));
    sa = round16(d + n * sizeof(void*));
    sb = round16(sa + n * sizeof(StrideA));
    sd = round16(sb + n * sizeof(StrideB));
    bytes = round16(sd + n * sizeof(StrideD));
  }
};

template <class T>
T* at(const void* block, std::size_t offset) {
  return reinterpret_cast<T*>(const_cast<unsigned char*>(static_cast<const unsigned char*>(block)) + offset);
}

void check_status(cutlass::Status status, const char* what) {
  if (status == cutlass::Status::kSuccess) return;
  EPMOE_THROW(ErrorKind::Runtime, "CUTLASS grouped GEMM: ", what, " failed: ", cutlassGetStatusString(status));
}

}  // namespace

struct CutlassGroupedGemm::Impl {
  CutlassTile tile;
  cutlass::KernelHardwareInfo hw;
  DeviceBuffer<unsigned char> workspace;
  GemmM128N256 m128n256;
  GemmM256N128 m256n128;

  template <class Gemm>
  typename Gemm::Arguments arguments(const void* device_block, const void* host_block, const BlockLayout& l,
                                     int groups) const {
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGrouped,
        {groups, at<Shape3>(device_block, l.shapes), at<Shape3>(host_block, l.shapes)},
        {at<const Element*>(device_block, l.a), at<StrideA>(device_block, l.sa), at<const Element*>(device_block, l.b),
         at<StrideB>(device_block, l.sb)},
        {{}, nullptr, nullptr, at<Element*>(device_block, l.d), at<StrideD>(device_block, l.sd)},
        hw};
    auto& fusion = args.epilogue.thread;
    fusion.alpha = 1.0f;
    fusion.beta = 0.0f;
    fusion.alpha_ptr = nullptr;
    fusion.beta_ptr = nullptr;
    fusion.alpha_ptr_array = nullptr;
    fusion.beta_ptr_array = nullptr;
    fusion.dAlpha = {_0{}, _0{}, 0};
    fusion.dBeta = {_0{}, _0{}, 0};
    return args;
  }

  template <class Gemm>
  void launch(Gemm& gemm, const void* device_block, const void* host_block, const BlockLayout& l, int groups,
              cudaStream_t stream) {
    auto args = arguments<Gemm>(device_block, host_block, l, groups);
    EPMOE_ASSERT(Gemm::get_workspace_size(args) <= workspace.size(), "CUTLASS workspace of ", workspace.size(),
                 " bytes, the GEMM needs ", Gemm::get_workspace_size(args));
    check_status(gemm.can_implement(args), "can_implement");
    check_status(gemm.initialize(args, workspace.data(), stream), "initialize");
    check_status(gemm.run(stream), "run");
    EPMOE_CUDA_LAUNCH_CHECK();
  }
};

CutlassGroupedGemm::CutlassGroupedGemm(int max_groups)
    : impl_(new Impl), max_groups_(max_groups), block_bytes_(BlockLayout(max_groups).bytes) {
  impl_->tile = env_choice("EPMOE_CUDA_CUTLASS_TILE", {"128x256", "256x128"}) == 0 ? CutlassTile::M128N256
                                                                                   : CutlassTile::M256N128;
  int device = 0;
  EPMOE_CUDA_CHECK(cudaGetDevice(&device));
  impl_->hw = cutlass::KernelHardwareInfo::make_kernel_hardware_info<GemmM128N256::GemmKernel>(device);
  // The workspace holds per-SM TMA descriptors; its size does not depend on the shapes, only on the SM count and
  // the group count, so the largest of both configurations at max_groups is allocated once.
  std::vector<Shape3> shapes(std::max(max_groups, 1), Shape3{128, 256, 64});
  const BlockLayout l(max_groups);
  std::vector<unsigned char> host(l.bytes);
  std::copy(shapes.begin(), shapes.end(), at<Shape3>(host.data(), l.shapes));
  const int g = std::max(max_groups, 1);
  const std::size_t bytes =
      std::max(GemmM128N256::get_workspace_size(impl_->arguments<GemmM128N256>(host.data(), host.data(), l, g)),
               GemmM256N128::get_workspace_size(impl_->arguments<GemmM256N128>(host.data(), host.data(), l, g)));
  impl_->workspace = DeviceBuffer<unsigned char>(std::max<std::size_t>(bytes, 16), "cutlass_workspace");
}

CutlassGroupedGemm::~CutlassGroupedGemm() {
  delete impl_;
}

bool CutlassGroupedGemm::supports(int n, int k, int ldx, int ldw, int ldo) {
  return n % kAlign == 0 && k % kAlign == 0 && ldx % kAlign == 0 && ldw % kAlign == 0 && ldo % kAlign == 0;
}

void CutlassGroupedGemm::fill(void* host_block, int groups, const int* m, const bf16* const* x, const bf16* const* w,
                              bf16* const* out, int n, int k, int ldx, int ldw, int ldo) const {
  EPMOE_ASSERT(groups >= 0 && groups <= max_groups_, "CUTLASS grouped GEMM of ", groups, " groups, sized for ",
               max_groups_);
  const BlockLayout l(max_groups_);
  for (int g = 0; g < groups; ++g) {
    at<Shape3>(host_block, l.shapes)[g] = Shape3{m[g], n, k};
    at<const bf16*>(host_block, l.a)[g] = x[g];
    at<const bf16*>(host_block, l.b)[g] = w[g];
    at<bf16*>(host_block, l.d)[g] = out[g];
    at<StrideA>(host_block, l.sa)[g] = StrideA{static_cast<int64_t>(ldx), {}, {}};
    at<StrideB>(host_block, l.sb)[g] = StrideB{static_cast<int64_t>(ldw), {}, {}};
    at<StrideD>(host_block, l.sd)[g] = StrideD{static_cast<int64_t>(ldo), {}, {}};
  }
}

void CutlassGroupedGemm::run(const void* device_block, const void* host_block, int groups, cudaStream_t stream) {
  if (groups == 0) return;
  const BlockLayout l(max_groups_);
  if (impl_->tile == CutlassTile::M128N256)
    impl_->launch(impl_->m128n256, device_block, host_block, l, groups, stream);
  else
    impl_->launch(impl_->m256n128, device_block, host_block, l, groups, stream);
}

}  // namespace epmoe::cuda
