// The CUTLASS grouped GEMM of the experts (see cutlass_gemm.cuh): the host side. The kernels are in
// cutlass_tile_*.cu, one tile configuration each. Compiled only where the CUTLASS headers were found
// (EPMOE_HAVE_CUTLASS; gemm.cu refuses EPMOE_CUDA_EXPERT_GEMM=cutlass elsewhere).
#include <vector>

#include "cutlass_grouped.cuh"
#include "env.cuh"

namespace epmoe::cuda {

using namespace cutlass_detail;

namespace {

using Runner = std::size_t (*)(const Launch&, bool);

Runner runner_of(CutlassTile tile) {
  return tile == CutlassTile::M128N256C2 ? run_tile_128x256<2> : run_tile_128x256<1>;
}

CutlassSchedule schedule_from_env() {
  CutlassSchedule s;
  s.raster_along_n = env_choice("EPMOE_CUDA_CUTLASS_RASTER", {"m", "n"}) == 1;
  static const int swizzles[] = {1, 2, 4, 8};
  s.swizzle = swizzles[env_choice("EPMOE_CUDA_CUTLASS_SWIZZLE", {"1", "2", "4", "8"})];
  return s;
}

}  // namespace

CutlassGroupedGemm::CutlassGroupedGemm(int max_groups)
    : tile_(static_cast<CutlassTile>(env_choice("EPMOE_CUDA_CUTLASS_TILE", {"128x256", "128x256c2"}))),
      schedule_(schedule_from_env()),
      max_groups_(std::max(max_groups, 1)),
      block_bytes_(BlockLayout(max_groups_).bytes) {
  int device = 0;
  EPMOE_CUDA_CHECK(cudaGetDevice(&device));
  EPMOE_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  // The workspace holds per-SM TMA descriptors: its size depends on the SM count and the group count, not on the
  // shapes, so it is sized once for max_groups.
  std::vector<unsigned char> host(block_bytes_, 0);
  Shape3* shapes = at<Shape3>(host.data(), BlockLayout(max_groups_).shapes);
  std::fill(shapes, shapes + max_groups_, Shape3{1, 8, 8});
  const Launch query{host.data(), host.data(), max_groups_, max_groups_, sm_count_, schedule_, nullptr, 0, nullptr};
  workspace_ =
      DeviceBuffer<unsigned char>(std::max<std::size_t>(runner_of(tile_)(query, true), 16), "cutlass_workspace");
}

bool CutlassGroupedGemm::supports(const CutlassShape& s) {
  return s.n % kAlign == 0 && s.k % kAlign == 0 && s.ldx % kAlign == 0 && s.ldw % kAlign == 0 && s.ldo % kAlign == 0;
}

void CutlassGroupedGemm::set_group(void* host_block, int g, int m, const bf16* x, const bf16* w, bf16* out,
                                   const CutlassShape& shape) const {
  EPMOE_ASSERT(g >= 0 && g < max_groups_ && m > 0, "CUTLASS grouped GEMM: group ", g, " (of at most ", max_groups_,
               ") with ", m, " rows");
  const BlockLayout l(max_groups_);
  at<Shape3>(host_block, l.shapes)[g] = Shape3{m, shape.n, shape.k};
  at<const bf16*>(host_block, l.a)[g] = x;
  at<const bf16*>(host_block, l.b)[g] = w;
  at<bf16*>(host_block, l.d)[g] = out;
  at<Stride>(host_block, l.sa)[g] = Stride{static_cast<int64_t>(shape.ldx), {}, {}};
  at<Stride>(host_block, l.sb)[g] = Stride{static_cast<int64_t>(shape.ldw), {}, {}};
  at<Stride>(host_block, l.sd)[g] = Stride{static_cast<int64_t>(shape.ldo), {}, {}};
}

void CutlassGroupedGemm::run(const void* device_block, const void* host_block, int groups, cudaStream_t stream) {
  if (groups == 0) return;
  const Launch l{device_block, host_block,        max_groups_,       groups, sm_count_,
                 schedule_,    workspace_.data(), workspace_.size(), stream};
  runner_of(tile_)(l, false);
}

}  // namespace epmoe::cuda
