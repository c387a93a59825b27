/* Portable float32 GEMM, C = A B, all row-major.
 *
 * Blocked so that a strip of C stays in L1 while rows of B stream past; the inner loop is a
 * contiguous multiply-add the compiler vectorises. Every C element sums its K products in order
 * k = 0 .. K-1 whatever the blocking, so results do not depend on how work is split. The SIMD
 * microkernels of the kernels issue replace this loop nest; this stays as the scalar reference. */
#include "../internal.h"

#include <string.h>

enum { ROWS = 4, COLS = 256 };

void trm_gemm(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B, size_t ldb, float *C,
              size_t ldc) {
  for (size_t i0 = 0; i0 < M; i0 += ROWS) {
    size_t rows = M - i0 < ROWS ? M - i0 : ROWS;
    for (size_t j0 = 0; j0 < N; j0 += COLS) {
      size_t cols = N - j0 < COLS ? N - j0 : COLS;
      for (size_t r = 0; r < rows; r++) memset(C + (i0 + r) * ldc + j0, 0, cols * sizeof *C);
      for (size_t k = 0; k < K; k++) {
        const float *b = B + k * ldb + j0;
        for (size_t r = 0; r < rows; r++) {
          float a = A[(i0 + r) * lda + k];
          float *c = C + (i0 + r) * ldc + j0;
          for (size_t j = 0; j < cols; j++) c[j] += a * b[j];
        }
      }
    }
  }
}
