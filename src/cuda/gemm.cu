#include "check.cuh"
#include "gemm.cuh"

namespace epmoe::cuda {

// Row-major out[M, N] = x[M, K] w[N, K]^T is column-major out^T[N, M] = w^T ... which cuBLAS computes as
// C(n x m) = op(A = w, transposed) (n x k) . op(B = x) (k x m).
void linear_bf16(cublasHandle_t handle, int m, int n, int k, const bf16* x, int ldx, const bf16* w, int ldw,
                 bf16* out, int ldo) {
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  EPMOE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, ldw, x,
                                  CUDA_R_16BF, ldx, &beta, out, CUDA_R_16BF, ldo, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
}

void linear_f32(cublasHandle_t handle, int m, int n, int k, const float* x, int ldx, const float* w, int ldw,
                float* out, int ldo) {
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  EPMOE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_32F, ldw, x,
                                  CUDA_R_32F, ldx, &beta, out, CUDA_R_32F, ldo, CUBLAS_COMPUTE_32F_PEDANTIC,
                                  CUBLAS_GEMM_DEFAULT));
}

void grouped_linear_bf16(cublasHandle_t handle, const std::vector<int>& offsets, int n, int k, const bf16* x, int ldx,
                         const bf16* w, int ldw, bf16* out, int ldo) {
  for (std::size_t j = 0; j + 1 < offsets.size(); ++j) {
    const int rows = offsets[j + 1] - offsets[j];
    if (rows == 0) continue;
    linear_bf16(handle, rows, n, k, x + static_cast<std::size_t>(offsets[j]) * ldx, ldx,
                w + j * static_cast<std::size_t>(n) * ldw, ldw, out + static_cast<std::size_t>(offsets[j]) * ldo,
                ldo);
  }
}

}  // namespace epmoe::cuda
