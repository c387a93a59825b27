/* AVX2 + FMA microkernel: a 6 x 16 tile in 12 ymm accumulators; per k, two loads of B and six
 * broadcasts of A feed twelve FMAs. Compiled for AVX2 by a target attribute and only called
 * after cpu.c has checked the CPU. */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

enum { MR = 6, NR = 16 };

__attribute__((target("avx2,fma"))) static void micro_avx2(size_t kc, const float *a, const float *b, float *c,
                                                            size_t ldc, bool accumulate) {
  /* written out row by row so that every accumulator lives in a register */
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), ai;
    ai = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(ai, b0, c10);
    c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(ai, b0, c20);
    c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(ai, b0, c30);
    c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(ai, b0, c40);
    c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(ai, b0, c50);
    c51 = _mm256_fmadd_ps(ai, b1, c51);
  }
  if (accumulate) {
    c00 = _mm256_add_ps(_mm256_loadu_ps(c + 0 * ldc), c00);
    c01 = _mm256_add_ps(_mm256_loadu_ps(c + 0 * ldc + 8), c01);
    c10 = _mm256_add_ps(_mm256_loadu_ps(c + 1 * ldc), c10);
    c11 = _mm256_add_ps(_mm256_loadu_ps(c + 1 * ldc + 8), c11);
    c20 = _mm256_add_ps(_mm256_loadu_ps(c + 2 * ldc), c20);
    c21 = _mm256_add_ps(_mm256_loadu_ps(c + 2 * ldc + 8), c21);
    c30 = _mm256_add_ps(_mm256_loadu_ps(c + 3 * ldc), c30);
    c31 = _mm256_add_ps(_mm256_loadu_ps(c + 3 * ldc + 8), c31);
    c40 = _mm256_add_ps(_mm256_loadu_ps(c + 4 * ldc), c40);
    c41 = _mm256_add_ps(_mm256_loadu_ps(c + 4 * ldc + 8), c41);
    c50 = _mm256_add_ps(_mm256_loadu_ps(c + 5 * ldc), c50);
    c51 = _mm256_add_ps(_mm256_loadu_ps(c + 5 * ldc + 8), c51);
  }
  _mm256_storeu_ps(c + 0 * ldc, c00);
  _mm256_storeu_ps(c + 0 * ldc + 8, c01);
  _mm256_storeu_ps(c + 1 * ldc, c10);
  _mm256_storeu_ps(c + 1 * ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20);
  _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30);
  _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40);
  _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50);
  _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

/* e^x on 8 lanes, trm_exp's method; 2^n built in the exponent bits (n is within [-126, 128]
 * after the clamp, and 2^128 only multiplies values below 1). */
__attribute__((target("avx2,fma"))) static __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(TRM_EXP_LO)), _mm256_set1_ps(TRM_EXP_HI));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(TRM_LOG2E)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(TRM_LN2_HI), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(TRM_LN2_LO), r);
  __m256 p = _mm256_set1_ps(TRM_EXP_P0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TRM_EXP_P1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TRM_EXP_P2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TRM_EXP_P3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TRM_EXP_P4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TRM_EXP_P5));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  /* 2^n as two factors 2^(n/2) so that n = 128 does not overflow the exponent field */
  __m256i ni = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(ni, 1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

__attribute__((target("avx2,fma"))) static void swiglu_avx2(const float *gate, const float *up, float *out,
                                                             size_t n) {
  size_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 g = _mm256_loadu_ps(gate + i);
    __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; i++) out[i] = gate[i] / (1.0f + trm_exp(-gate[i])) * up[i];
}

__attribute__((target("avx2,fma"))) static float hsum8(__m256 v) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

__attribute__((target("avx2,fma"))) static void softmax_avx2(float *x, size_t n, float scale) {
  size_t full = n / 8 * 8;
  __m256 vbest = _mm256_set1_ps(-INFINITY);
  for (size_t i = 0; i < full; i += 8) vbest = _mm256_max_ps(vbest, _mm256_loadu_ps(x + i));
  float lanes[8], best = -INFINITY, total;
  _mm256_storeu_ps(lanes, vbest);
  for (int j = 0; j < 8; j++) best = lanes[j] > best ? lanes[j] : best;
  for (size_t i = full; i < n; i++) best = x[i] > best ? x[i] : best;
  __m256 shift = _mm256_set1_ps(best), s = _mm256_set1_ps(scale), vtotal = _mm256_setzero_ps();
  for (size_t i = 0; i < full; i += 8) {
    __m256 e = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift), s));
    _mm256_storeu_ps(x + i, e);
    vtotal = _mm256_add_ps(vtotal, e);
  }
  total = hsum8(vtotal);
  for (size_t i = full; i < n; i++) {
    x[i] = trm_exp((x[i] - best) * scale);
    total += x[i];
  }
  __m256 inv = _mm256_set1_ps(1.0f / total);
  for (size_t i = 0; i < full; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (size_t i = full; i < n; i++) x[i] *= 1.0f / total;
}

const trm_kernel trm_kernel_avx2 = {TRM_ISA_AVX2, "avx2", MR, NR, micro_avx2, swiglu_avx2, softmax_avx2, NULL};
#endif
