/* The matrix-product kernels: a BLIS-style driver (packing, cache blocking, threads) around one
 * register-blocked microkernel per ISA. The microkernels are the only ISA-specific code. */
#ifndef TRM_KERNELS_H
#define TRM_KERNELS_H

#include "../common.h"

typedef enum trm_isa { TRM_ISA_SCALAR = 0, TRM_ISA_AVX2 = 1, TRM_ISA_AVX512 = 2, TRM_ISA_NEON = 3 } trm_isa;

/* Computes one full MR x NR tile: c[i*ldc + j] = (accumulate ? c[i*ldc + j] : 0) + sum over
 * k < kc of a[k*MR + i] * b[k*NR + j], the sum formed in order of k in a register before it is
 * added to c. a and b are packed panels (see trm_packed). */
typedef void (*trm_micro_fn)(size_t kc, const float *a, const float *b, float *c, size_t ldc, bool accumulate);

/* out[i] = silu(gate[i]) * up[i], silu(a) = a / (1 + e^-a), e^x by trm_exp's method. */
typedef void (*trm_swiglu_fn)(const float *gate, const float *up, float *out, size_t n);

/* x = softmax(scale * x) over n values (max subtracted first; exp as trm_exp). */
typedef void (*trm_softmax_fn)(float *x, size_t n, float scale);

/* Transposes `rows` (<= 16) rows x `cols` (<= 16) columns of src (row stride ld_src) into `cols`
 * rows of `width` floats (rows <= width <= 16) at dst (row stride ld_dst): dst[c*ld_dst + r] =
 * src[r*ld_src + c], and 0 for rows <= r < width. Only those rows and columns are read. Packing
 * an activation across its rows is a transpose; this is its vector form. */
typedef void (*trm_transpose_fn)(const float *src, size_t ld_src, size_t rows, size_t cols, float *dst, size_t ld_dst,
                                 size_t width);

typedef struct trm_kernel {
  trm_isa isa;
  const char *name;
  size_t mr, nr;
  trm_micro_fn micro;
  trm_swiglu_fn swiglu;
  trm_softmax_fn softmax;
  trm_transpose_fn transpose; /* NULL: gemm.c packs element by element */
} trm_kernel;

/* e^x the way every kernel computes it (vectorised in the SIMD ones): x clamped to
 * [-87.3, 88.7], x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial (Cephes' expf
 * coefficients), then scaled by 2^n. Within 2 ulp of expf. */
#define TRM_EXP_LO (-87.33654f)
#define TRM_EXP_HI 88.72283f
#define TRM_LOG2E 1.44269504088896341f
#define TRM_LN2_HI 0.693359375f
#define TRM_LN2_LO (-2.12194440e-4f)
#define TRM_EXP_P0 1.9875691500e-4f
#define TRM_EXP_P1 1.3981999507e-3f
#define TRM_EXP_P2 8.3334519073e-3f
#define TRM_EXP_P3 4.1665795894e-2f
#define TRM_EXP_P4 1.6666665459e-1f
#define TRM_EXP_P5 5.0000001201e-1f
TRM_HIDDEN float trm_exp(float x);

/* The portable SwiGLU and softmax (micro_scalar.c), also used by kernels without vector ones. */
TRM_HIDDEN void trm_swiglu_scalar(const float *gate, const float *up, float *out, size_t n);
TRM_HIDDEN void trm_softmax_scalar(float *x, size_t n, float scale);

/* The kernel for an ISA, or NULL when it is not compiled in or this CPU lacks it. */
TRM_HIDDEN const trm_kernel *trm_kernel_for(trm_isa isa);
/* The best kernel this CPU runs, lowered by the environment variable TRM_ISA
 * (scalar | avx2 | avx512 | neon) when that names one the CPU has. */
TRM_HIDDEN const trm_kernel *trm_kernel_select(void);

/* A weight matrix packed once for one kernel. As the right operand B [K, N] of C = A B it is cut
 * into panels of NR columns, each holding K rows of NR floats; as the left operand A [M, K],
 * into panels of MR rows, each holding K columns of MR floats. Padding is zero. The shape is the
 * caller's to pass with each product, as for a plain matrix. */
typedef struct trm_packed {
  bool swiglu;       /* a SwiGLU gate_up weight packed for the fused product (trm_pack_swiglu_rows) */
  float *data;
} trm_packed;

