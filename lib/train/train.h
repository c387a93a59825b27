/* Training engine (internal): parameters in plain row-major float arrays, the network f with a
 * tape of what its backward pass needs, the backward pass of every operation, one deep-supervision
 * step of TRM-SPEC.md section 7 (forward, loss, backward) and the optimisers of the reference
 * trainer. Nothing here is exported; the public training API builds on it later.
 *
 * Conventions: a batch holds B puzzles, each state is [S, D] row-major, the batch's states are
 * [B*S, D]. Every weight W [out, in] acts as y = x W^T (PyTorch's convention). Gradients are
 * accumulated (+=) into the gradient arrays, which the caller zeroes; activation gradients are
 * written (=) unless a function says otherwise. */
#ifndef TRM_TRAIN_H
#define TRM_TRAIN_H

#include "../internal.h"

/* ---- compute context: the kernel, an optional thread pool and its GEMM buffers ---- */

typedef struct trm_tr_ctx {
  const trm_kernel *kernel;
  trm_pool *pool;      /* owned; NULL when single-threaded */
  size_t workers;      /* >= 1 */
  float *gemm_bufs;    /* workers * trm_gemm_buffer_floats */
} trm_tr_ctx;

/* threads: 0 = one per CPU. */
TRM_HIDDEN trm_status trm_tr_ctx_init(trm_tr_ctx *ctx, size_t threads);
TRM_HIDDEN void trm_tr_ctx_free(trm_tr_ctx *ctx);
/* C [M, N] = A [M, K] B [K, N] (plain row-major operands, optionally read transposed). */
TRM_HIDDEN void trm_tr_gemm(const trm_tr_ctx *ctx, size_t M, size_t N, size_t K, trm_operand A, trm_operand B,
                            float *C, size_t ldc);

/* ---- parameters ---- */

/* One layer's weights (pointers into a flat array; unused ones NULL). */
typedef struct trm_tr_layer {
  float *qkv, *o;                /* [3D, D], [D, D]: attention */
  float *mlpt_gate_up, *mlpt_down; /* [2 It, S], [S, It]: token MLP */
  float *gate_up, *down;         /* [2I, D], [D, I] */
} trm_tr_layer;

/* The dense trained tensors, as views into one flat array of `floats` values. The same layout
 * serves the weights, their gradients, the optimiser moments and the EMA copy. */
typedef struct trm_tr_dense {
  float *data;
  float *embed_tokens;  /* [V, D] */
  float *embed_pos;     /* [S, D] or NULL */
  float *lm_head;       /* [V, D] */
  float *q_weight;      /* [2, D] */
  float *q_bias;        /* [2] */
  trm_tr_layer *layers; /* [L_layers] */
} trm_tr_dense;

/* A named tensor of the flat layout: reference state_dict name, offset in floats, shape. */
typedef struct trm_tr_tensor {
  char name[80];
  size_t offset, rows, cols; /* cols 0 for a vector */
} trm_tr_tensor;

typedef struct trm_tr_params {
  trm_config cfg;
  size_t floats;            /* dense trained floats */
  trm_tr_tensor *tensors;   /* the dense tensors in layout order */
  size_t n_tensors;
  trm_tr_dense w;           /* the weights */
  float *puzzle_emb;        /* [num_puzzle_identifiers, puzzle_emb_ndim] or NULL: signSGD, sparse */
  float *H_init, *L_init;   /* [D]: buffers, not trained */
  float *rope_cos, *rope_sin; /* [S, head_dim/2] or NULL */
} trm_tr_params;

/* Fills the derived fields of a configuration given hidden_size, num_heads, L_layers, cycles,
 * seq_len, vocab_size, puzzle_emb_ndim, puzzle_len (0 = resolve), num_puzzle_identifiers,
 * pos_encodings, mlp_t, expansion (used when inter / inter_t are 0), eps and theta. */
TRM_HIDDEN trm_status trm_tr_config_resolve(trm_config *c);

/* Allocates zeroed parameters for a resolved configuration. */
TRM_HIDDEN trm_status trm_tr_params_alloc(const trm_config *c, trm_tr_params *p);
TRM_HIDDEN void trm_tr_params_free(trm_tr_params *p);
/* The reference's initialisation: truncated-normal LeCun for linear weights (std 1/sqrt(fan_in)),
 * std 1/sqrt(D) for the token and position embeddings, std 1 for H_init / L_init, zeros for the
 * puzzle embeddings, q_head weight 0 and bias -5. Deterministic in seed. */
