/* The tiny network f with a tape, its backward pass, the input embedding and the output heads,
 * for training (TRM-SPEC.md sections 3-5). */
#include "train.h"

#include <math.h>
#include <string.h>

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* ---- work memory: one arena, carved in two passes (count, then assign) ---- */

typedef struct carver {
  float *base;
  size_t used; /* floats, each piece rounded up to 16 (64 bytes) */
} carver;

static float *carve(carver *cv, size_t n) {
  float *p = cv->base ? cv->base + cv->used : NULL;
  cv->used += (n + 15) / 16 * 16;
  return n ? p : NULL;
}

static void carve_work(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, carver *cv) {
  const trm_config *c = &p->cfg;
  size_t B = w->batch, S = (size_t)c->state_len, D = (size_t)c->hidden_size, R = B * S;
  size_t H = (size_t)c->num_heads, I = (size_t)c->inter, It = (size_t)c->inter_t, V = (size_t)c->vocab_size;
  size_t seq = (size_t)c->seq_len, Lc = (size_t)c->L_layers;
  for (size_t t = 0; t < w->n_tapes; t++) {
    trm_tr_tape *tp = &w->tapes[t];
    tp->state = carve(cv, (2 * Lc + 1) * R * D);
    for (size_t l = 0; l < Lc; l++) {
      trm_tr_layer_tape *lt = &tp->layers[l];
      if (c->mlp_t) {
        lt->gu_t = carve(cv, B * D * 2 * It);
        lt->inv_mix = carve(cv, B * D);
      } else {
        lt->qkv = carve(cv, R * 3 * D);
        lt->probs = carve(cv, B * H * S * S);
        lt->heads = carve(cv, R * D);
        lt->inv_mix = carve(cv, R);
      }
      lt->gu = carve(cv, R * 2 * I);
      lt->inv_mlp = carve(cv, R);
    }
  }
  /* the token MLP takes the B states side by side: its activations are [B*D, It] */
  size_t act = max_sz(R * I, B * D * It), wgrad = 2 * I * D;
  if (c->mlp_t) wgrad = max_sz(wgrad, 2 * It * S);
  else wgrad = max_sz(wgrad, 3 * D * D);
  w->sc.act = carve(cv, act);
  w->sc.dact = carve(cv, act);
  w->sc.dgu = carve(cv, 2 * act);
  w->sc.d1 = carve(cv, R * D);
  w->sc.d2 = carve(cv, c->mlp_t ? 0 : R * 3 * D);
  w->sc.wgrad = carve(cv, max_sz(wgrad, V * D));
  w->sc.attn = carve(cv, c->mlp_t ? 0 : ctx->workers * S * S);
  w->sc.attn_workers = ctx->workers;
  w->sc.xt = carve(cv, c->mlp_t ? R * D : 0);
  w->sc.xt2 = carve(cv, c->mlp_t ? R * D : 0);
  w->sc.spare = w->tapes[0].layers[0];
  /* packed left operands: the narrow side of a weight gradient (D x R), the token MLP's states
   * transposed (a D x S pack per state) */
  size_t mr = ctx->kernel->mr;
  w->sc.apack = carve(cv, (D + mr - 1) / mr * mr * R);
  w->x = carve(cv, R * D);
  w->inj = carve(cv, R * D);
  w->dx = carve(cv, R * D);
  w->dstate = carve(cv, R * D);
  w->dy = carve(cv, R * D);
  w->logits = carve(cv, B * seq * V);
  w->dlogits = carve(cv, B * seq * V);
  w->q = carve(cv, 2 * B);
  w->dq = carve(cv, 2 * B);
  w->dpuzzle = carve(cv, c->puzzle_emb_ndim > 0 ? B * (size_t)c->puzzle_emb_ndim : 0);
}

