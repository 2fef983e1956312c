// The CUTLASS grouped GEMM of the experts (see cutlass_gemm.cuh): the host side. The kernels are in
// cutlass_tile_*.cu, one tile configuration each. Compiled only where the CUTLASS headers were found
// (EPMOE_HAVE_CUTLASS; gemm.cu refuses EPMOE_CUDA_EXPERT_GEMM=cutlass elsewhere).
#include <cstdlib>
#include <string>

#include "cutlass_grouped.cuh"
#include "env.cuh"

namespace epmoe::cuda {

using namespace cutlass_detail;

namespace {

using Runner = std::size_t (*)(const Launch&, bool);

Runner runner_of(CutlassTile tile) {
  return tile == CutlassTile::M128N256C2 ? run_m128n256_c2x1 : run_m128n256_c1x1;
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
  for (int g = 0; g < max_groups_; ++g) at<Shape3>(host.data(), BlockLayout(max_groups_).shapes)[g] = Shape3{1, 8, 8};
  const Launch query{host.data(), host.data(), max_groups_, max_groups_, sm_count_, schedule_, nullptr, 0, nullptr};
  workspace_ =
      DeviceBuffer<unsigned char>(std::max<std::size_t>(runner_of(tile_)(query, true), 16), "cutlass_workspace");
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
    EPMOE_ASSERT(m[g] > 0, "CUTLASS grouped GEMM: group ", g, " has ", m[g], " rows");
    at<Shape3>(host_block, l.shapes)[g] = Shape3{m[g], n, k};
    at<const bf16*>(host_block, l.a)[g] = x[g];
    at<const bf16*>(host_block, l.b)[g] = w[g];
    at<bf16*>(host_block, l.d)[g] = out[g];
    at<Stride>(host_block, l.sa)[g] = Stride{static_cast<int64_t>(ldx), {}, {}};
    at<Stride>(host_block, l.sb)[g] = Stride{static_cast<int64_t>(ldw), {}, {}};
    at<Stride>(host_block, l.sd)[g] = Stride{static_cast<int64_t>(ldo), {}, {}};
  }
}

void CutlassGroupedGemm::run(const void* device_block, const void* host_block, int groups, cudaStream_t stream) {
  if (groups == 0) return;
  const Launch l{device_block, host_block,        max_groups_,       groups, sm_count_,
                 schedule_,    workspace_.data(), workspace_.size(), stream};
  runner_of(tile_)(l, false);
}

}  // namespace epmoe::cuda
