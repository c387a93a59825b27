/* Every kernel this machine runs: the microkernel through the GEMM driver, against a
 * double-precision reference on awkward shapes (1 to 130 in each dimension, K past the slicing,
 * odd strides),
 * for each kind of operand the network uses: activations times packed weights (x W^T), packed
 * weights times activations (the token MLP's W h), a transposed activation on the right (q k^T)
 * and on the left (the token MLP's h^T W^T). The vector transpose that packing uses, alone. Also:
 * the threaded driver is bitwise equal to the single-threaded one for 1..4 workers, and TRM_ISA
 * selects the kernel. The vectorised SwiGLU and softmax against double precision too.
 *
 * Plain C with its own checks rather than Check, so that it cross-compiles for arm64 and runs
 * under qemu-user (make check-neon) without an arm64 build of libcheck. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define EXPECT(cond, ...)                                                                                          \
  do {                                                                                                             \
    if (!(cond)) {                                                                                                 \
      if (failures++ < 20) {                                                                                       \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                            \
        fprintf(stderr, __VA_ARGS__);                                                                              \
        fprintf(stderr, "\n");                                                                                     \
      }                                                                                                            \
    }                                                                                                              \
  } while (0)

static unsigned rng_state = 12345;
static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((rng_state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static float *random_matrix(size_t n) {
  float *p = malloc((n + 1) * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = rnd();
  return p;
}

typedef enum mode { RIGHT_WEIGHTS, LEFT_WEIGHTS, TRANSPOSED_B, TRANSPOSED_A, N_MODES } mode;
static const char *mode_name[] = {"x W^T", "W h", "q k^T", "h^T W^T"};

/* One product C = A B of M x N x K in the given mode with the kernel; compares with a double
 * reference and, threaded, with the single-threaded result bitwise. */
static void check_product(const trm_kernel *k, mode md, size_t M, size_t N, size_t K, trm_pool **pools,
                          float *buffers) {
  size_t pad = 3; /* odd strides */
  size_t lda = K + pad, ldb = N + pad, ldc = N + pad;
  float *A = random_matrix(M * lda), *B = random_matrix(K * ldb);
  float *W = NULL;          /* a weight in PyTorch layout */
  float *Bt = NULL;         /* B stored transposed, for TRANSPOSED_B */
  float *At = NULL;         /* A stored transposed, for TRANSPOSED_A */
  trm_packed packed = {0};
  trm_operand opA = {.data = A, .ld = lda}, opB = {.data = B, .ld = ldb};
  if (md == RIGHT_WEIGHTS) { /* B = W^T with W [N, K] */
    W = random_matrix(N * K);
    for (size_t kk = 0; kk < K; kk++)
      for (size_t n = 0; n < N; n++) B[kk * ldb + n] = W[n * K + kk];
    EXPECT(trm_pack_right(k, W, N, K, &packed) == TRM_OK, "pack_right");
    opB = (trm_operand){.packed = &packed};
  } else if (md == LEFT_WEIGHTS) { /* A = W [M, K] */
    W = random_matrix(M * K);
    for (size_t m = 0; m < M; m++)
      for (size_t kk = 0; kk < K; kk++) A[m * lda + kk] = W[m * K + kk];
    EXPECT(trm_pack_left(k, W, M, K, &packed) == TRM_OK, "pack_left");
    opA = (trm_operand){.packed = &packed};
  } else if (md == TRANSPOSED_A) { /* A given as its transpose At [K, M], B = W^T packed */
    size_t ldt = M + pad;
    At = random_matrix(K * ldt);
    for (size_t m = 0; m < M; m++)
      for (size_t kk = 0; kk < K; kk++) A[m * lda + kk] = At[kk * ldt + m];
    opA = (trm_operand){.data = At, .ld = ldt, .trans = true};
    W = random_matrix(N * K);
    for (size_t kk = 0; kk < K; kk++)
      for (size_t n = 0; n < N; n++) B[kk * ldb + n] = W[n * K + kk];
    EXPECT(trm_pack_right(k, W, N, K, &packed) == TRM_OK, "pack_right");
    opB = (trm_operand){.packed = &packed};
  } else { /* B given as its transpose Bt [N, K] */
    size_t ldt = K + pad;
    Bt = random_matrix(N * ldt);
    for (size_t kk = 0; kk < K; kk++)
      for (size_t n = 0; n < N; n++) B[kk * ldb + n] = Bt[n * ldt + kk];
    opB = (trm_operand){.data = Bt, .ld = ldt, .trans = true};
  }

  float *C = malloc((M * ldc + 1) * sizeof *C), *C2 = malloc((M * ldc + 1) * sizeof *C2);
  for (size_t i = 0; i < M * ldc; i++) C[i] = C2[i] = NAN; /* every element must be written */
  trm_gemm_single(k, buffers, M, N, K, opA, opB, C, ldc);
  double worst = 0;
  for (size_t m = 0; m < M; m++) {
    for (size_t n = 0; n < N; n++) {
      double ref = 0, mag = 0;
      for (size_t kk = 0; kk < K; kk++) {
        ref += (double)A[m * lda + kk] * (double)B[kk * ldb + n];
        mag += fabs((double)A[m * lda + kk] * (double)B[kk * ldb + n]);
      }
      double err = fabs((double)C[m * ldc + n] - ref) / (mag + 1e-30);
      if (!(err <= worst)) worst = err; /* NaN counts */
    }
  }
  EXPECT(worst < 1e-5, "%s %s M=%zu N=%zu K=%zu: relative error %.3g", k->name, mode_name[md], M, N, K, worst);

  for (size_t t = 1; t < 4; t++) { /* 2, 3, 4 workers */
    for (size_t i = 0; i < M * ldc; i++) C2[i] = NAN;
    trm_gemm_threaded(k, pools[t], buffers, M, N, K, opA, opB, C2, ldc);
    bool same = true;
    for (size_t m = 0; m < M && same; m++) same = memcmp(C + m * ldc, C2 + m * ldc, N * sizeof *C) == 0;
    EXPECT(same, "%s %s M=%zu N=%zu K=%zu: %zu workers differ from one", k->name, mode_name[md], M, N, K, t + 1);
  }
  trm_packed_free(&packed);
  free(A);
  free(B);
  free(W);
  free(Bt);
  free(At);
  free(C);
  free(C2);
}

