/* bench/gemm: libtrm's GEMM against OpenBLAS sgemm on the matrix shapes TRM runs, and against
 * the machine's FP32 FMA peak measured by a probe in the same run.
 *
 *   gemm [--threads N] [--reps R]
 *
 * For each shape: GFLOP/s of libtrm (weights packed once, as the library does at load) and of
 * cblas_sgemm on the same operands (row-major, B transposed as PyTorch's x W^T), the median of
 * R timed runs each, the ratio libtrm / OpenBLAS, and libtrm's fraction of the peak for that
 * many threads. OpenBLAS is only linked into this benchmark, never into the library. */
#define _GNU_SOURCE
#include <cblas.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* ---- FMA peak probe: 12 independent FMA chains per thread ---- */

/* A probe function NAME: twelve named accumulators of VEC (LANES floats), so that they live in
 * registers, each a chain of FMAs (DECLARE_, STEP_ and SUM_NAME spell them); returns GFLOP/s. */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define FMA_PROBE(NAME, ISA, VEC, SET1, LANES)                                          \
  __attribute__((target(ISA))) static double NAME(void) {                              \
    VEC x = SET1(1.0000001f), y = SET1(0.9999999f);                                     \
    CHAINS(DECLARE_##NAME)                                                               \
    const long iters = 50000000;                                                         \
    double t0 = now();                                                                   \
    for (long n = 0; n < iters; n++) {                                                   \
      CHAINS(STEP_##NAME)                                                                \
    }                                                                                    \
    double dt = now() - t0;                                                              \
    float sink = 0, lanes[LANES];                                                        \
    CHAINS(SUM_##NAME)                                                                   \
    return (double)iters * 12 * LANES * 2 / dt * 1e-9 + (sink == 12345.0f ? 1e-30 : 0); \
  }
#define DECLARE_probe_512(i) __m512 acc##i = _mm512_set1_ps((float)i);
#define STEP_probe_512(i) acc##i = _mm512_fmadd_ps(acc##i, x, y);
#define SUM_probe_512(i) _mm512_storeu_ps(lanes, acc##i), sink += lanes[0];
#define DECLARE_probe_256(i) __m256 acc##i = _mm256_set1_ps((float)i);
#define STEP_probe_256(i) acc##i = _mm256_fmadd_ps(acc##i, x, y);
#define SUM_probe_256(i) _mm256_storeu_ps(lanes, acc##i), sink += lanes[0];
FMA_PROBE(probe_512, "avx512f,fma", __m512, _mm512_set1_ps, 16)
/* The same with 256-bit vectors: equal to the AVX-512 figure on a core whose FMA pipes are 256
 * bits wide (AVX-512 split in two halves, as on AMD Zen 4), half of it where they are 512 bits. */
FMA_PROBE(probe_256, "avx2,fma", __m256, _mm256_set1_ps, 8)

static void *peak_thread(void *arg) {
  *(double *)arg = probe_512();
  return NULL;
}

/* The core's clock, from a chain of dependent integer adds (one cycle each on every x86-64 core
 * of the last decade), so that the peak can be read as FLOP per cycle. */
static double clock_ghz(void) {
  const long iters = 200000000;
  unsigned long v = 0;
  double t0 = now();
  for (long n = 0; n < iters; n++)
    __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(v));
  double dt = now() - t0;
  return (double)iters * 4 / dt * 1e-9 + (v == 1 ? 1e-30 : 0);
}

static double fma_peak(int threads) {
  if (!__builtin_cpu_supports("avx512f")) return 0;
  pthread_t t[64];
  double g[64];
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, peak_thread, &g[i]);
  double total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    total += g[i];
  }
  return total;
}

/* ---- the shapes ---- */

typedef struct shape {
  const char *what;
  size_t M, N, K;
  bool left; /* the token MLP's products, whose activation the library reads transposed */
} shape;

static const shape shapes[] = {
    {"sudoku b1  qkv      x W^T", 97, 1536, 512, false},
    {"sudoku b1  gate_up  x W^T", 97, 3072, 512, false},
    {"sudoku b1  down     x W^T", 97, 512, 1536, false},
    {"sudoku     mlp_t gate_up h^T W^T", 512, 1024, 97, true},
    {"sudoku     mlp_t down    W act^T", 97, 512, 512, true},
    {"sudoku b16 gate_up  x W^T", 1552, 3072, 512, false},
    {"sudoku b16 down     x W^T", 1552, 512, 1536, false},
    {"arc b1     qkv      x W^T", 916, 1536, 512, false},
    {"arc b1     o        x W^T", 916, 512, 512, false},
    {"arc b1     gate_up  x W^T", 916, 3072, 512, false},
    {"arc b1     down     x W^T", 916, 512, 1536, false},
};

static void fill(float *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)((seed >> 9) & 0xFFFF) / 65536.0f - 0.5f;
  }
}

