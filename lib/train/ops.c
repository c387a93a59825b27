/* The operations of the tiny network f and their backward passes, over a batch of B states.
 * Every product goes through the library's GEMM on plain row-major operands (read transposed
 * where the formula needs it): with W [out, in] and y = x W^T,
 *   dx = dy W        (A = dy, B = W)
 *   dW += dy^T x     (A = dy read transposed, B = x)
 * Weight gradients are formed in a scratch matrix and then added, in a fixed order, so the
 * result does not depend on the number of threads. */
#include "train.h"

#include <math.h>
#include <string.h>

/* ---- compute context ---- */

trm_status trm_tr_ctx_init(trm_tr_ctx *ctx, size_t threads) {
  memset(ctx, 0, sizeof *ctx);
  ctx->kernel = trm_kernel_select();
  ctx->workers = threads ? threads : trm_cpu_count();
  if (ctx->workers > 1) {
    trm_status st = trm_pool_create(ctx->workers, &ctx->pool);
    if (st != TRM_OK) return st;
  }
  ctx->gemm_bufs = trm_alloc_zero(ctx->workers, trm_gemm_buffer_floats(ctx->kernel) * sizeof(float));
  if (!ctx->gemm_bufs) {
    trm_tr_ctx_free(ctx);
    return trm_fail(TRM_E_NOMEM, "out of memory for GEMM buffers");
  }
  return TRM_OK;
}

void trm_tr_ctx_free(trm_tr_ctx *ctx) {
  if (!ctx) return;
  if (ctx->pool) trm_pool_free(ctx->pool);
  trm_release(ctx->gemm_bufs);
  memset(ctx, 0, sizeof *ctx);
}

void trm_tr_gemm(const trm_tr_ctx *ctx, size_t M, size_t N, size_t K, trm_operand A, trm_operand B, float *C,
                 size_t ldc) {
  if (ctx->pool)
    trm_gemm_threaded(ctx->kernel, ctx->pool, ctx->gemm_bufs, M, N, K, A, B, C, ldc);
  else
    trm_gemm_single(ctx->kernel, ctx->gemm_bufs, M, N, K, A, B, C, ldc);
}

static trm_operand plain(const float *data, size_t ld) { return (trm_operand){.data = data, .ld = ld}; }
static trm_operand transposed(const float *data, size_t ld) {
  return (trm_operand){.data = data, .ld = ld, .trans = true};
}

/* out [M, N] = x [M, K] W^T for W [N, K]. */
static void linear(const trm_tr_ctx *ctx, const float *x, const float *W, size_t M, size_t N, size_t K, float *out) {
  trm_tr_gemm(ctx, M, N, K, plain(x, K), transposed(W, K), out, N);
}

/* dx [M, K] = dy [M, N] W for W [N, K]. */
static void linear_dx(const trm_tr_ctx *ctx, const float *dy, const float *W, size_t M, size_t N, size_t K,
                      float *dx) {
  trm_tr_gemm(ctx, M, K, N, plain(dy, N), plain(W, K), dx, K);
}

static void add_into(float *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* gW [N, K] += dy^T x for dy [M, N], x [M, K]. */
static void linear_dw(const trm_tr_ctx *ctx, const float *dy, const float *x, size_t M, size_t N, size_t K,
                      float *gW, float *scratch) {
  trm_tr_gemm(ctx, N, K, M, transposed(dy, N), plain(x, K), scratch, K);
  add_into(gW, scratch, N * K);
}

/* ---- RMSNorm ---- */

void trm_tr_rmsnorm_rows(float *v, float *inv, size_t rows, size_t cols, float eps) {
  for (size_t i = 0; i < rows; i++) {
    float *r = v + i * cols;
    float sum = 0.0f;
    for (size_t j = 0; j < cols; j++) sum += r[j] * r[j];
    float s = 1.0f / sqrtf(sum / (float)cols + eps);
    for (size_t j = 0; j < cols; j++) r[j] *= s;
    inv[i] = s;
  }
}

/* y = u s with s = (mean(u^2) + eps)^-1/2: du_j = s dy_j - u_j s^3 sum(dy u) / n
 *                                             = s (dy_j - y_j mean(dy y)). */
void trm_tr_rmsnorm_rows_backward(const float *y, const float *inv, float *d, size_t rows, size_t cols) {
  for (size_t i = 0; i < rows; i++) {
    const float *yr = y + i * cols;
    float *dr = d + i * cols;
    float dot = 0.0f;
    for (size_t j = 0; j < cols; j++) dot += dr[j] * yr[j];
    float mean = dot / (float)cols;
    for (size_t j = 0; j < cols; j++) dr[j] = inv[i] * (dr[j] - yr[j] * mean);
  }
}

void trm_tr_rmsnorm_cols(float *v, float *inv, size_t rows, size_t cols, float eps) {
  for (size_t j = 0; j < cols; j++) inv[j] = 0.0f;
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++) inv[j] += v[i * cols + j] * v[i * cols + j];
  for (size_t j = 0; j < cols; j++) inv[j] = 1.0f / sqrtf(inv[j] / (float)rows + eps);
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++) v[i * cols + j] *= inv[j];
}