TRM_HIDDEN void trm_tr_params_init_random(trm_tr_params *p, uint64_t seed);
/* Loads a libtrm model file (checked by trm_model_load_memory) into new parameters. */
TRM_HIDDEN trm_status trm_tr_params_load(const char *path, trm_tr_params *p);
TRM_HIDDEN trm_status trm_tr_params_load_memory(const void *data, size_t size, trm_tr_params *p);
/* Views of the layout over another flat array of p->floats values (gradients, moments, EMA). */
TRM_HIDDEN trm_status trm_tr_dense_view(const trm_tr_params *p, float *data, trm_tr_dense *view);
TRM_HIDDEN void trm_tr_dense_view_free(trm_tr_dense *view);
/* A truncated normal sample in [-2, 2] standard deviations scaled so its std is `std` (the
 * reference's trunc_normal_init_), from a splitmix64 state. */
TRM_HIDDEN float trm_tr_trunc_normal(uint64_t *state, double std);

/* ---- operations and their backward passes (ops.c) ---- */

/* v = v / sqrt(mean(v^2) + eps) for each of `rows` rows of `cols`; inv[i] receives 1/rms. */
TRM_HIDDEN void trm_tr_rmsnorm_rows(float *v, float *inv, size_t rows, size_t cols, float eps);
/* d (in place): dy -> du for y = rmsnorm(u), given y and inv: du = inv (dy - y mean(dy y)). */
TRM_HIDDEN void trm_tr_rmsnorm_rows_backward(const float *y, const float *inv, float *d, size_t rows, size_t cols);
/* The same along the columns of v [rows, cols] (the token MLP normalises over positions). */
TRM_HIDDEN void trm_tr_rmsnorm_cols(float *v, float *inv, size_t rows, size_t cols, float eps);
TRM_HIDDEN void trm_tr_rmsnorm_cols_backward(const float *y, const float *inv, float *d, size_t rows, size_t cols);

/* act [rows, inter] = silu(gate) * up, each row of gu [rows, 2 inter] being [gate | up]. */
TRM_HIDDEN void trm_tr_swiglu(const float *gu, float *act, size_t rows, size_t inter);
/* dgu [rows, 2 inter] from dact [rows, inter]. */
TRM_HIDDEN void trm_tr_swiglu_backward(const float *gu, const float *dact, float *dgu, size_t rows, size_t inter);

/* Rotates the q and k heads of qkv [rows, 3D] by RoPE (position = row % S); inverse rotates back,
 * which is also the backward pass of the rotation. */
TRM_HIDDEN void trm_tr_rope(const trm_tr_params *p, float *qkv, size_t rows, bool inverse);

/* Per-call saved activations of one layer. */
typedef struct trm_tr_layer_tape {
  float *qkv;    /* attention: [R, 3D], after RoPE */
  float *probs;  /* attention: [B, H, S, S] */
  float *heads;  /* attention: [R, D] */
  float *gu_t;   /* token MLP: [B, D, 2 It] */
  float *gu;     /* channel MLP: [R, 2I] */
  float *inv_mix, *inv_mlp; /* 1/rms of the two norms: [R] (attention) or [B*D] (token MLP), [R] */
} trm_tr_layer_tape;

/* What one call of f saves: the state before each sub-step and the output, and the layers'
 * activations. state[0] = h + inj, state[2l+1] after layer l's mixing step, state[2l+2] after
 * its channel step; state[2 L_layers] is the output. */
typedef struct trm_tr_tape {
  float *state;          /* [(2 L_layers + 1), R, D] */
  trm_tr_layer_tape *layers;
} trm_tr_tape;

/* Scratch for the backward pass of a batch of B states (see trm_tr_work_*). */
typedef struct trm_tr_scratch {
  float *act;   /* [max(R*I, B*D*It)] */
  float *dact;  /* same */
  float *dgu;   /* [max(R*2I, B*D*2It)] */
  float *d1, *d2; /* [R * max(3D, ...)]: activation gradients */
  float *wgrad; /* [largest weight] */
  float *attn;  /* per worker: [S*S] */
  size_t attn_workers; /* workers attn has room for */
  float *xt, *xt2;     /* token MLP: [R*D] each, the states permuted to [S, B*D] */
  float *apack;        /* an activation packed as a left operand: [D MR-padded x R] */
  trm_tr_layer_tape spare; /* buffers of a call without tape (those of tape 0, layer 0) */
  struct trm_tr_packs *packs; /* the weights packed for the kernel (owned), or NULL */
} trm_tr_scratch;