/* Supplies the weight being packed one row at a time: writes row `row` (cols floats) to out.
 * The loader reads rows straight from the model file, so packing needs no copy of the whole. */
typedef trm_status (*trm_row_fn)(void *ctx, size_t row, float *out);

/* Packs a PyTorch weight W [out, in] (y = x W^T) as the right operand W^T [in, out], reading
 * its rows through row_fn into row_buf (in_features floats). */
TRM_HIDDEN trm_status trm_pack_right_rows(const trm_kernel *k, size_t out_features, size_t in_features,
                                          trm_row_fn row_fn, void *ctx, float *row_buf, trm_packed *p);
/* Packs W [M, K] as the left operand of C = W B (the token MLP multiplies the state from the
 * left), reading its rows through row_fn into row_buf (K floats). */
TRM_HIDDEN trm_status trm_pack_left_rows(const trm_kernel *k, size_t rows, size_t cols, trm_row_fn row_fn,
                                         void *ctx, float *row_buf, trm_packed *p);
/* Whether a SwiGLU gate_up weight [2 inter, in] can be packed for the fused product: inter a
 * multiple of NR/2, and in within one K slice. */
TRM_HIDDEN bool trm_swiglu_fusable(const trm_kernel *k, size_t inter, size_t in_features);
/* Packs a SwiGLU gate_up weight [2 inter, in] (gate rows, then up rows) with each panel holding
 * NR/2 gate columns and the matching NR/2 up columns, so that a product with it writes
 * silu(gate) * up ([M, inter]) straight from the microkernel's tile, never the [M, 2 inter]
 * intermediate. */
TRM_HIDDEN trm_status trm_pack_swiglu_rows(const trm_kernel *k, size_t inter, size_t in_features, trm_row_fn row_fn,
                                           void *ctx, float *row_buf, trm_packed *p);
/* The same from a whole row-major array. */
TRM_HIDDEN trm_status trm_pack_right(const trm_kernel *k, const float *w, size_t out_features, size_t in_features,
                                     trm_packed *p);
TRM_HIDDEN trm_status trm_pack_left(const trm_kernel *k, const float *w, size_t rows, size_t cols, trm_packed *p);
TRM_HIDDEN void trm_packed_free(trm_packed *p);

/* One operand of a product: packed weights, or a row-major matrix (trans: read as its transpose). */
typedef struct trm_operand {
  const trm_packed *packed;
  const float *data;
  size_t ld;
  bool trans;
} trm_operand;

/* Floats needed to pack a K x N right operand. */
TRM_HIDDEN size_t trm_packed_right_floats(const trm_kernel *k, size_t K, size_t N);
/* Packs a K x N activation (e.g. the keys of one head, read transposed) as a right operand into
 * dst (trm_packed_right_floats of room), so that products reusing it pack it only once. */
TRM_HIDDEN trm_packed trm_pack_right_into(const trm_kernel *k, trm_operand B, size_t K, size_t N, float *dst);

/* Floats of packing memory one worker needs (trm_gemm_* take a buffer of this many per worker). */
TRM_HIDDEN size_t trm_gemm_buffer_floats(const trm_kernel *k);

/* C [M, N] = A [M, K] B [K, N] on the calling thread, with one worker's packing buffer. When B
 * is packed for SwiGLU (N = 2 inter), C [M, inter] receives silu(gate) * up instead. */
TRM_HIDDEN void trm_gemm_single(const trm_kernel *k, float *buffer, size_t M, size_t N, size_t K, trm_operand A,
                                trm_operand B, float *C, size_t ldc);

/* The same, split over the pool's workers (buffers: one trm_gemm_buffer_floats block each).
 * Each tile of C is computed whole by one worker in the same order whatever the split, so the
 * result is bitwise the same for every number of workers. */
TRM_HIDDEN void trm_gemm_threaded(const trm_kernel *k, trm_pool *pool, float *buffers, size_t M, size_t N, size_t K,
                                  trm_operand A, trm_operand B, float *C, size_t ldc);

/* Microkernels, defined in micro_*.c. */
TRM_HIDDEN extern const trm_kernel trm_kernel_scalar;
#if defined(__x86_64__) || defined(__i386__)
TRM_HIDDEN extern const trm_kernel trm_kernel_avx2;
TRM_HIDDEN extern const trm_kernel trm_kernel_avx512;
#endif
#if defined(__aarch64__)
TRM_HIDDEN extern const trm_kernel trm_kernel_neon;
#endif

#endif
