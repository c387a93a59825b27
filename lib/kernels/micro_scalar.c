/* The portable microkernel: plain C, the reference the SIMD kernels are tested against. */
#include "kernels.h"

enum { MR = 4, NR = 8 };

static void micro_scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc, bool accumulate) {
  float acc[MR][NR] = {{0}};
  for (size_t k = 0; k < kc; k++) {
    for (size_t i = 0; i < MR; i++) {
      float ai = a[k * MR + i];
      for (size_t j = 0; j < NR; j++) acc[i][j] += ai * b[k * NR + j];
    }
  }
  for (size_t i = 0; i < MR; i++)
    for (size_t j = 0; j < NR; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

const trm_kernel trm_kernel_scalar = {TRM_ISA_SCALAR, "scalar", MR, NR, micro_scalar};