int main(int argc, char **argv) {
  int threads = 1, reps = 7; /* reps at most 64 */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]) > 64 ? 64 : atoi(argv[i]);
    else {
      fprintf(stderr, "usage: %s [--threads N] [--reps R]\n", argv[0]);
      return 2;
    }
  }
  const trm_kernel *k = trm_kernel_select();
  trm_pool *pool = NULL;
  if (threads > 1 && trm_pool_create((size_t)threads, &pool) != TRM_OK) return 1;
  float *buffers = trm_alloc_zero((size_t)threads, trm_gemm_buffer_floats(k) * sizeof(float));
  double peak = fma_peak(threads);
  printf("libtrm kernel %s, %d thread(s); FMA peak probe %.1f GFLOP/s; OpenBLAS %s\n", k->name, threads, peak,
         openblas_get_config());
  if (__builtin_cpu_supports("avx512f")) { /* what the peak is made of, on one core */
    double ghz = clock_ghz(), zmm = probe_512(), ymm = probe_256();
    printf("one core: clock ~%.2f GHz (dependent adds); FMA %.1f GFLOP/s with 512-bit vectors (%.1f FLOP/cycle), "
           "%.1f with 256-bit (%.1f FLOP/cycle)\n",
           ghz, zmm, zmm / ghz, ymm, ymm / ghz);
  }
  printf("%-34s %6s %6s %6s %9s %9s %7s %6s\n", "shape", "M", "N", "K", "libtrm", "openblas", "ratio", "%peak");
  /* Two passes: every shape with libtrm first, then every shape with OpenBLAS, whose idle
   * threads spin for a while after each call and would steal the second core from our pool
   * if the two were interleaved. */
  size_t n_shapes = sizeof shapes / sizeof shapes[0];
  double ours[64], blas[64], worst[64];
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) openblas_set_num_threads(threads);
    for (size_t s = 0; s < n_shapes; s++) {
      const shape *sh = &shapes[s];
      size_t M = sh->M, N = sh->N, K = sh->K;
      /* the token MLP as the library runs it: gate_up = h^T W^T reads h [K, M] transposed;
       * down = W act^T packs W [M, K] as the left operand and reads act [N, K] transposed */
      bool down_t = sh->left && sh->M < sh->N, gate_t = sh->left && !down_t;
      float *act = malloc(sizeof(float) * (down_t ? K * N : M * K));
      float *w = malloc(sizeof(float) * (down_t ? M * K : N * K));
      float *c1 = malloc(sizeof(float) * M * N), *c2 = malloc(sizeof(float) * M * N);
      fill(act, down_t ? K * N : M * K, 1);
      fill(w, down_t ? M * K : N * K, 2);
      trm_packed packed;
      if ((down_t ? trm_pack_left(k, w, M, K, &packed) : trm_pack_right(k, w, N, K, &packed)) != TRM_OK) return 1;
      trm_operand wop = {.packed = &packed};
      trm_operand aop = {.data = act, .ld = gate_t ? M : K, .trans = sh->left};
      double flop = 2.0 * (double)M * (double)N * (double)K, t[64];
      /* each sample repeats the product for about 20 ms; the first sample of a shape is a warm-up */
      int calls = (int)(4e9 / flop) + 1;
      for (int r = -1; r < reps; r++) {
        double t0 = now();
        for (int call = 0; call < calls; call++) {
        if (pass == 0) {
          if (down_t) trm_gemm_threaded(k, pool, buffers, M, N, K, wop, aop, c1, N);
          else trm_gemm_threaded(k, pool, buffers, M, N, K, aop, wop, c1, N);
        } else if (down_t) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, w, (int)K, act, (int)K,
                      0.0f, c2, (int)N);
        } else if (gate_t) {
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, act, (int)M, w, (int)K,
                      0.0f, c2, (int)N);
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, act, (int)K, w, (int)K,
                      0.0f, c2, (int)N);
        }
        }
        if (r >= 0) t[r] = (now() - t0) / calls;
      }
      double gflops = flop / median(t, reps) * 1e-9;
      if (pass == 0) {
        ours[s] = gflops;
      } else { /* check our result against OpenBLAS's */
        blas[s] = gflops;
        if (down_t) trm_gemm_threaded(k, pool, buffers, M, N, K, wop, aop, c1, N);
        else trm_gemm_threaded(k, pool, buffers, M, N, K, aop, wop, c1, N);
        worst[s] = 0;
        for (size_t i = 0; i < M * N; i++) {
          double d = c1[i] > c2[i] ? c1[i] - c2[i] : c2[i] - c1[i];
          worst[s] = d > worst[s] ? d : worst[s];
        }
      }
      trm_packed_free(&packed);
      free(act);
      free(w);
      free(c1);
      free(c2);
    }
  }
  for (size_t s = 0; s < n_shapes; s++) {
    const shape *sh = &shapes[s];
    printf("%-34s %6zu %6zu %6zu %9.1f %9.1f %7.2f %5.0f%%%s\n", sh->what, sh->M, sh->N, sh->K, ours[s], blas[s],
           ours[s] / blas[s], peak > 0 ? 100 * ours[s] / peak : 0, worst[s] > 1e-3 ? "  MISMATCH" : "");
  }
  trm_release(buffers);
  trm_pool_free(pool);
  return 0;
}
