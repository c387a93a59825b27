/* NEON microkernel (arm64): an 8 x 8 tile in 16 q-register accumulators; per k, two loads of B,
 * two of A, and sixteen lane-broadcast FMAs. */
#include "kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

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

/* SwiGLU and softmax in portable C: the products dominate on arm64 as everywhere. */
const trm_kernel trm_kernel_neon = {TRM_ISA_NEON, "neon", MR, NR, micro_neon, trm_swiglu_scalar, trm_softmax_scalar};
#endif
