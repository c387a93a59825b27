/* AVX-512 microkernel: a 14 x 32 tile in 28 zmm accumulators (of 32); per k, two loads of B and
 * fourteen broadcasts of A feed 28 FMAs, enough independent chains to keep both FMA pipes busy.
 * Compiled for AVX-512 by a target attribute and only called after cpu.c has checked the CPU. */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

enum { MR = 14, NR = 32 };

__attribute__((target("avx512f,fma"))) static void micro_avx512(size_t kc, const float *a, const float *b, float *c,
                                                                 size_t ldc, bool accumulate) {
  /* written out row by row so that every accumulator lives in a register */
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
  __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
  __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
  __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
  __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
  __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps();
  __m512 c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
  __m512 c100 = _mm512_setzero_ps(), c101 = _mm512_setzero_ps();
  __m512 c110 = _mm512_setzero_ps(), c111 = _mm512_setzero_ps();
  __m512 c120 = _mm512_setzero_ps(), c121 = _mm512_setzero_ps();
  __m512 c130 = _mm512_setzero_ps(), c131 = _mm512_setzero_ps();
  for (size_t k = 0; k < kc; k++, a += MR, b += NR) {
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), ai;
    ai = _mm512_set1_ps(a[0]);
    c00 = _mm512_fmadd_ps(ai, b0, c00);
    c01 = _mm512_fmadd_ps(ai, b1, c01);
    ai = _mm512_set1_ps(a[1]);
    c10 = _mm512_fmadd_ps(ai, b0, c10);
    c11 = _mm512_fmadd_ps(ai, b1, c11);
    ai = _mm512_set1_ps(a[2]);
    c20 = _mm512_fmadd_ps(ai, b0, c20);
    c21 = _mm512_fmadd_ps(ai, b1, c21);
    ai = _mm512_set1_ps(a[3]);
    c30 = _mm512_fmadd_ps(ai, b0, c30);
    c31 = _mm512_fmadd_ps(ai, b1, c31);
    ai = _mm512_set1_ps(a[4]);
    c40 = _mm512_fmadd_ps(ai, b0, c40);
    c41 = _mm512_fmadd_ps(ai, b1, c41);
    ai = _mm512_set1_ps(a[5]);
    c50 = _mm512_fmadd_ps(ai, b0, c50);
    c51 = _mm512_fmadd_ps(ai, b1, c51);
    ai = _mm512_set1_ps(a[6]);
    c60 = _mm512_fmadd_ps(ai, b0, c60);
    c61 = _mm512_fmadd_ps(ai, b1, c61);
    ai = _mm512_set1_ps(a[7]);
    c70 = _mm512_fmadd_ps(ai, b0, c70);
    c71 = _mm512_fmadd_ps(ai, b1, c71);
    ai = _mm512_set1_ps(a[8]);
    c80 = _mm512_fmadd_ps(ai, b0, c80);
    c81 = _mm512_fmadd_ps(ai, b1, c81);
    ai = _mm512_set1_ps(a[9]);
    c90 = _mm512_fmadd_ps(ai, b0, c90);
    c91 = _mm512_fmadd_ps(ai, b1, c91);
    ai = _mm512_set1_ps(a[10]);
    c100 = _mm512_fmadd_ps(ai, b0, c100);
    c101 = _mm512_fmadd_ps(ai, b1, c101);
    ai = _mm512_set1_ps(a[11]);
    c110 = _mm512_fmadd_ps(ai, b0, c110);
    c111 = _mm512_fmadd_ps(ai, b1, c111);
    ai = _mm512_set1_ps(a[12]);
    c120 = _mm512_fmadd_ps(ai, b0, c120);
    c121 = _mm512_fmadd_ps(ai, b1, c121);
    ai = _mm512_set1_ps(a[13]);
    c130 = _mm512_fmadd_ps(ai, b0, c130);
    c131 = _mm512_fmadd_ps(ai, b1, c131);
  }
  if (accumulate) {
    c00 = _mm512_add_ps(_mm512_loadu_ps(c + 0 * ldc), c00);
    c01 = _mm512_add_ps(_mm512_loadu_ps(c + 0 * ldc + 16), c01);
    c10 = _mm512_add_ps(_mm512_loadu_ps(c + 1 * ldc), c10);
    c11 = _mm512_add_ps(_mm512_loadu_ps(c + 1 * ldc + 16), c11);
    c20 = _mm512_add_ps(_mm512_loadu_ps(c + 2 * ldc), c20);
    c21 = _mm512_add_ps(_mm512_loadu_ps(c + 2 * ldc + 16), c21);
    c30 = _mm512_add_ps(_mm512_loadu_ps(c + 3 * ldc), c30);
    c31 = _mm512_add_ps(_mm512_loadu_ps(c + 3 * ldc + 16), c31);
    c40 = _mm512_add_ps(_mm512_loadu_ps(c + 4 * ldc), c40);
    c41 = _mm512_add_ps(_mm512_loadu_ps(c + 4 * ldc + 16), c41);
    c50 = _mm512_add_ps(_mm512_loadu_ps(c + 5 * ldc), c50);
    c51 = _mm512_add_ps(_mm512_loadu_ps(c + 5 * ldc + 16), c51);
    c60 = _mm512_add_ps(_mm512_loadu_ps(c + 6 * ldc), c60);
    c61 = _mm512_add_ps(_mm512_loadu_ps(c + 6 * ldc + 16), c61);
    c70 = _mm512_add_ps(_mm512_loadu_ps(c + 7 * ldc), c70);
    c71 = _mm512_add_ps(_mm512_loadu_ps(c + 7 * ldc + 16), c71);
    c80 = _mm512_add_ps(_mm512_loadu_ps(c + 8 * ldc), c80);
    c81 = _mm512_add_ps(_mm512_loadu_ps(c + 8 * ldc + 16), c81);
    c90 = _mm512_add_ps(_mm512_loadu_ps(c + 9 * ldc), c90);
    c91 = _mm512_add_ps(_mm512_loadu_ps(c + 9 * ldc + 16), c91);
    c100 = _mm512_add_ps(_mm512_loadu_ps(c + 10 * ldc), c100);
    c101 = _mm512_add_ps(_mm512_loadu_ps(c + 10 * ldc + 16), c101);
    c110 = _mm512_add_ps(_mm512_loadu_ps(c + 11 * ldc), c110);
    c111 = _mm512_add_ps(_mm512_loadu_ps(c + 11 * ldc + 16), c111);
    c120 = _mm512_add_ps(_mm512_loadu_ps(c + 12 * ldc), c120);
    c121 = _mm512_add_ps(_mm512_loadu_ps(c + 12 * ldc + 16), c121);
    c130 = _mm512_add_ps(_mm512_loadu_ps(c + 13 * ldc), c130);
    c131 = _mm512_add_ps(_mm512_loadu_ps(c + 13 * ldc + 16), c131);
  }
  _mm512_storeu_ps(c + 0 * ldc, c00);
  _mm512_storeu_ps(c + 0 * ldc + 16, c01);
  _mm512_storeu_ps(c + 1 * ldc, c10);
  _mm512_storeu_ps(c + 1 * ldc + 16, c11);
  _mm512_storeu_ps(c + 2 * ldc, c20);
  _mm512_storeu_ps(c + 2 * ldc + 16, c21);
  _mm512_storeu_ps(c + 3 * ldc, c30);
  _mm512_storeu_ps(c + 3 * ldc + 16, c31);
  _mm512_storeu_ps(c + 4 * ldc, c40);
  _mm512_storeu_ps(c + 4 * ldc + 16, c41);
  _mm512_storeu_ps(c + 5 * ldc, c50);
  _mm512_storeu_ps(c + 5 * ldc + 16, c51);
  _mm512_storeu_ps(c + 6 * ldc, c60);
  _mm512_storeu_ps(c + 6 * ldc + 16, c61);
  _mm512_storeu_ps(c + 7 * ldc, c70);
  _mm512_storeu_ps(c + 7 * ldc + 16, c71);
  _mm512_storeu_ps(c + 8 * ldc, c80);
  _mm512_storeu_ps(c + 8 * ldc + 16, c81);
  _mm512_storeu_ps(c + 9 * ldc, c90);
  _mm512_storeu_ps(c + 9 * ldc + 16, c91);
  _mm512_storeu_ps(c + 10 * ldc, c100);
  _mm512_storeu_ps(c + 10 * ldc + 16, c101);
  _mm512_storeu_ps(c + 11 * ldc, c110);
  _mm512_storeu_ps(c + 11 * ldc + 16, c111);
  _mm512_storeu_ps(c + 12 * ldc, c120);
  _mm512_storeu_ps(c + 12 * ldc + 16, c121);
  _mm512_storeu_ps(c + 13 * ldc, c130);
  _mm512_storeu_ps(c + 13 * ldc + 16, c131);
}

