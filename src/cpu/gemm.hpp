// The CPU backend's GEMM: C[M, N] = alpha * A[M, K] . B[N, K]^T + beta * C (B in nn.Linear orientation), via CBLAS.
#pragma once

namespace epmoe::cpu {

void gemm_nt(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
             int ldc);

// out[M, N] = x[M, K] . w[N, K]^T (+ bias[N] on every row when bias is non-null).
void linear(int m, int n, int k, const float* x, int ldx, const float* w, const float* bias, float* out, int ldo);

}  // namespace epmoe::cpu