/* The mixing and channel steps of one layer, forward (saving into lt; lt NULL: no gradient will
 * follow, nothing is saved) and backward. h [R, D] is replaced by the step's output. Backward:
 * d [R, D] holds the gradient of the output on entry and of the input on return; weight
 * gradients are accumulated into g. */
TRM_HIDDEN void trm_tr_attention_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                                         size_t B, float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc);
TRM_HIDDEN void trm_tr_attention_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                                          trm_tr_layer *g, size_t B, const float *h_in, const float *h_out,
                                          const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc);
TRM_HIDDEN void trm_tr_token_mlp_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                                         size_t B, float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc);
TRM_HIDDEN void trm_tr_token_mlp_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                                          trm_tr_layer *g, size_t B, const float *h_in, const float *h_out,
                                          const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc);
TRM_HIDDEN void trm_tr_channel_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                                       size_t rows, float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc);
TRM_HIDDEN void trm_tr_channel_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                                        trm_tr_layer *g, size_t rows, const float *h_in, const float *h_out,
                                        const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc);

/* ---- the network (net.c) ---- */

/* Work memory for a batch of B puzzles: the tapes of the L_cycles + 1 calls of the grad cycle,
 * the scratch, and the buffers of one supervision step. */
typedef struct trm_tr_work {
  size_t batch;
  size_t n_tapes;
  trm_tr_tape *tapes;
  trm_tr_scratch sc;
  float *x;          /* [B*S, D] input embedding */
  float *inj;        /* [B*S, D] y + x */
  float *dx;         /* [B*S, D] gradient of x */
  float *dstate;     /* [B*S, D] */
  float *dy;         /* [B*S, D] */
  float *logits;     /* [B*seq, V] */
  float *dlogits;    /* [B*seq, V] */
  float *q, *dq;     /* [B, 2] */
  float *dpuzzle;    /* [B, puzzle_emb_ndim] or NULL: gradient of the batch's puzzle-embedding rows */
  void *arena;
} trm_tr_work;

TRM_HIDDEN trm_status trm_tr_work_init(const trm_tr_ctx *ctx, const trm_tr_params *p, size_t batch, trm_tr_work *w);
TRM_HIDDEN void trm_tr_work_free(trm_tr_work *w);

/* out = f(target, a + b) over B states (b may be NULL), saving into tape. out may equal target.
 * tape NULL: a call without gradient (the no-grad cycles): nothing is saved, the SwiGLU products
 * are fused, and the buffers of tape 0 serve as scratch. */
TRM_HIDDEN void trm_tr_f_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, size_t B,
                                 const float *target, const float *a, const float *b, trm_tr_tape *tape, float *out);
/* d [R, D]: gradient of the call's output on entry, of h + inj on return (the gradient of the
 * target and of each injection term). Weight gradients are accumulated into g. */
TRM_HIDDEN void trm_tr_f_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, size_t B,
                                  const trm_tr_tape *tape, trm_tr_dense *g, float *d);

/* x [B*S, D] for B puzzles (TRM-SPEC.md section 3). */
TRM_HIDDEN void trm_tr_embed(const trm_tr_params *p, size_t B, const int32_t *tokens, const int32_t *puzzle_ids,
                             float *x);
/* Accumulates dx into the token and position embeddings' gradients, and writes the gradient of
 * each puzzle's embedding row into dpuzzle [B, puzzle_emb_ndim] (may be NULL without puzzle emb). */
TRM_HIDDEN void trm_tr_embed_backward(const trm_tr_params *p, size_t B, const int32_t *tokens, const float *dx,
                                      trm_tr_dense *g, float *dpuzzle);

/* logits [B*seq, V] = (y lm_head^T)[P:] and q [B, 2] = y[0] q_head^T + bias. */
TRM_HIDDEN void trm_tr_heads(const trm_tr_ctx *ctx, const trm_tr_params *p, size_t B, const float *y, float *logits,
                             float *q);
