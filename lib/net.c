/* The tiny network f of TRM-SPEC.md section 4, applied to a batch of states at once.
 *
 *   f(h, inj):  h = h + inj
 *               for each block:  h = rmsnorm(h + mix(h))        mix = attention, or the token MLP
 *                                h = rmsnorm(h + swiglu(h))     on the transposed state
 *
 * session.c drives the recursion and says which slots take part; this file makes one call of f
 * for all of them: it gathers their states, a chunk of whole states (about 128 rows) at a time,
 * into one matrix so that the matrix products see many rows at once, runs the blocks, and
 * scatters the result back. Products go through kernels/ (weights packed at load); the rest is
 * split over the session's threads by rows, heads or slots, always so that each output is
 * computed whole by one worker: the result is the same for every thread count. */
#include "internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* Rows of gathered states one pass through the blocks takes, to bound work memory (whole
 * states at a time, at least one). */
enum { CHUNK_ROWS = 128, MLP_ROWS = 256, QUERY_BLOCK = 64, TOKEN_COLS = 256 };

/* ---- work memory ---- */

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Queries one attention block takes: QUERY_BLOCK rounded up to whole MR-row panels, so that no
 * block but the last pads its panels (64 queries would be 4 panels of 14 and a fifth of 8). */
static size_t query_block(const trm_kernel *k) { return (QUERY_BLOCK + k->mr - 1) / k->mr * k->mr; }

/* Per worker: one block of scores, and the keys and values of one head packed for the GEMM. */
static size_t attention_floats(const trm_model *m) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, hd = (size_t)c->head_dim;
  if (c->mlp_t) return 0;
  return query_block(m->kernel) * S + trm_packed_right_floats(m->kernel, hd, S) + trm_packed_right_floats(m->kernel, S, hd);
}

void trm_net_work_free(trm_net_work *w) {
  if (!w) return;
  trm_release(w->gemm);
  trm_release(w->h);
  trm_release(w->wide);
  trm_release(w->inner);
  trm_release(w->out);
  trm_release(w->scores);
  memset(w, 0, sizeof *w);
}

trm_status trm_net_work_init(const trm_model *m, size_t batch, trm_pool *pool, trm_net_work *w) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, I = (size_t)c->inter;
  size_t It = c->mlp_t ? (size_t)c->inter_t : 0;
  size_t workers = trm_pool_size(pool);
  memset(w, 0, sizeof *w);
  w->pool = pool;
  w->chunk_slots = max_sz(1, min_sz(batch, CHUNK_ROWS / S));
  size_t R = w->chunk_slots * S;
  /* a chunk of one state runs in place in the slot's own target state: no gathered copy */
  bool in_place = w->chunk_slots == 1;
  /* the [R, 2 inter] SwiGLU intermediate only exists when the kernel cannot fuse it */
  bool fused = m->layers[0].gate_up.swiglu, fused_t = c->mlp_t && m->layers[0].mlpt_gate_up.swiglu;
  /* wide: attention's qkv (its heads' output and the o product reuse it), or an unfused
   * SwiGLU's gate_up; inner: the SwiGLU activations of MLP_ROWS rows (the channel MLP goes
   * through a chunk in such slices), or of TOKEN_COLS channels of the token MLP */
  size_t mlp_rows = min_sz(R, MLP_ROWS);
  size_t token_cols = min_sz(D, TOKEN_COLS);
  size_t wide = max_sz(max_sz(c->mlp_t ? 0 : R * 3 * D, fused ? 0 : mlp_rows * 2 * I), fused_t ? 0 : token_cols * 2 * It);
  size_t inner = max_sz(mlp_rows * I, token_cols * It);
  w->gemm = trm_alloc_zero(workers, trm_gemm_buffer_floats(m->kernel) * sizeof(float));
  w->h = in_place ? NULL : trm_alloc_zero(R * D, sizeof(float));
  w->wide = trm_alloc_zero(wide, sizeof(float));
  w->inner = trm_alloc_zero(inner, sizeof(float));
  w->out = trm_alloc_zero(max_sz(mlp_rows, c->mlp_t ? S : 0) * D, sizeof(float));
  w->attention_floats = attention_floats(m);
  w->scores = trm_alloc_zero(workers, w->attention_floats * sizeof(float));
  if (!w->gemm || (!in_place && !w->h) || !w->wide || !w->inner || !w->out || !w->scores) {
    trm_net_work_free(w);
    return trm_fail(TRM_E_NOMEM, "out of memory for the network's work memory (batch %zu)", batch);
  }
  return TRM_OK;
}