void trm_tr_rmsnorm_cols_backward(const float *y, const float *inv, float *d, size_t rows, size_t cols) {
  enum { BLOCK = 64 };
  for (size_t j0 = 0; j0 < cols; j0 += BLOCK) {
    size_t width = cols - j0 < BLOCK ? cols - j0 : BLOCK;
    float dots[BLOCK] = {0};
    for (size_t i = 0; i < rows; i++)
      for (size_t j = 0; j < width; j++) dots[j] += d[i * cols + j0 + j] * y[i * cols + j0 + j];
    for (size_t j = 0; j < width; j++) dots[j] /= (float)rows;
    for (size_t i = 0; i < rows; i++)
      for (size_t j = 0; j < width; j++) {
        size_t e = i * cols + j0 + j;
        d[e] = inv[j0 + j] * (d[e] - y[e] * dots[j]);
      }
  }
}

/* ---- SwiGLU ---- */

static float sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }

void trm_tr_swiglu(const float *gu, float *act, size_t rows, size_t inter) {
  for (size_t i = 0; i < rows; i++) {
    const float *gate = gu + i * 2 * inter, *up = gate + inter;
    float *out = act + i * inter;
    for (size_t j = 0; j < inter; j++) out[j] = gate[j] * sigmoid(gate[j]) * up[j];
  }
}

/* a = silu(g) u: da/du = silu(g), da/dg = u sig(g) (1 + g (1 - sig(g))). */
void trm_tr_swiglu_backward(const float *gu, const float *dact, float *dgu, size_t rows, size_t inter) {
  for (size_t i = 0; i < rows; i++) {
    const float *gate = gu + i * 2 * inter, *up = gate + inter, *da = dact + i * inter;
    float *dg = dgu + i * 2 * inter, *du = dg + inter;
    for (size_t j = 0; j < inter; j++) {
      float s = sigmoid(gate[j]), g = gate[j];
      du[j] = da[j] * g * s;
      dg[j] = da[j] * up[j] * s * (1.0f + g * (1.0f - s));
    }
  }
}

/* ---- RoPE ---- */

void trm_tr_rope(const trm_tr_params *p, float *qkv, size_t rows, bool inverse) {
  const trm_config *c = &p->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, hd = (size_t)c->head_dim, half = hd / 2;
  for (size_t r = 0; r < rows; r++) {
    const float *cs = p->rope_cos + (r % S) * half, *sn = p->rope_sin + (r % S) * half;
    for (size_t head = 0; head < 2 * (size_t)c->num_heads; head++) { /* q heads, then k heads */
      float *v = qkv + r * 3 * D + head * hd;
      for (size_t i = 0; i < half; i++) {
        float a = v[i], b = v[i + half], sn_i = inverse ? -sn[i] : sn[i];
        v[i] = a * cs[i] - b * sn_i;
        v[i + half] = b * cs[i] + a * sn_i;
      }
    }
  }
}

/* ---- attention core: softmax(q k^T / sqrt(hd)) v per (state, head), split over workers ---- */

typedef struct attn_job {
  const trm_tr_ctx *ctx;
  const trm_tr_params *p;
  size_t B;
  const float *qkv;
  float *probs, *heads;    /* forward outputs */
  const float *dheads;     /* backward input */
  float *dqkv;             /* backward output */
  float *scratch;          /* per worker S*S */
} attn_job;

static float *worker_gemm_buf(const trm_tr_ctx *ctx, size_t worker) {
  return ctx->gemm_bufs + worker * trm_gemm_buffer_floats(ctx->kernel);
}