/* dy [B*S, D] (written) from dlogits and dq; the heads' gradients accumulated into g. */
TRM_HIDDEN void trm_tr_heads_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, size_t B,
                                      const float *y, const float *dlogits, const float *dq, trm_tr_dense *g,
                                      float *dy);

/* ---- loss (loss.c) ---- */

/* stablemax s(x) = 1/(1 - x + 1e-30) for x < 0, x + 1 otherwise; the reference's log_stablemax
 * in double. Returns -log(s(x_label) / sum s) and writes its gradient wrt x (n values) to grad. */
TRM_HIDDEN double trm_tr_stablemax_xent(const float *x, size_t n, int32_t label, double *grad);
/* Binary cross-entropy with logits: max(x,0) - x t + log(1 + e^-|x|); *grad = sigmoid(x) - t. */
TRM_HIDDEN double trm_tr_bce_logits(double x, double target, double *grad);

typedef struct trm_tr_loss {
  double lm_loss;         /* sum over puzzles of the mean stablemax CE over its valid tokens */
  double q_halt_loss;     /* sum of BCE(q_halt, exact) */
  double q_continue_loss; /* sum of BCE(q_continue, target) when targets were given */
  double total;           /* lm_loss + 0.5 (q_halt_loss + q_continue_loss) */
  size_t valid_tokens, correct_tokens, exact; /* counts over the batch */
} trm_tr_loss;

/* The reference's ACTLossHead on logits [B*seq, V] and q [B, 2] against labels [B*seq]
 * (ignore_label excluded). q_continue_target [B] may be NULL (no_ACT_continue). Writes
 * dlogits and dq, the gradients of scale * total; exact [B] (may be NULL) receives whether every
 * valid token's argmax is right. Returns TRM_E_INVALID for a label outside [0, V). */
TRM_HIDDEN trm_status trm_tr_loss_eval(const float *logits, const float *q, const int32_t *labels, size_t B,
                                       size_t seq, size_t V, int32_t ignore_label, const float *q_continue_target,
                                       double scale, float *dlogits, float *dq, uint8_t *exact, trm_tr_loss *out);

/* ---- one supervision step (step.c) ---- */

typedef struct trm_tr_batch {
  size_t B;
  const int32_t *tokens;      /* [B, seq] */
  const int32_t *labels;      /* [B, seq], ignore_label excluded from the loss */
  const int32_t *puzzle_ids;  /* [B] */
  const float *q_continue_target; /* [B] or NULL */
  int32_t ignore_label;
  double loss_scale;          /* the gradients are those of loss_scale * total (the reference: 1/global batch) */
} trm_tr_batch;

/* Resets the carry of puzzle b: y = H_init, z = L_init on every row. */
TRM_HIDDEN void trm_tr_carry_reset(const trm_tr_params *p, float *y, float *z, size_t b);

/* One deep-supervision step: H_cycles-1 cycles without gradient, the last with it, the heads,
 * the loss and the backward pass. y, z [B*S, D] are the carry (updated: detached outputs).
 * Gradients are accumulated into g and (for puzzle embeddings) written to w->dpuzzle.
 * exact [B] may be NULL. */
TRM_HIDDEN trm_status trm_tr_step(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w,
                                  const trm_tr_batch *batch, float *y, float *z, trm_tr_dense *g, uint8_t *exact,
                                  trm_tr_loss *loss);

/* ---- optimisers (optim.c) ---- */

/* The reference's lr: linear warm-up from 0 over warmup steps, then cosine from base_lr down to
 * base_lr * min_ratio at total steps (min_ratio 1: constant). step counts from 1. */
TRM_HIDDEN double trm_tr_lr(int64_t step, double base_lr, int64_t warmup, int64_t total, double min_ratio);

/* AdamATan2 (the adam-atan2 package the reference uses), step >= 1:
 *   p *= 1 - lr wd;  m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2
 *   p -= lr atan2(m / (1 - b1^step), sqrt(v) / sqrt(1 - b2^step)) */
TRM_HIDDEN void trm_tr_adam_atan2(float *p, const float *g, float *m, float *v, size_t n, int64_t step, double lr,
                                  double beta1, double beta2, double weight_decay);