/* ---- helpers over the pool ---- */

static trm_operand weights(const trm_packed *p) { return (trm_operand){.packed = p}; }
static trm_operand matrix(const float *data, size_t ld) { return (trm_operand){.data = data, .ld = ld}; }

/* C = A B with the products split over the workers. */
static void gemm(const trm_model *m, trm_net_work *w, size_t M, size_t N, size_t K, trm_operand A, trm_operand B,
                 float *C, size_t ldc) {
  trm_gemm_threaded(m->kernel, w->pool, w->gemm, M, N, K, A, B, C, ldc);
}

typedef void (*rows_fn)(const void *ctx, size_t first, size_t count);
typedef struct rows_job {
  rows_fn fn;
  const void *ctx;
  size_t rows;
} rows_job;

static void rows_worker(void *ctx, size_t worker, size_t n_workers) {
  const rows_job *j = ctx;
  size_t lo = j->rows * worker / n_workers, hi = j->rows * (worker + 1) / n_workers;
  if (hi > lo) j->fn(j->ctx, lo, hi - lo);
}

/* fn over rows [0, rows), cut into one contiguous range per worker. */
static void for_rows(trm_net_work *w, size_t rows, rows_fn fn, const void *ctx) {
  rows_job job = {fn, ctx, rows};
  trm_pool_run(w->pool, rows_worker, &job);
}

/* ---- elementwise pieces ---- */

typedef struct rowwise {
  const trm_kernel *k;
  float *h;
  const float *add;
  size_t add_ld; /* floats between rows of add (0: cols) */
  const float *gate_up;
  float *act;
  size_t cols, inter;
  float eps;
} rowwise;

/* h = rmsnorm(h + add) on each row: v / sqrt(mean(v^2) + eps). */
static void residual_rmsnorm_rows(const void *ctx, size_t first, size_t count) {
  const rowwise *r = ctx;
  for (size_t i = first; i < first + count; i++) {
    float *v = r->h + i * r->cols;
    const float *a = r->add + i * (r->add_ld ? r->add_ld : r->cols);
    float sum = 0.0f;
    for (size_t j = 0; j < r->cols; j++) {
      v[j] += a[j];
      sum += v[j] * v[j];
    }
    float scale = 1.0f / sqrtf(sum / (float)r->cols + r->eps);
    for (size_t j = 0; j < r->cols; j++) v[j] *= scale;
  }
}

/* act = silu(gate) * up, where each row of gate_up is [gate | up]. */
static void swiglu_rows(const void *ctx, size_t first, size_t count) {
  const rowwise *r = ctx;
  for (size_t i = first; i < first + count; i++) {
    const float *gate = r->gate_up + i * 2 * r->inter;
    r->k->swiglu(gate, gate + r->inter, r->act + i * r->inter, r->inter);
  }
}

/* v += a and sums += v^2 over one row's block of columns (v, a and sums never overlap). The
 * full block has a fixed length so that the compiler vectorises it; each column's sum still
 * grows in order of rows. */
enum { NORM_BLOCK = 64 };
static void add_and_square(float *restrict v, const float *restrict a, float *restrict sums, size_t width) {
  if (width == NORM_BLOCK) {
    for (size_t j = 0; j < NORM_BLOCK; j++) {
      v[j] += a[j];
      sums[j] += v[j] * v[j];
    }
    return;
  }
  for (size_t j = 0; j < width; j++) {
    v[j] += a[j];
    sums[j] += v[j] * v[j];
  }
}