static void attn_forward_worker(void *arg, size_t worker, size_t n_workers) {
  const attn_job *j = arg;
  const trm_config *c = &j->p->cfg;
  const trm_kernel *k = j->ctx->kernel;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, H = (size_t)c->num_heads, hd = (size_t)c->head_dim;
  float *buf = worker_gemm_buf(j->ctx, worker);
  float scale = 1.0f / sqrtf((float)hd);
  for (size_t item = worker; item < j->B * H; item += n_workers) {
    size_t b = item / H, head = item % H;
    const float *base = j->qkv + b * S * 3 * D + head * hd;
    float *P = j->probs + item * S * S;
    trm_gemm_single(k, buf, S, S, hd, plain(base, 3 * D), transposed(base + D, 3 * D), P, S);
    for (size_t i = 0; i < S; i++) k->softmax(P + i * S, S, scale);
    trm_gemm_single(k, buf, S, hd, S, plain(P, S), plain(base + 2 * D, 3 * D), j->heads + b * S * D + head * hd, D);
  }
}

/* O = P V, P = softmax(scale Q K^T):
 *   dV = P^T dO;  dP = dO V^T;  dZ = P (dP - rowsum(dP P));  dQ = scale dZ K;  dK = scale dZ^T Q */
static void attn_backward_worker(void *arg, size_t worker, size_t n_workers) {
  const attn_job *j = arg;
  const trm_config *c = &j->p->cfg;
  const trm_kernel *k = j->ctx->kernel;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, H = (size_t)c->num_heads, hd = (size_t)c->head_dim;
  float *buf = worker_gemm_buf(j->ctx, worker);
  float *dP = j->scratch + worker * S * S;
  float scale = 1.0f / sqrtf((float)hd);
  for (size_t item = worker; item < j->B * H; item += n_workers) {
    size_t b = item / H, head = item % H;
    const float *base = j->qkv + b * S * 3 * D + head * hd;
    const float *P = j->probs + item * S * S;
    const float *dO = j->dheads + b * S * D + head * hd;
    float *dbase = j->dqkv + b * S * 3 * D + head * hd;
    trm_gemm_single(k, buf, S, hd, S, transposed(P, S), plain(dO, D), dbase + 2 * D, 3 * D);
    trm_gemm_single(k, buf, S, S, hd, plain(dO, D), transposed(base + 2 * D, 3 * D), dP, S);
    for (size_t i = 0; i < S; i++) {
      const float *pr = P + i * S;
      float *dr = dP + i * S;
      float dot = 0.0f;
      for (size_t t = 0; t < S; t++) dot += dr[t] * pr[t];
      for (size_t t = 0; t < S; t++) dr[t] = scale * pr[t] * (dr[t] - dot);
    }
    trm_gemm_single(k, buf, S, hd, S, plain(dP, S), plain(base + D, 3 * D), dbase, 3 * D);
    trm_gemm_single(k, buf, S, hd, S, transposed(dP, S), plain(base, 3 * D), dbase + D, 3 * D);
  }
}

static void run_workers(const trm_tr_ctx *ctx, trm_pool_fn fn, void *job) {
  if (ctx->pool)
    trm_pool_run(ctx->pool, fn, job);
  else
    fn(job, 0, 1);
}

/* ---- the mixing step: attention ---- */

void trm_tr_attention_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                              float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, R = B * (size_t)c->state_len;
  linear(ctx, h, w->qkv, R, 3 * D, D, lt->qkv);
  if (c->pos_encodings == TRM_POS_ROPE) trm_tr_rope(p, lt->qkv, R, false);
  attn_job job = {.ctx = ctx, .p = p, .B = B, .qkv = lt->qkv, .probs = lt->probs, .heads = lt->heads};
  run_workers(ctx, attn_forward_worker, &job);
  float *out = sc->d1;
  linear(ctx, lt->heads, w->o, R, D, D, out);
  add_into(h, out, R * D);
  trm_tr_rmsnorm_rows(h, lt->inv_mix, R, D, (float)c->rms_norm_eps);
}

void trm_tr_attention_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                               trm_tr_layer *g, size_t B, const float *h_in, const float *h_out,
                               const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, R = B * (size_t)c->state_len;
  trm_tr_rmsnorm_rows_backward(h_out, lt->inv_mix, d, R, D); /* d = du: of h_in (residual) and of out */
  float *dheads = sc->d1, *dqkv = sc->d2;
  linear_dx(ctx, d, w->o, R, D, D, dheads);
  linear_dw(ctx, d, lt->heads, R, D, D, g->o, sc->wgrad);
  attn_job job = {.ctx = ctx, .p = p, .B = B, .qkv = lt->qkv, .probs = lt->probs, .dheads = dheads, .dqkv = dqkv,
                  .scratch = sc->attn};
  run_workers(ctx, attn_backward_worker, &job);
  if (c->pos_encodings == TRM_POS_ROPE) trm_tr_rope(p, dqkv, R, true);
  linear_dw(ctx, dqkv, h_in, R, 3 * D, D, g->qkv, sc->wgrad);
  linear_dx(ctx, dqkv, w->qkv, R, 3 * D, D, dheads); /* dheads is free again */
  add_into(d, dheads, R * D);
}

