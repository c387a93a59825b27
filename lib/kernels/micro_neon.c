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

/* e^x on 4 lanes, trm_exp's method. 2^n is applied as 2^(n/2) * 2^(n - n/2) so that n = 128
 * (x near TRM_EXP_HI) and n = -126 stay within the exponent range of a normal float. */
static float32x4_t exp4(float32x4_t x) {
  x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(TRM_EXP_LO)), vdupq_n_f32(TRM_EXP_HI));
  float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(TRM_LOG2E)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(TRM_LN2_HI));
  r = vfmsq_f32(r, n, vdupq_n_f32(TRM_LN2_LO));
  float32x4_t p = vdupq_n_f32(TRM_EXP_P0);
  p = vfmaq_f32(vdupq_n_f32(TRM_EXP_P1), p, r);
  p = vfmaq_f32(vdupq_n_f32(TRM_EXP_P2), p, r);
  p = vfmaq_f32(vdupq_n_f32(TRM_EXP_P3), p, r);
  p = vfmaq_f32(vdupq_n_f32(TRM_EXP_P4), p, r);
  p = vfmaq_f32(vdupq_n_f32(TRM_EXP_P5), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), vmulq_f32(p, r), r);
  int32x4_t whole = vcvtq_s32_f32(n);
  int32x4_t half = vshrq_n_s32(whole, 1), rest = vsubq_s32(whole, half);
  int32x4_t bias = vdupq_n_s32(127);
  float32x4_t scale_half = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(half, bias), 23));
  float32x4_t scale_rest = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(rest, bias), 23));
  return vmulq_f32(vmulq_f32(p, scale_half), scale_rest);
}

static float32x4_t silu4(float32x4_t g) {
  return vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(g))));
}

static void swiglu_neon(const float *gate, const float *up, float *out, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vmulq_f32(silu4(vld1q_f32(gate + i)), vld1q_f32(up + i)));
  if (i < n) { /* the tail through a zero-padded copy */
    float g[4] = {0}, u[4] = {0}, o[4];
    for (size_t j = 0; i + j < n; j++) {
      g[j] = gate[i + j];
      u[j] = up[i + j];
    }
    vst1q_f32(o, vmulq_f32(silu4(vld1q_f32(g)), vld1q_f32(u)));
    for (size_t j = 0; i + j < n; j++) out[i + j] = o[j];
  }
}

static void softmax_neon(float *x, size_t n, float scale) {
  size_t full = n / 4 * 4;
  float32x4_t best4 = vdupq_n_f32(-INFINITY);
  for (size_t i = 0; i < full; i += 4) best4 = vmaxq_f32(best4, vld1q_f32(x + i));
  float best = vmaxvq_f32(best4);
  for (size_t i = full; i < n; i++) best = x[i] > best ? x[i] : best;

  float32x4_t shift = vdupq_n_f32(best), s = vdupq_n_f32(scale), total4 = vdupq_n_f32(0.0f);
  for (size_t i = 0; i < full; i += 4) {
    float32x4_t e = exp4(vmulq_f32(vsubq_f32(vld1q_f32(x + i), shift), s));
    vst1q_f32(x + i, e);
    total4 = vaddq_f32(total4, e);
  }
  float total = vaddvq_f32(total4);
  if (full < n) {
    float t[4] = {0};
    for (size_t j = 0; full + j < n; j++) t[j] = x[full + j];
    float32x4_t e = exp4(vmulq_f32(vsubq_f32(vld1q_f32(t), shift), s));
    vst1q_f32(t, e);
    for (size_t j = 0; full + j < n; j++) {
      x[full + j] = t[j];
      total += t[j];
    }
  }
  float32x4_t inv = vdupq_n_f32(1.0f / total);
  for (size_t i = 0; i < full; i += 4) vst1q_f32(x + i, vmulq_f32(vld1q_f32(x + i), inv));
  for (size_t i = full; i < n; i++) x[i] *= 1.0f / total;
}

const trm_kernel trm_kernel_neon = {TRM_ISA_NEON, "neon", MR, NR, micro_neon, swiglu_neon, softmax_neon, NULL};
#endif