static void scale_block(float *restrict v, const float *restrict scales, size_t width) {
  if (width == NORM_BLOCK) {
    for (size_t j = 0; j < NORM_BLOCK; j++) v[j] *= scales[j];
    return;
  }
  for (size_t j = 0; j < width; j++) v[j] *= scales[j];
}

/* h = rmsnorm(h + add) along each column of h [S, D] (the token MLP normalises over positions),
 * for the columns [first, first+count). Walks the rows with a block of columns at a time, so that
 * memory is read in order. */
static void residual_rmsnorm_cols(const void *ctx, size_t first, size_t count) {
  const rowwise *r = ctx;
  size_t S = r->inter, D = r->cols; /* here inter holds the number of rows */
  for (size_t d0 = first; d0 < first + count; d0 += NORM_BLOCK) {
    size_t width = min_sz(NORM_BLOCK, first + count - d0);
    float sums[NORM_BLOCK] = {0};
    for (size_t s = 0; s < S; s++) add_and_square(r->h + s * D + d0, r->add + s * D + d0, sums, width);
    for (size_t j = 0; j < width; j++) sums[j] = 1.0f / sqrtf(sums[j] / (float)S + r->eps);
    for (size_t s = 0; s < S; s++) scale_block(r->h + s * D + d0, sums, width);
  }
}

/* ---- the mixing step: attention ---- */

typedef struct attention_job {
  const trm_model *m;
  trm_net_work *w;
  float *qkv;   /* [slots*S, 3D], rope applied; each head's output replaces its queries */
  size_t slots;
} attention_job;

/* Rotates the first and second halves of one head vector by the position's angles. */
static void rope_rotate(float *v, const float *cos_p, const float *sin_p, size_t half) {
  for (size_t i = 0; i < half; i++) {
    float a = v[i], b = v[i + half];
    v[i] = a * cos_p[i] - b * sin_p[i];
    v[i + half] = b * cos_p[i] + a * sin_p[i];
  }
}

static void rope_rows(const void *ctx, size_t first, size_t count) {
  const attention_job *j = ctx;
  const trm_config *c = &j->m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, hd = (size_t)c->head_dim, half = hd / 2;
  for (size_t r = first; r < first + count; r++) {
    size_t p = r % S;
    for (size_t head = 0; head < 2 * (size_t)c->num_heads; head++) /* the q heads, then the k heads */
      rope_rotate(j->qkv + r * 3 * D + head * hd, j->m->rope_cos + p * half, j->m->rope_sin + p * half, half);
  }
}

/* softmax(q k^T / sqrt(head_dim)) v for one (slot, head) per work item, the products on this
 * worker alone: the head's keys (read transposed) and values are packed once, then each block of
 * queries makes its row of scores, the softmax, and its rows of output. */
static void attention_worker(void *ctx, size_t worker, size_t n_workers) {
  const attention_job *j = ctx;
  const trm_config *c = &j->m->cfg;
  const trm_kernel *k = j->m->kernel;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, H = (size_t)c->num_heads, hd = (size_t)c->head_dim;
  float *gemm_buf = j->w->gemm + worker * trm_gemm_buffer_floats(k);
  float *scores = j->w->scores + worker * j->w->attention_floats;
  size_t block = query_block(k);
  float *keys_buf = scores + block * S, *values_buf = keys_buf + trm_packed_right_floats(k, hd, S);
  float scale = 1.0f / sqrtf((float)hd);
  for (size_t item = worker; item < j->slots * H; item += n_workers) {
    size_t slot = item / H, head = item % H;
    float *base = j->qkv + slot * S * 3 * D;
    trm_operand keys_t = {.data = base + D + head * hd, .ld = 3 * D, .trans = true};
    trm_packed keys = trm_pack_right_into(k, keys_t, hd, S, keys_buf);
    trm_packed values = trm_pack_right_into(k, matrix(base + 2 * D + head * hd, 3 * D), S, hd, values_buf);
    for (size_t q0 = 0; q0 < S; q0 += block) {
      size_t rows = min_sz(block, S - q0);
      /* these queries are read once, into the scores: their output takes their place */
      float *queries = base + q0 * 3 * D + head * hd;
      trm_gemm_single(k, gemm_buf, rows, S, hd, matrix(queries, 3 * D), weights(&keys), scores, S);
      for (size_t i = 0; i < rows; i++) k->softmax(scores + i * S, S, scale);
      trm_gemm_single(k, gemm_buf, rows, hd, S, matrix(scores, S), weights(&values), queries, 3 * D);
    }
  }
}

