#include "gemm.hpp"

#include <cblas.h>

namespace epmoe::cpu {

void gemm_nt(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
             int ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void linear(int m, int n, int k, const float* x, int ldx, const float* w, const float* bias, float* out, int ldo) {
  gemm_nt(m, n, k, 1.0f, x, ldx, w, k, 0.0f, out, ldo);
  if (!bias) return;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) out[static_cast<long>(i) * ldo + j] += bias[j];
}

}  // namespace epmoe::cpu