trm_status trm_tr_work_init(const trm_tr_ctx *ctx, const trm_tr_params *p, size_t batch, trm_tr_work *w) {
  memset(w, 0, sizeof *w);
  if (batch < 1) return trm_fail(TRM_E_INVALID, "training batch must be >= 1");
  w->batch = batch;
  w->n_tapes = (size_t)p->cfg.L_cycles + 1;
  w->tapes = trm_alloc_zero(w->n_tapes, sizeof *w->tapes);
  if (!w->tapes) return trm_fail(TRM_E_NOMEM, "out of memory for training tapes");
  for (size_t t = 0; t < w->n_tapes; t++) {
    w->tapes[t].layers = trm_alloc_zero((size_t)p->cfg.L_layers, sizeof(trm_tr_layer_tape));
    if (!w->tapes[t].layers) {
      trm_tr_work_free(w);
      return trm_fail(TRM_E_NOMEM, "out of memory for training tapes");
    }
  }
  carver cv = {0};
  carve_work(ctx, p, w, &cv);
  w->arena = trm_alloc_zero(cv.used, sizeof(float));
  if (!w->arena) {
    trm_tr_work_free(w);
    return trm_fail(TRM_E_NOMEM, "out of memory for training work memory (%zu floats, batch %zu)", cv.used, batch);
  }
  cv = (carver){.base = w->arena};
  carve_work(ctx, p, w, &cv);
  /* the weights packed for the kernel, refreshed once per step */
  trm_tr_packs *pk = trm_alloc_zero(1, sizeof *pk);
  w->sc.packs = pk;
  size_t pack_floats = trm_tr_packs_floats(ctx, p);
  if (pk) {
    pk->layers = trm_alloc_zero((size_t)p->cfg.L_layers, sizeof *pk->layers);
    pk->arena = trm_alloc_zero(pack_floats, sizeof(float));
  }
  if (!pk || !pk->layers || !pk->arena) {
    trm_tr_work_free(w);
    return trm_fail(TRM_E_NOMEM, "out of memory for the packed weights (%zu floats)", pack_floats);
  }
  trm_tr_packs_assign(ctx, p, pk, pk->arena);
  return TRM_OK;
}

void trm_tr_weights_changed(trm_tr_work *w) {
  if (w && w->sc.packs) w->sc.packs->forward_ready = w->sc.packs->backward_ready = false;
}

void trm_tr_work_free(trm_tr_work *w) {
  if (!w) return;
  if (w->tapes)
    for (size_t t = 0; t < w->n_tapes; t++) trm_release(w->tapes[t].layers);
  trm_release(w->tapes);
  trm_release(w->arena);
  if (w->sc.packs) {
    trm_release(w->sc.packs->layers);
    trm_release(w->sc.packs->arena);
    trm_release(w->sc.packs);
  }
  memset(w, 0, sizeof *w);
}

/* ---- f ---- */

typedef struct inject_job {
  float *h;
  const float *target, *a, *b;
} inject_job;

/* h = target + (a + b): the reference adds (y + x) first, then adds that to z. */
static void inject_range(void *arg, size_t lo, size_t hi) {
  const inject_job *j = arg;
  if (j->b)
    for (size_t i = lo; i < hi; i++) j->h[i] = j->target[i] + (j->a[i] + j->b[i]);
  else
    for (size_t i = lo; i < hi; i++) j->h[i] = j->target[i] + j->a[i];
}

void trm_tr_f_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, size_t B, const float *target,
                      const float *a, const float *b, trm_tr_tape *tape, float *out) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, R = B * (size_t)c->state_len, n = R * D;
  /* without a tape the layers run in place in out; with one, each sub-step's input is kept */
  float *h = tape ? tape->state : out;
  inject_job ij = {h, target, a, b};
  trm_tr_parallel(ctx, n, inject_range, &ij);
  for (int64_t l = 0; l < c->L_layers; l++) {
    trm_tr_layer_tape *lt = tape ? &tape->layers[l] : NULL;
    float *mid = tape ? h + n : h, *next = tape ? h + 2 * n : h;
    trm_tr_layer_forward(ctx, p, &p->w.layers[l], B, h, mid, next, lt, &w->sc);
    h = next;
  }
  if (h != out) memcpy(out, h, n * sizeof *h);
}

void trm_tr_f_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, size_t B,
                       const trm_tr_tape *tape, trm_tr_dense *g, float *d) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, R = B * (size_t)c->state_len, n = R * D;
  for (int64_t l = c->L_layers - 1; l >= 0; l--) {
    const trm_tr_layer *lw = &p->w.layers[l];
    trm_tr_layer *lg = &g->layers[l];
    const trm_tr_layer_tape *lt = &tape->layers[l];
    const float *in = tape->state + (size_t)(2 * l) * n, *mid = in + n, *next = mid + n;
    trm_tr_channel_backward(ctx, p, lw, lg, R, mid, next, lt, d, &w->sc);
    if (c->mlp_t)
      trm_tr_token_mlp_backward(ctx, p, lw, lg, B, in, mid, lt, d, &w->sc);
    else
      trm_tr_attention_backward(ctx, p, lw, lg, B, in, mid, lt, d, &w->sc);
  }
}

/* ---- input embedding ---- */

static float embed_factor(const trm_config *c, bool learned) {
  float scale = (float)sqrt((double)c->hidden_size);
  return learned ? scale * 0.707106781f : scale;
}