/* attention(h) for `slots` whole states in h [slots*S, D], into the qkv buffer w->wide: the
 * heads' output lands in the query columns, and the o product, which reads them, writes the
 * result to the key columns, [slots*S, D] with rows 3D apart. Returns where it is. */
static const float *attention(const trm_model *m, trm_net_work *w, const trm_layer *layer, const float *h,
                              size_t slots) {
  const trm_config *c = &m->cfg;
  size_t rows = slots * (size_t)c->state_len, D = (size_t)c->hidden_size;
  attention_job job = {m, w, w->wide, slots};
  gemm(m, w, rows, 3 * D, D, matrix(h, D), weights(&layer->qkv), job.qkv, 3 * D);
  if (c->pos_encodings == TRM_POS_ROPE) for_rows(w, rows, rope_rows, &job);
  trm_pool_run(w->pool, attention_worker, &job);
  float *out = job.qkv + D;
  gemm(m, w, rows, D, D, matrix(job.qkv, 3 * D), weights(&layer->o), out, 3 * D);
  return out;
}

/* ---- the mixing step: token MLP ---- */

/* h_slot = rmsnorm_over_S(h_slot + swiglu_t(h_slot^T)^T), with no transpose made: act =
 * swiglu(h^T W_gate_up^T) [D, inter_t] reads h^T in place (and fuses silu(gate) * up like the
 * channel MLP when the kernel can), then out = W_down act^T [S, D] reads act transposed.
 * Channels are independent until the norm: they go through in slices of TOKEN_COLS, which
 * bounds the activations' memory. */
static void token_mlp(const trm_model *m, trm_net_work *w, const trm_layer *layer, float *h) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t;
  for (size_t d0 = 0; d0 < D; d0 += TOKEN_COLS) {
    size_t cols = min_sz(TOKEN_COLS, D - d0);
    trm_operand h_t = {.data = h + d0, .ld = D, .trans = true};
    if (layer->mlpt_gate_up.swiglu) {
      gemm(m, w, cols, 2 * It, S, h_t, weights(&layer->mlpt_gate_up), w->inner, It);
    } else {
      gemm(m, w, cols, 2 * It, S, h_t, weights(&layer->mlpt_gate_up), w->wide, 2 * It);
      rowwise act = {.k = m->kernel, .gate_up = w->wide, .act = w->inner, .inter = It};
      for_rows(w, cols, swiglu_rows, &act);
    }
    trm_operand act_t = {.data = w->inner, .ld = It, .trans = true};
    gemm(m, w, S, cols, It, weights(&layer->mlpt_down), act_t, w->out + d0, D);
  }
  rowwise norm = {.h = h, .add = w->out, .cols = D, .inter = S, .eps = (float)c->rms_norm_eps};
  for_rows(w, D, residual_rmsnorm_cols, &norm);
}

/* ---- the channel step ---- */

/* out = down(silu(gate) * up); with a fused gate_up weight the product writes the activations
 * directly, never the [rows, 2 inter] intermediate. */