/* AdamW (PyTorch's): p *= 1 - lr wd; m, v as Adam; p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps). */
TRM_HIDDEN void trm_tr_adamw(float *p, const float *g, float *m, float *v, size_t n, int64_t step, double lr,
                             double beta1, double beta2, double weight_decay, double eps);
/* EMA of weights: shadow = (1 - mu) p + mu shadow. */
TRM_HIDDEN void trm_tr_ema(float *shadow, const float *p, size_t n, double mu);
/* signSGD for the puzzle embeddings (the reference's CastedSparseEmbeddingSignSGD): the batch's
 * row gradients dpuzzle [B, ndim] are summed per distinct id, then each such row
 * p = p (1 - lr wd) - lr sign(sum). Rows not in the batch are untouched. */
TRM_HIDDEN trm_status trm_tr_signsgd_rows(float *table, size_t n_rows, size_t ndim, const int32_t *ids,
                                          const float *dpuzzle, size_t B, double lr, double weight_decay);


/* ==== The trainer (loop.c, api.c, ckpt.c): the public trm_trainer of include/trm.h ==== */

/* Training options (the values behind trm_trainer_set_option). */
typedef struct trm_tr_options {
  double lr, lr_min_ratio, weight_decay, beta1, beta2, eps, ema;
  double puzzle_emb_lr, puzzle_emb_weight_decay, halt_exploration_prob;
  int64_t warmup_steps, total_steps, batch, threads, halt_max_steps;
  int optimizer;       /* trm_optimizer */
  int augment;         /* trm_augment as asked */
  uint64_t seed;
} trm_tr_options;

struct trm_trainer {
  trm_tr_params p;
  trm_tr_options opt;
  trm_tr_ctx ctx;
  bool ctx_ready;
  float *grad, *m, *v, *ema; /* [p.floats] each; ema NULL while the EMA is off */
  trm_tr_dense g;            /* the gradient's view */
  /* the data, copied: count samples of seq_len tokens and labels, and a puzzle id each */
  int32_t *inputs, *labels, *ids;
  size_t count;
  int32_t ignore_label;
  uint64_t data_hash;
  bool resume_pending;       /* loaded from a checkpoint, no data yet: same data keeps its order */
  uint64_t resume_hash, resume_count;
  int aug_kind;              /* trm_augment resolved for this configuration (never AUTO) */
  uint32_t *order;           /* this epoch's permutation of [0, count) */
  uint64_t order_epoch;      /* the epoch order[] holds; UINT64_MAX when none */
  uint64_t drawn;            /* samples drawn from the stream so far */
  int64_t step;              /* training steps done */
  /* the B slots carried across steps (allocated at the first step) */
  size_t B;
  trm_tr_work work;
  float *y, *z;              /* [B*S, D] */
  int32_t *slot_tokens, *slot_labels, *slot_ids; /* [B, seq], [B, seq], [B] */
  int32_t *slot_steps;       /* supervision steps each slot has run on its sample */
  uint8_t *slot_halted;      /* 1: takes a new sample at the next step */
  uint8_t *exact;            /* [B] scratch */
  int32_t *aug_scratch;      /* [seq_len] */
  bool expansion_known;      /* cfg.expansion describes the widths (written to saved models) */
};

/* Frees everything a trainer holds and the trainer. */
TRM_HIDDEN void trm_tr_trainer_destroy(trm_trainer *t);
/* Allocates the slots and work memory for t->opt.batch (once, before the first step). */
TRM_HIDDEN trm_status trm_tr_trainer_prepare(trm_trainer *t);
/* (Re)creates the compute context for t->opt.threads. */
TRM_HIDDEN trm_status trm_tr_trainer_threads(trm_trainer *t);
/* The stream's k-th sample into slot b (augmented as t->aug_kind says). */
TRM_HIDDEN trm_status trm_tr_draw(trm_trainer *t, size_t b);
/* One training step (loop.c). */
TRM_HIDDEN trm_status trm_tr_train_step(trm_trainer *t, trm_train_metrics *out);
/* A counter-based random number: the same (seed, stream, a, b) always gives the same value. */
TRM_HIDDEN uint64_t trm_tr_random(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b);
/* FNV-1a of the data (order-sensitive), to recognise the data set a checkpoint was made on. */
TRM_HIDDEN uint64_t trm_tr_data_hash(const trm_trainer *t);
/* Sudoku (81 tokens: 0 pad, 1 blank, 2..10 digits) and dihedral (side x side) augmentations,
 * applied in place to tokens and labels from the random value r (scratch: side*side values). */