void trm_tr_embed(const trm_tr_params *p, size_t B, const int32_t *tokens, const int32_t *puzzle_ids, float *x) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, P = (size_t)c->puzzle_len, S = (size_t)c->state_len, seq = (size_t)c->seq_len;
  size_t ndim = (size_t)c->puzzle_emb_ndim;
  float scale = (float)sqrt((double)D);
  for (size_t b = 0; b < B; b++) {
    float *xb = x + b * S * D;
    memset(xb, 0, P * D * sizeof *xb);
    if (ndim > 0) memcpy(xb, p->puzzle_emb + (size_t)puzzle_ids[b] * ndim, ndim * sizeof *xb);
    for (size_t i = 0; i < seq; i++)
      memcpy(xb + (P + i) * D, p->w.embed_tokens + (size_t)tokens[b * seq + i] * D, D * sizeof *xb);
    /* the same order of float operations as the inference library */
    if (c->pos_encodings == TRM_POS_LEARNED)
      for (size_t i = 0; i < S * D; i++) xb[i] = 0.707106781f * (xb[i] + p->w.embed_pos[i]);
    for (size_t i = 0; i < S * D; i++) xb[i] *= scale;
  }
}

void trm_tr_embed_backward(const trm_tr_params *p, size_t B, const int32_t *tokens, const float *dx,
                           trm_tr_dense *g, float *dpuzzle) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, P = (size_t)c->puzzle_len, S = (size_t)c->state_len, seq = (size_t)c->seq_len;
  size_t ndim = (size_t)c->puzzle_emb_ndim;
  bool learned = c->pos_encodings == TRM_POS_LEARNED;
  float f = embed_factor(c, learned);
  for (size_t b = 0; b < B; b++) {
    const float *db = dx + b * S * D;
    if (ndim > 0)
      for (size_t j = 0; j < ndim; j++) dpuzzle[b * ndim + j] = f * db[j];
    for (size_t i = 0; i < seq; i++) {
      float *gt = g->embed_tokens + (size_t)tokens[b * seq + i] * D;
      for (size_t j = 0; j < D; j++) gt[j] += f * db[(P + i) * D + j];
    }
    if (learned)
      for (size_t i = 0; i < S * D; i++) g->embed_pos[i] += f * db[i];
  }
}

/* ---- heads ---- */

void trm_tr_heads(const trm_tr_ctx *ctx, const trm_tr_params *p, size_t B, const float *y, float *logits, float *q) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, P = (size_t)c->puzzle_len, S = (size_t)c->state_len, seq = (size_t)c->seq_len;
  size_t V = (size_t)c->vocab_size;
  for (size_t b = 0; b < B; b++) {
    trm_operand rows = {.data = y + (b * S + P) * D, .ld = D};
    trm_operand head = {.data = p->w.lm_head, .ld = D, .trans = true};
    trm_tr_gemm(ctx, seq, V, D, rows, head, logits + b * seq * V, V);
    const float *y0 = y + b * S * D;
    for (size_t k = 0; k < 2; k++) {
      float sum = 0.0f;
      for (size_t j = 0; j < D; j++) sum += y0[j] * p->w.q_weight[k * D + j];
      q[2 * b + k] = sum + p->w.q_bias[k];
    }
  }
}

void trm_tr_heads_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, size_t B, const float *y,
                           const float *dlogits, const float *dq, trm_tr_dense *g, float *dy) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, P = (size_t)c->puzzle_len, S = (size_t)c->state_len, seq = (size_t)c->seq_len;
  size_t V = (size_t)c->vocab_size;
  /* the forward pass of this step is over: the optimiser may change the weights next */
  if (w->sc.packs) w->sc.packs->forward_ready = false;
  memset(dy, 0, B * S * D * sizeof *dy);
  for (size_t b = 0; b < B; b++) {
    const float *dl = dlogits + b * seq * V;
    /* d rows [seq, D] = dlogits lm_head;  g lm_head [V, D] += dlogits^T rows */
    trm_tr_gemm(ctx, seq, D, V, (trm_operand){.data = dl, .ld = V}, (trm_operand){.data = p->w.lm_head, .ld = D},
                dy + (b * S + P) * D, D);
    trm_tr_gemm(ctx, V, D, seq, (trm_operand){.data = dl, .ld = V, .trans = true},
                (trm_operand){.data = y + (b * S + P) * D, .ld = D}, w->sc.wgrad, D);
    for (size_t i = 0; i < V * D; i++) g->lm_head[i] += w->sc.wgrad[i];
    const float *y0 = y + b * S * D;
    float *dy0 = dy + b * S * D;
    for (size_t k = 0; k < 2; k++) {
      float dk = dq[2 * b + k];
      g->q_bias[k] += dk;
      for (size_t j = 0; j < D; j++) {
        g->q_weight[k * D + j] += dk * y0[j];
        dy0[j] += dk * p->w.q_weight[k * D + j];
      }
    }
  }
}