static void channel_mlp(const trm_model *m, trm_net_work *w, const trm_layer *layer, const float *h, size_t rows,
                        float *out) {
  size_t D = (size_t)m->cfg.hidden_size, I = (size_t)m->cfg.inter;
  if (layer->gate_up.swiglu) {
    gemm(m, w, rows, 2 * I, D, matrix(h, D), weights(&layer->gate_up), w->inner, I);
  } else {
    gemm(m, w, rows, 2 * I, D, matrix(h, D), weights(&layer->gate_up), w->wide, 2 * I);
    rowwise act = {.k = m->kernel, .gate_up = w->wide, .act = w->inner, .inter = I};
    for_rows(w, rows, swiglu_rows, &act);
  }
  gemm(m, w, rows, D, I, matrix(w->inner, I), weights(&layer->down), out, D);
}

/* ---- one call of f over n gathered states ---- */

/* The blocks of f on `slots` whole states h [slots*S, D], in place (post-norm). */
static void blocks(const trm_model *m, trm_net_work *w, float *h, size_t slots) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, rows = slots * S;
  float eps = (float)c->rms_norm_eps;
  for (int64_t l = 0; l < c->L_layers; l++) {
    const trm_layer *layer = &m->layers[l];
    if (c->mlp_t) {
      for (size_t s = 0; s < slots; s++) token_mlp(m, w, layer, h + s * S * D);
    } else {
      const float *mixed = attention(m, w, layer, h, slots);
      rowwise norm = {.h = h, .add = mixed, .add_ld = 3 * D, .cols = D, .eps = eps};
      for_rows(w, rows, residual_rmsnorm_rows, &norm);
    }
    /* rows are independent in the channel step: slices of MLP_ROWS bound the work memory */
    for (size_t r0 = 0; r0 < rows; r0 += MLP_ROWS) {
      size_t n = min_sz(MLP_ROWS, rows - r0);
      channel_mlp(m, w, layer, h + r0 * D, n, w->out);
      rowwise norm = {.h = h + r0 * D, .add = w->out, .cols = D, .eps = eps};
      for_rows(w, n, residual_rmsnorm_rows, &norm);
    }
  }
}

typedef struct gather_job {
  size_t state;             /* floats per state */
  float *h;
  float *const *target;
  const float *const *a, *const *b; /* b may be NULL */
} gather_job;

/* h_i = target_i + (a_i + b_i), as the reference adds the injection (y + x) to z. */
static void gather_rows(const void *ctx, size_t first, size_t count) {
  const gather_job *g = ctx;
  for (size_t i = first; i < first + count; i++) {
    float *h = g->h + i * g->state;
    const float *t = g->target[i], *a = g->a[i], *b = g->b ? g->b[i] : NULL;
    if (b)
      for (size_t e = 0; e < g->state; e++) h[e] = t[e] + (a[e] + b[e]);
    else
      for (size_t e = 0; e < g->state; e++) h[e] = t[e] + a[e];
  }
}

static void scatter_rows(const void *ctx, size_t first, size_t count) {
  const gather_job *g = ctx;
  for (size_t i = first; i < first + count; i++) memcpy(g->target[i], g->h + i * g->state, g->state * sizeof(float));
}

/* target_i += a_i + b_i in place, for chunks of one state */
static void inject_rows(const void *ctx, size_t first, size_t count) {
  const gather_job *g = ctx;
  float *t = g->target[0];
  const float *a = g->a[0], *b = g->b ? g->b[0] : NULL;
  for (size_t e = first; e < first + count; e++) t[e] = t[e] + (b ? a[e] + b[e] : a[e]);
}

