/* The portable microkernel: plain C, the reference the SIMD kernels are tested against. */
#include "kernels.h"

#include <math.h>

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

float trm_exp(float x) {
  x = x < TRM_EXP_LO ? TRM_EXP_LO : x > TRM_EXP_HI ? TRM_EXP_HI : x;
  float n = nearbyintf(x * TRM_LOG2E);
  float r = x - n * TRM_LN2_HI - n * TRM_LN2_LO;
  float p = TRM_EXP_P0;
  p = p * r + TRM_EXP_P1;
  p = p * r + TRM_EXP_P2;
  p = p * r + TRM_EXP_P3;
  p = p * r + TRM_EXP_P4;
  p = p * r + TRM_EXP_P5;
  p = p * r * r + r + 1.0f;
  return ldexpf(p, (int)n);
}

void trm_swiglu_scalar(const float *gate, const float *up, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + trm_exp(-gate[i])) * up[i];
}

void trm_softmax_scalar(float *x, size_t n, float scale) {
  float best = -INFINITY, total = 0.0f;
  for (size_t i = 0; i < n; i++) best = x[i] > best ? x[i] : best;
  for (size_t i = 0; i < n; i++) {
    x[i] = trm_exp((x[i] - best) * scale);
    total += x[i];
  }
  float inv = 1.0f / total;
  for (size_t i = 0; i < n; i++) x[i] *= inv;
}

const trm_kernel trm_kernel_scalar = {TRM_ISA_SCALAR, "scalar", MR, NR, micro_scalar,
                                      trm_swiglu_scalar, trm_softmax_scalar, NULL};