/* e^x on 16 lanes, trm_exp's method; scalef applies 2^n. */
__attribute__((target("avx512f,fma"))) static __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(TRM_EXP_LO)), _mm512_set1_ps(TRM_EXP_HI));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(TRM_LOG2E)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(TRM_LN2_HI), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(TRM_LN2_LO), r);
  __m512 p = _mm512_set1_ps(TRM_EXP_P0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TRM_EXP_P1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TRM_EXP_P2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TRM_EXP_P3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TRM_EXP_P4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TRM_EXP_P5));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f,fma"))) static void swiglu_avx512(const float *gate, const float *up, float *out,
                                                                  size_t n) {
  size_t i = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    __m512 g = _mm512_loadu_ps(gate + i);
    __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
  }
  if (i < n) { /* the tail through a mask */
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

__attribute__((target("avx512f,fma"))) static void softmax_avx512(float *x, size_t n, float scale) {
  size_t full = n / 16 * 16;
  __mmask16 tail = (__mmask16)((1u << (n - full)) - 1);
  __m512 best = _mm512_set1_ps(-INFINITY);
  for (size_t i = 0; i < full; i += 16) best = _mm512_max_ps(best, _mm512_loadu_ps(x + i));
  best = _mm512_mask_max_ps(best, tail, best, _mm512_maskz_loadu_ps(tail, x + full));
  __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(best)), s = _mm512_set1_ps(scale);
  __m512 total = _mm512_setzero_ps();
  for (size_t i = 0; i < full; i += 16) {
    __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), shift), s));
    _mm512_storeu_ps(x + i, e);
    total = _mm512_add_ps(total, e);
  }
  if (tail) {
    __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), shift), s));
    _mm512_mask_storeu_ps(x + full, tail, e);
    total = _mm512_mask_add_ps(total, tail, total, e);
  }
  __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
  for (size_t i = 0; i < full; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  if (tail) _mm512_mask_storeu_ps(x + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + full), inv));
}