void trm_net_call(const trm_model *m, trm_net_work *w, size_t n, float *const *target, const float *const *a,
                  const float *const *b) {
  size_t state = (size_t)(m->cfg.state_len * m->cfg.hidden_size);
  if (!w->h) { /* one state per chunk: each runs in its own target, as h = target + injection */
    for (size_t i = 0; i < n; i++) {
      gather_job g = {state, NULL, target + i, a + i, b ? b + i : NULL};
      for_rows(w, state, inject_rows, &g);
      blocks(m, w, target[i], 1);
    }
    return;
  }
  /* states are independent: take them a chunk at a time through all the blocks */
  for (size_t s0 = 0; s0 < n; s0 += w->chunk_slots) {
    size_t slots = min_sz(w->chunk_slots, n - s0);
    gather_job g = {state, w->h, target + s0, a + s0, b ? b + s0 : NULL};
    for_rows(w, slots, gather_rows, &g);
    blocks(m, w, w->h, slots);
    for_rows(w, slots, scatter_rows, &g);
  }
}

/* ---- input and output ---- */

void trm_net_embed(const trm_model *m, const int32_t *tokens, int32_t puzzle_id, float *x) {
  const trm_config *c = &m->cfg;
  size_t D = (size_t)c->hidden_size, P = (size_t)c->puzzle_len, S = (size_t)c->state_len;
  /* the puzzle's embedding, zero-padded to P rows, then one row per token */
  memset(x, 0, P * D * sizeof *x);
  if (c->puzzle_emb_ndim > 0)
    memcpy(x, m->puzzle_emb + (size_t)puzzle_id * (size_t)c->puzzle_emb_ndim, (size_t)c->puzzle_emb_ndim * sizeof *x);
  for (size_t i = 0; i < (size_t)c->seq_len; i++)
    memcpy(x + (P + i) * D, m->embed_tokens + (size_t)tokens[i] * D, D * sizeof *x);
  if (c->pos_encodings == TRM_POS_LEARNED)
    for (size_t i = 0; i < S * D; i++) x[i] = 0.707106781f * (x[i] + m->embed_pos[i]);
  float scale = (float)sqrt((double)D);
  for (size_t i = 0; i < S * D; i++) x[i] *= scale;
}

static float dot(const float *a, const float *b, size_t n) {
  float sum = 0.0f;
  for (size_t i = 0; i < n; i++) sum += a[i] * b[i];
  return sum;
}

void trm_net_logits(const trm_model *m, const float *y, float *logits) {
  const trm_config *c = &m->cfg;
  size_t D = (size_t)c->hidden_size, V = (size_t)c->vocab_size, P = (size_t)c->puzzle_len;
  for (size_t i = 0; i < (size_t)c->seq_len; i++)
    for (size_t v = 0; v < V; v++) logits[i * V + v] = dot(y + (P + i) * D, m->lm_head + v * D, D);
}

void trm_net_answer(const trm_model *m, const float *y, int32_t *tokens, float *confidence) {
  const trm_config *c = &m->cfg;
  size_t D = (size_t)c->hidden_size, V = (size_t)c->vocab_size, P = (size_t)c->puzzle_len;
  for (size_t i = 0; i < (size_t)c->seq_len; i++) {
    const float *row = y + (P + i) * D;
    size_t best = 0;
    float best_logit = dot(row, m->lm_head, D);
    for (size_t v = 1; v < V; v++) {
      float l = dot(row, m->lm_head + v * D, D);
      if (l > best_logit) {
        best_logit = l;
        best = v;
      }
    }
    if (tokens) tokens[i] = (int32_t)best;
    if (confidence) { /* softmax probability of the chosen token, recomputing logits to need no buffer */
      float total = 0.0f;
      for (size_t v = 0; v < V; v++) total += expf(dot(row, m->lm_head + v * D, D) - best_logit);
      confidence[i] = 1.0f / total;
    }
  }
}

void trm_net_q(const trm_model *m, const float *y, float q[2]) {
  size_t D = (size_t)m->cfg.hidden_size;
  q[0] = dot(y, m->q_weight, D) + m->q_bias[0];
  q[1] = dot(y, m->q_weight + D, D) + m->q_bias[1];
}