typedef struct rows_ctx {
  const float *w;
  size_t cols;
} rows_ctx;

static trm_status copy_row_fn(void *ctx, size_t row, float *out) {
  const rows_ctx *c = ctx;
  memcpy(out, c->w + row * c->cols, c->cols * sizeof *out);
  return TRM_OK;
}

/* silu(gate) * up against double precision, over the range TRM's activations take and beyond
 * (exp's clamps), at lengths that exercise every vector tail. */
static void check_swiglu(const trm_kernel *k) {
  enum { N = 2003 };
  static float gate[N], up[N], out[N];
  for (size_t i = 0; i < N; i++) {
    gate[i] = -100.0f + 200.0f * (float)i / (N - 1); /* -100 .. 100, through 0 */
    up[i] = rnd();
  }
  gate[0] = -1e30f;
  gate[N - 1] = 1e30f;
  size_t lengths[] = {0, 1, 7, 15, 16, 17, 31, N};
  double worst = 0;
  for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
    for (size_t i = 0; i < N; i++) out[i] = NAN;
    k->swiglu(gate, up, out, lengths[l]);
    for (size_t i = 0; i < lengths[l]; i++) {
      double g = gate[i], ref = g / (1.0 + exp(-g)) * up[i];
      double err = fabs(out[i] - ref) / (fabs(ref) + 1e-30);
      if (fabs(ref) < 1e-30) err = fabs(out[i]); /* silu underflows to 0 far left */
      if (!(err <= worst)) worst = err;
    }
    if (lengths[l] < N) EXPECT(isnan(out[lengths[l]]), "%s swiglu wrote past n = %zu", k->name, lengths[l]);
  }
  EXPECT(worst < 4e-7, "%s swiglu: relative error %.3g", k->name, worst);
}

