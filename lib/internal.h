/* The model and the network, shared by model.c, session.c and net.c. Nothing here is exported. */
#ifndef TRM_INTERNAL_H
#define TRM_INTERNAL_H

#include "common.h"
#include "kernels/kernels.h"

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

/* One block of the tiny network, its weights packed for the model's kernel: as right operands of
 * x W^T (the token MLP's gate_up applied to the transposed state), gate_up ones for the fused
 * SwiGLU, and the token MLP's down as the left operand of W act^T. */
typedef struct trm_layer {
  trm_packed qkv, o;                   /* attention only */
  trm_packed mlpt_gate_up, mlpt_down;  /* mlp_t only */
  trm_packed gate_up, down;
} trm_layer;

struct trm_model {
  trm_config cfg;
  const trm_kernel *kernel; /* chosen at load (TRM_ISA can lower it); the weights are packed for it */
  float *embed_tokens;      /* [vocab, D] */
  float *puzzle_emb;        /* [num_puzzle_identifiers, puzzle_emb_ndim] or NULL */
  float *embed_pos;         /* [S, D] or NULL */
  float *H_init, *L_init;   /* [D] */
  trm_layer *layers;        /* [L_layers] */
  float *lm_head;           /* [vocab, D] */
  float *q_weight;          /* [2, D] */
  float q_bias[2];
  float *rope_cos, *rope_sin; /* [S, head_dim/2] or NULL */
  int64_t param_count;
};

/* ---- the network (net.c) ---- */

/* Work memory for calls of the network over up to `batch` states, for the pool's workers. */
typedef struct trm_net_work {
  trm_pool *pool;        /* not owned */
  size_t chunk_slots;    /* states per pass of the row-wise products */
  float *gemm;           /* packing buffers, one per worker */
  float *h;              /* [chunk_slots * S, D]: the gathered states of one chunk; NULL when
                          * chunks hold one state, which then runs in its own target */
  float *wide, *inner, *out; /* intermediate activations of one chunk */
  float *scores;         /* per worker: attention scores and one head's packed keys and values */
  size_t attention_floats; /* floats of that per worker */
} trm_net_work;

TRM_HIDDEN trm_status trm_net_work_init(const trm_model *m, size_t batch, trm_pool *pool, trm_net_work *w);
TRM_HIDDEN void trm_net_work_free(trm_net_work *w);

/* One call of f for n states: target_i = f(target_i, a_i + b_i) (b may be NULL: inj = a_i).
 * The latent update passes (z, y, x), the answer update (y, z, NULL). */
TRM_HIDDEN void trm_net_call(const trm_model *m, trm_net_work *w, size_t n, float *const *target,
                             const float *const *a, const float *const *b);

/* x = the input embedding of one puzzle, [S, D] (TRM-SPEC section 3). */
TRM_HIDDEN void trm_net_embed(const trm_model *m, const int32_t *tokens, int32_t puzzle_id, float *x);

/* logits = (y lm_head^T)[P:], [seq_len, vocab]. */
TRM_HIDDEN void trm_net_logits(const trm_model *m, const float *y, float *logits);

/* argmax token per position and its softmax probability; either output may be NULL. */
TRM_HIDDEN void trm_net_answer(const trm_model *m, const float *y, int32_t *tokens, float *confidence);

/* q = y[0] q_head^T + q_bias: q[0] halt, q[1] continue. */
TRM_HIDDEN void trm_net_q(const trm_model *m, const float *y, float q[2]);

#endif
