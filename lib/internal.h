/* Internal declarations shared by the library's files. Nothing here is exported. */
#ifndef TRM_INTERNAL_H
#define TRM_INTERNAL_H

#include "trm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define TRM_HIDDEN __attribute__((visibility("hidden")))
#define TRM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TRM_HIDDEN
#define TRM_PRINTF(f, a)
#endif

/* ---- errors (error.c) ---- */

/* Records this thread's message for trm_last_error() and returns status, so a failing
 * path reads `return trm_fail(TRM_E_FORMAT, "...", ...);`. */
TRM_HIDDEN trm_status trm_fail(trm_status status, const char *fmt, ...) TRM_PRINTF(2, 3);

/* ---- memory (error.c): every allocation of the library goes through these ---- */

TRM_HIDDEN void *trm_alloc(size_t size);               /* 64-byte aligned, uninitialised */
TRM_HIDDEN void *trm_alloc_zero(size_t count, size_t size); /* 64-byte aligned, zeroed; checks overflow */
TRM_HIDDEN void trm_release(void *p);

/* a*b and a*b*c without overflow; false when the product does not fit in size_t */
TRM_HIDDEN bool trm_mul_ok(size_t a, size_t b, size_t *out);

/* ---- the model (model.c) ---- */

enum trm_pos { TRM_POS_NONE = 0, TRM_POS_ROPE = 1, TRM_POS_LEARNED = 2 };

typedef struct trm_config {
  int64_t hidden_size, num_heads, head_dim;
  int64_t L_layers, H_cycles, L_cycles;
  int64_t seq_len, vocab_size, num_puzzle_identifiers;
  int64_t puzzle_emb_ndim, puzzle_len; /* puzzle_len = P, the resolved prefix */
  int64_t state_len;                   /* S = seq_len + P */
  int64_t inter, inter_t;              /* SwiGLU widths, read from the weights */
  int64_t halt_max_steps;
  int pos_encodings;                   /* enum trm_pos */
  bool mlp_t, no_act_continue;
  double expansion;                    /* 0 when the file does not say */
  double rms_norm_eps, rope_theta;
} trm_config;

/* One block of the tiny network. Weights used as the right operand of x W^T are stored
 * transposed ([in, out], "_t") so the GEMM reads them row by row; the token MLP's weights
 * multiply the state from the left and keep the reference layout. */
typedef struct trm_layer {
  float *qkv_t;       /* [D, 3D]   attention only */
  float *o_t;         /* [D, D]    attention only */
  float *mlpt_gate_up; /* [2 inter_t, S]  mlp_t only */
  float *mlpt_down;   /* [S, inter_t]    mlp_t only */
  float *gate_up_t;   /* [D, 2 inter] */
  float *down_t;      /* [inter, D] */
} trm_layer;

struct trm_model {
  trm_config cfg;
  float *embed_tokens; /* [vocab, D] */
  float *puzzle_emb;   /* [num_puzzle_identifiers, puzzle_emb_ndim] or NULL */
  float *embed_pos;    /* [S, D] or NULL */
  float *H_init, *L_init; /* [D] */
  trm_layer *layers;   /* [L_layers] */
  float *lm_head;      /* [vocab, D] */
  float *q_weight;     /* [2, D] */
  float q_bias[2];
  float *rope_cos, *rope_sin; /* [S, head_dim/2] or NULL */
  int64_t param_count;
};

/* ---- the network (net.c) ---- */

/* Floats of work memory one thread needs for one network call on one puzzle. */
TRM_HIDDEN size_t trm_net_scratch_floats(const trm_model *m);

/* x = the input embedding of one puzzle, [S, D] (TRM-SPEC section 3). */
TRM_HIDDEN void trm_net_embed(const trm_model *m, const int32_t *tokens, int32_t puzzle_id, float *x);

/* Latent update z = f(z, y + x), in place on z. */
TRM_HIDDEN void trm_net_latent_update(const trm_model *m, float *z, const float *y, const float *x,
                                      float *scratch);

/* Answer update y = f(y, z), in place on y. */
TRM_HIDDEN void trm_net_answer_update(const trm_model *m, float *y, const float *z, float *scratch);

/* logits = (y lm_head^T)[P:], [seq_len, vocab]. */
TRM_HIDDEN void trm_net_logits(const trm_model *m, const float *y, float *logits);

/* argmax token per position and its softmax probability; either output may be NULL. */
TRM_HIDDEN void trm_net_answer(const trm_model *m, const float *y, int32_t *tokens, float *confidence);

/* q = y[0] q_head^T + q_bias: q[0] halt, q[1] continue. */
TRM_HIDDEN void trm_net_q(const trm_model *m, const float *y, float q[2]);

/* ---- kernels (kernels/) ---- */

/* C[M,N] = A[M,K] B[K,N], all row-major with the given row strides. */
TRM_HIDDEN void trm_gemm(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                         size_t ldb, float *C, size_t ldc);

/* ---- threads (pool.c) ---- */

typedef struct trm_pool trm_pool;
typedef void (*trm_pool_fn)(void *ctx, size_t worker, size_t n_workers);

/* n_workers >= 1 counting the calling thread; n_workers - 1 threads are started. */
TRM_HIDDEN trm_status trm_pool_create(size_t n_workers, trm_pool **out);
TRM_HIDDEN void trm_pool_free(trm_pool *p);
/* Runs fn(ctx, w, n) on every worker w (the caller is worker 0) and waits for all. */
TRM_HIDDEN void trm_pool_run(trm_pool *p, trm_pool_fn fn, void *ctx);
TRM_HIDDEN size_t trm_pool_size(const trm_pool *p);
/* CPUs this process may run on (at least 1). */
TRM_HIDDEN size_t trm_cpu_count(void);

#endif