/* A 16 x 16 transpose in registers: pairs of rows interleaved by 32 and then 64 bits leave, in
 * each 128-bit lane, one column of four rows; two rounds of lane shuffles gather a column's four
 * groups. Missing rows are zeros, missing columns are neither loaded nor stored. */
__attribute__((target("avx512f"))) static void transpose_avx512(const float *src, size_t ld_src, size_t rows,
                                                                 size_t cols, float *dst, size_t ld_dst,
                                                                 size_t width) {
  __mmask16 in_mask = (__mmask16)((1u << cols) - 1), out_mask = (__mmask16)((1u << width) - 1);
  __m512 r[16], t[16], v[16];
  for (size_t i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(in_mask, src + i * ld_src) : _mm512_setzero_ps();
  for (size_t i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);     /* lane L: a[4L] b[4L] a[4L+1] b[4L+1] */
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]); /* lane L: a[4L+2] b[4L+2] a[4L+3] b[4L+3] */
  }
  for (size_t g = 0; g < 4; g++) { /* v[4g + m], lane L: column 4L+m of rows 4g .. 4g+3 */
    __m512d lo0 = _mm512_castps_pd(t[4 * g]), hi0 = _mm512_castps_pd(t[4 * g + 1]);
    __m512d lo1 = _mm512_castps_pd(t[4 * g + 2]), hi1 = _mm512_castps_pd(t[4 * g + 3]);
    v[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
    v[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
    v[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
    v[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
  }
  for (size_t m = 0; m < 4; m++) {
    __m512 low01 = _mm512_shuffle_f32x4(v[m], v[4 + m], 0x44), low23 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], 0x44);
    __m512 high01 = _mm512_shuffle_f32x4(v[m], v[4 + m], 0xEE), high23 = _mm512_shuffle_f32x4(v[8 + m], v[12 + m], 0xEE);
    __m512 out[4] = {_mm512_shuffle_f32x4(low01, low23, 0x88), _mm512_shuffle_f32x4(low01, low23, 0xDD),
                     _mm512_shuffle_f32x4(high01, high23, 0x88), _mm512_shuffle_f32x4(high01, high23, 0xDD)};
    for (size_t l = 0; l < 4; l++)
      if (4 * l + m < cols) _mm512_mask_storeu_ps(dst + (4 * l + m) * ld_dst, out_mask, out[l]);
  }
}

const trm_kernel trm_kernel_avx512 = {TRM_ISA_AVX512,   "avx512",       MR, NR, micro_avx512, swiglu_avx512,
                                      softmax_avx512, transpose_avx512};
#endif