/* softmax(scale * x) against double precision, at lengths that exercise every vector tail. */
static void check_softmax(const trm_kernel *k) {
  enum { N = 1001 };
  static float x[N + 1], orig[N];
  size_t lengths[] = {1, 2, 15, 16, 17, 33, 97, N};
  double worst = 0;
  for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
    size_t n = lengths[l];
    for (size_t i = 0; i < n; i++) orig[i] = x[i] = 30.0f * rnd();
    x[n] = NAN;
    float scale = 0.125f;
    k->softmax(x, n, scale);
    double best = -INFINITY, total = 0;
    for (size_t i = 0; i < n; i++) best = orig[i] > best ? orig[i] : best;
    for (size_t i = 0; i < n; i++) total += exp(((double)orig[i] - best) * scale);
    for (size_t i = 0; i < n; i++) {
      double ref = exp(((double)orig[i] - best) * scale) / total, err = fabs(x[i] - ref) / ref;
      if (!(err <= worst)) worst = err;
    }
    EXPECT(isnan(x[n]), "%s softmax wrote past n = %zu", k->name, n);
  }
  EXPECT(worst < 1e-6, "%s softmax: relative error %.3g", k->name, worst);
}

/* The fused SwiGLU product against the plain product followed by the kernel's swiglu: bitwise
 * the same, since the tile sums are the same sums. Also through the threaded driver. */
static void check_fused_swiglu(const trm_kernel *k, size_t M, size_t inter, size_t K, trm_pool *pool,
                               float *buffers) {
  float *x = random_matrix(M * K), *w = random_matrix(2 * inter * K);
  float *gate_up = malloc(M * 2 * inter * sizeof(float)), *plain = malloc(M * inter * sizeof(float));
  float *fused = malloc(M * inter * sizeof(float));
  trm_packed p_plain, p_fused;
  EXPECT(trm_pack_right(k, w, 2 * inter, K, &p_plain) == TRM_OK, "pack");
  EXPECT(trm_swiglu_fusable(k, inter, K), "%s: inter %zu should be fusable", k->name, inter);
  float *row_buf = malloc(K * sizeof(float));
  EXPECT(trm_pack_swiglu_rows(k, inter, K, copy_row_fn, &(rows_ctx){w, K}, row_buf, &p_fused) == TRM_OK, "pack");
  trm_operand xo = {.data = x, .ld = K};
  trm_gemm_single(k, buffers, M, 2 * inter, K, xo, (trm_operand){.packed = &p_plain}, gate_up, 2 * inter);
  for (size_t i = 0; i < M; i++)
    k->swiglu(gate_up + i * 2 * inter, gate_up + i * 2 * inter + inter, plain + i * inter, inter);
  for (int threaded = 0; threaded < 2; threaded++) {
    for (size_t i = 0; i < M * inter; i++) fused[i] = NAN;
    if (threaded)
      trm_gemm_threaded(k, pool, buffers, M, 2 * inter, K, xo, (trm_operand){.packed = &p_fused}, fused, inter);
    else
      trm_gemm_single(k, buffers, M, 2 * inter, K, xo, (trm_operand){.packed = &p_fused}, fused, inter);
    EXPECT(memcmp(plain, fused, M * inter * sizeof(float)) == 0, "%s fused SwiGLU M=%zu inter=%zu K=%zu%s differs",
           k->name, M, inter, K, threaded ? " (threaded)" : "");
  }
  trm_packed_free(&p_plain);
  trm_packed_free(&p_fused);
  free(x);
  free(w);
  free(gate_up);
  free(plain);
  free(fused);
  free(row_buf);
}

/* The kernel's vector transpose against its definition for every rows x cols x width, with
 * sentinels around the output: nothing outside `cols` rows of `width` floats may be written. */
