/* NEON microkernel (arm64): an 8 x 8 tile in 16 q-register accumulators; per k, two loads of B,
 * two of A, and sixteen lane-broadcast FMAs. */
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>

enum { MR = 8, NR = 8 };

static void micro_neon(size_t kc, const float *a, const float *b, float *c, size_t ldc, bool accumulate) {
  float32x4_t acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vdupq_n_f32(0.0f);
  for (size_t k = 0; k < kc; k++) {
    float32x4_t b0 = vld1q_f32(b + k * NR), b1 = vld1q_f32(b + k * NR + 4);
    float32x4_t a0 = vld1q_f32(a + k * MR), a1 = vld1q_f32(a + k * MR + 4);
#define ROW(i, av, lane)                                                                                           \
  acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane);                                                            \
  acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane)
    ROW(0, a0, 0); ROW(1, a0, 1); ROW(2, a0, 2); ROW(3, a0, 3);
    ROW(4, a1, 0); ROW(5, a1, 1); ROW(6, a1, 2); ROW(7, a1, 3);
#undef ROW
  }
  for (int i = 0; i < MR; i++) {
    float *row = c + (size_t)i * ldc;
    if (accumulate) {
      acc[i][0] = vaddq_f32(vld1q_f32(row), acc[i][0]);
      acc[i][1] = vaddq_f32(vld1q_f32(row + 4), acc[i][1]);
    }
    vst1q_f32(row, acc[i][0]);
    vst1q_f32(row + 4, acc[i][1]);
  }
}

/* silu * up in scalar C (trm_exp); the products dominate on arm64 as everywhere. */
static void swiglu_neon(const float *gate, const float *up, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + trm_exp(-gate[i])) * up[i];
}

static void softmax_neon(float *x, size_t n, float scale) {
  float best = -INFINITY, total = 0.0f;
  for (size_t i = 0; i < n; i++) best = x[i] > best ? x[i] : best;
  for (size_t i = 0; i < n; i++) {
    x[i] = trm_exp((x[i] - best) * scale);
    total += x[i];
  }
  float inv = 1.0f / total;
  for (size_t i = 0; i < n; i++) x[i] *= inv;
}

const trm_kernel trm_kernel_neon = {TRM_ISA_NEON, "neon", MR, NR, micro_neon, swiglu_neon, softmax_neon};
#endif