/* ---- the mixing step: token MLP on the transposed state ----
 * Per state h [S, D]: gu = h^T Wgu^T [D, 2It], act = swiglu(gu), out^T = act Wd^T [D, S],
 * h = rmsnorm over S of (h + out). */

void trm_tr_token_mlp_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                              float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t;
  for (size_t b = 0; b < B; b++) {
    float *hb = h + b * S * D, *gu = lt->gu_t + b * D * 2 * It;
    trm_tr_gemm(ctx, D, 2 * It, S, transposed(hb, D), transposed(w->mlpt_gate_up, S), gu, 2 * It);
    trm_tr_swiglu(gu, sc->act, D, It);
    /* out [S, D] = Wd [S, It] act^T */
    trm_tr_gemm(ctx, S, D, It, plain(w->mlpt_down, It), transposed(sc->act, It), sc->d1, D);
    add_into(hb, sc->d1, S * D);
    trm_tr_rmsnorm_cols(hb, lt->inv_mix + b * D, S, D, (float)c->rms_norm_eps);
  }
}

void trm_tr_token_mlp_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                               trm_tr_layer *g, size_t B, const float *h_in, const float *h_out,
                               const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t;
  for (size_t b = 0; b < B; b++) {
    const float *hb = h_in + b * S * D, *gu = lt->gu_t + b * D * 2 * It;
    float *db = d + b * S * D; /* du [S, D]: of h (residual) and of out */
    trm_tr_rmsnorm_cols_backward(h_out + b * S * D, lt->inv_mix + b * D, db, S, D);
    trm_tr_swiglu(gu, sc->act, D, It);
    /* out = Wd act^T: dWd [S, It] += du act;  dact [D, It] = du^T Wd */
    trm_tr_gemm(ctx, S, It, D, plain(db, D), plain(sc->act, It), sc->wgrad, It);
    add_into(g->mlpt_down, sc->wgrad, S * It);
    trm_tr_gemm(ctx, D, It, S, transposed(db, D), plain(w->mlpt_down, It), sc->dact, It);
    trm_tr_swiglu_backward(gu, sc->dact, sc->dgu, D, It);
    /* gu = h^T Wgu^T: dWgu [2It, S] += dgu^T h^T;  dh [S, D] += Wgu^T dgu^T */
    trm_tr_gemm(ctx, 2 * It, S, D, transposed(sc->dgu, 2 * It), transposed(hb, D), sc->wgrad, S);
    add_into(g->mlpt_gate_up, sc->wgrad, 2 * It * S);
    trm_tr_gemm(ctx, S, D, 2 * It, transposed(w->mlpt_gate_up, S), transposed(sc->dgu, 2 * It), sc->d1, D);
    add_into(db, sc->d1, S * D);
  }
}

/* ---- the channel step: h = rmsnorm(h + down(swiglu(h Wgu^T))) ---- */

void trm_tr_channel_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t rows,
                            float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, I = (size_t)c->inter;
  linear(ctx, h, w->gate_up, rows, 2 * I, D, lt->gu);
  trm_tr_swiglu(lt->gu, sc->act, rows, I);
  linear(ctx, sc->act, w->down, rows, D, I, sc->d1);
  add_into(h, sc->d1, rows * D);
  trm_tr_rmsnorm_rows(h, lt->inv_mlp, rows, D, (float)c->rms_norm_eps);
}

void trm_tr_channel_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                             trm_tr_layer *g, size_t rows, const float *h_in, const float *h_out,
                             const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, I = (size_t)c->inter;
  trm_tr_rmsnorm_rows_backward(h_out, lt->inv_mlp, d, rows, D);
  trm_tr_swiglu(lt->gu, sc->act, rows, I); /* recomputed rather than kept on the tape */
  linear_dw(ctx, d, sc->act, rows, D, I, g->down, sc->wgrad);
  linear_dx(ctx, d, w->down, rows, D, I, sc->dact);
  trm_tr_swiglu_backward(lt->gu, sc->dact, sc->dgu, rows, I);
  linear_dw(ctx, sc->dgu, h_in, rows, 2 * I, D, g->gate_up, sc->wgrad);
  linear_dx(ctx, sc->dgu, w->gate_up, rows, 2 * I, D, sc->d1);
  add_into(d, sc->d1, rows * D);
}