static void check_transpose(const trm_kernel *k) {
  if (!k->transpose) return;
  enum { LD_SRC = 19, LD_DST = 21 };
  float src[16 * LD_SRC], dst[17 * LD_DST];
  for (size_t i = 0; i < 16 * LD_SRC; i++) src[i] = (float)i + 0.5f;
  for (size_t rows = 0; rows <= 16; rows++)
    for (size_t cols = 1; cols <= 16; cols++)
      for (size_t width = rows ? rows : 1; width <= 16; width++) {
        for (size_t i = 0; i < 17 * LD_DST; i++) dst[i] = NAN;
        k->transpose(src, LD_SRC, rows, cols, dst, LD_DST, width);
        bool ok = true;
        for (size_t c = 0; c < 17 && ok; c++)
          for (size_t r = 0; r < LD_DST && ok; r++) {
            float got = dst[c * LD_DST + r];
            if (c < cols && r < width) ok = got == (r < rows ? src[r * LD_SRC + c] : 0.0f);
            else ok = isnan(got);
          }
        EXPECT(ok, "%s transpose rows=%zu cols=%zu width=%zu: wrong output", k->name, rows, cols, width);
      }
}

int main(void) {
  static const size_t dims[] = {1, 2, 3, 7, 8, 13, 14, 15, 16, 17, 31, 32, 33, 64, 65, 97, 129, 130};
  /* 600 crosses the K slice of a B packed on the fly (512); 1600 those of packed weights (768) */
  static const size_t ks[] = {1, 5, 17, 130, 600};
  const size_t n_dims = sizeof dims / sizeof dims[0], n_ks = sizeof ks / sizeof ks[0];

  trm_pool *pools[4] = {NULL};
  for (size_t t = 1; t < 4; t++)
    if (trm_pool_create(t + 1, &pools[t]) != TRM_OK) return 1;

  const trm_isa isas[] = {TRM_ISA_SCALAR, TRM_ISA_AVX2, TRM_ISA_AVX512, TRM_ISA_NEON};
  int tested = 0;
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    const trm_kernel *k = trm_kernel_for(isas[i]);
    if (!k) continue;
    tested++;
    check_swiglu(k);
    check_softmax(k);
    check_transpose(k);
    float *buffers = calloc(4 * trm_gemm_buffer_floats(k), sizeof(float));
    size_t products = 0;
    for (int md = 0; md < N_MODES; md++)
      for (size_t a = 0; a < n_dims; a++)
        for (size_t b = 0; b < n_dims; b++)
          for (size_t c = 0; c < n_ks; c++) {
            /* all M x N pairs at small K; at large K every third pair keeps the run short */
            if (ks[c] > 17 && (a + b + c) % 3 != 0) continue;
            check_product(k, (mode)md, dims[a], dims[b], ks[c], pools, buffers);
            products++;
          }
    static const size_t long_k[][3] = {{15, 33, 1600}, {29, 65, 1600}, {1, 1, 1600}, {14, 32, 3100}};
    for (int md = 0; md < N_MODES; md++)
      for (size_t i = 0; i < sizeof long_k / sizeof long_k[0]; i++, products++)
        check_product(k, (mode)md, long_k[i][0], long_k[i][1], long_k[i][2], pools, buffers);
    {
      size_t half = k->nr / 2;
      static const size_t ms[] = {1, 13, 97, 130};
      for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        check_fused_swiglu(k, ms[i], half, 17, pools[1], buffers);
        check_fused_swiglu(k, ms[i], 6 * half, 512, pools[2], buffers);
      }
      EXPECT(!trm_swiglu_fusable(k, half + 1, 64), "%s: inter not a multiple of NR/2 must not be fusable", k->name);
    }
    printf("kernel %-6s (%zux%zu): %zu products checked\n", k->name, k->mr, k->nr, products);
    free(buffers);
  }

  /* TRM_ISA picks the named kernel when the CPU has it, and only then */
  setenv("TRM_ISA", "scalar", 1);
  EXPECT(trm_kernel_select()->isa == TRM_ISA_SCALAR, "TRM_ISA=scalar did not select the scalar kernel");
  setenv("TRM_ISA", "no-such-isa", 1);
  const trm_kernel *fallback = trm_kernel_select();
  unsetenv("TRM_ISA");
  EXPECT(fallback == trm_kernel_select(), "an unknown TRM_ISA must fall back to the best kernel");

  for (size_t t = 1; t < 4; t++) trm_pool_free(pools[t]);
  if (failures) {
    fprintf(stderr, "test_kernels: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_kernels: %d kernel(s), all products match the reference: ok\n", tested);
  return 0;
}