TRM_HIDDEN void trm_tr_augment_sudoku(int32_t *tokens, int32_t *labels, uint64_t r);
TRM_HIDDEN void trm_tr_augment_dihedral(int32_t *tokens, int32_t *labels, size_t side, uint64_t r, int32_t *scratch);

/* A libtrm model file of the trainer's weights (EMA ones when ema is true and the EMA runs):
 * the whole file in a new trm_alloc block. */
TRM_HIDDEN trm_status trm_tr_model_bytes(const trm_trainer *t, bool ema, uint8_t **out, size_t *size);
TRM_HIDDEN trm_status trm_tr_checkpoint_save(const trm_trainer *t, const char *path);
TRM_HIDDEN trm_status trm_tr_checkpoint_load(const char *path, trm_trainer **out);
/* Writes size bytes to path through a temporary file renamed into place. */
TRM_HIDDEN trm_status trm_tr_write_file(const char *path, const uint8_t *data, size_t size);

/* ==== Speed (ops.c, net.c): weights packed once per step, elementwise passes over the pool ==== */

/* fn over [0, n) cut into one contiguous range per worker of ctx's pool (the caller's thread
 * alone without a pool). Each item must be computed whole by one call, so that results do not
 * depend on the number of workers. */
typedef void (*trm_tr_range_fn)(void *arg, size_t lo, size_t hi);
TRM_HIDDEN void trm_tr_parallel(const trm_tr_ctx *ctx, size_t n, trm_tr_range_fn fn, void *arg);
/* dst [n] += src over the pool. */
TRM_HIDDEN void trm_tr_add(const trm_tr_ctx *ctx, float *dst, const float *src, size_t n);
/* One layer of f: the mixing step from in to mid, the channel step from mid to out, saving into
 * lt (NULL: no gradient follows); in, mid and out may be the same array. */
TRM_HIDDEN void trm_tr_layer_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                                     const float *in, float *mid, float *out, trm_tr_layer_tape *lt,
                                     trm_tr_scratch *sc);

/* One layer's weights packed for the kernel (kernels.h's layouts; data NULL when unused). */
typedef struct trm_tr_layer_packs {
  /* forward: W^T as right operands; the SwiGLU gate_up interleaved for the fused product (when
   * the kernel can fuse it); the token MLP's down as a left operand */
  trm_packed qkv, o, gate_up, gate_up_fused, down, mlpt_gate_up, mlpt_gate_up_fused, mlpt_down;
  /* backward (dx = dy W): W as right operands; the token MLP's gate_up^T as a left operand */
  trm_packed qkv_dx, o_dx, gate_up_dx, down_dx, mlpt_down_dx, mlpt_gate_up_dx;
} trm_tr_layer_packs;

/* The packed weights of a work memory (w->sc.packs). The weights do not change within a
 * supervision step, so they are packed once per step: the forward layouts at the first call of
 * f after they were marked stale, the backward ones at the first backward call after that. They
 * are marked stale by trm_tr_heads_backward (every step ends its forward pass there, so the
 * optimiser update that follows a step is always seen), by trm_tr_weights_changed, and when
 * another weight array is passed. */
typedef struct trm_tr_packs {
  trm_tr_layer_packs *layers; /* [L_layers] */
  float *arena;
  const trm_kernel *kernel;   /* the layouts are this kernel's */
  const float *source;        /* the weight array they were packed from */
  bool fuse, fuse_t;          /* whether the channel / token SwiGLU products can be fused */
  bool forward_ready, backward_ready;
} trm_tr_packs;

/* Floats of packed weights for p on ctx's kernel, and the assignment of an arena of that size. */
TRM_HIDDEN size_t trm_tr_packs_floats(const trm_tr_ctx *ctx, const trm_tr_params *p);
TRM_HIDDEN void trm_tr_packs_assign(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_packs *pk, float *arena);

/* Call after changing the weights in place other than by a supervision step followed by the
 * optimiser (e.g. copying other weights in, or perturbing one): the next call of f re-packs. */
TRM_HIDDEN void trm_tr_weights_changed(trm_tr_work *w);

#endif
