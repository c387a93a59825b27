/* The tiny network f of TRM-SPEC.md section 4, applied to one puzzle's state [S, D].
 *
 *   f(h, inj):  h = h + inj
 *               for each block:  h = rmsnorm(h + mix(h))        mix = attention, or the token MLP
 *                                h = rmsnorm(h + swiglu(h))     on the transposed state
 *
 * session.c drives the recursion; this file only knows one call of f, the input embedding,
 * and the two heads. All float32, in the reference's order of operations. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Work buffers for one call, carved from the caller's scratch (trm_net_scratch_floats). */
typedef struct net_scratch {
  float *wide;   /* qkv [S,3D] | mlp gate_up [S,2I] | token-MLP gate_up^T [2It,D] */
  float *inner;  /* attention heads [S,D] | mlp act [S,I] | token-MLP act^T [It,D] */
  float *out;    /* block output before the residual, [S,D] */
  float *scores; /* one row of attention scores, [S] */
} net_scratch;

static size_t max3(size_t a, size_t b, size_t c) {
  size_t m = a > b ? a : b;
  return m > c ? m : c;
}

size_t trm_net_scratch_floats(const trm_model *m) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, I = (size_t)c->inter;
  size_t It = c->mlp_t ? (size_t)c->inter_t : 0;
  size_t wide = max3(S * 3 * D, S * 2 * I, 2 * It * D);
  size_t inner = max3(S * D, S * I, It * D);
  /* each part rounded to 16 floats keeps every buffer 64-byte aligned */
  return (wide + 15) / 16 * 16 + (inner + 15) / 16 * 16 + (S * D + 15) / 16 * 16 + (S + 15) / 16 * 16;
}

static net_scratch carve(const trm_model *m, float *base) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, I = (size_t)c->inter;
  size_t It = c->mlp_t ? (size_t)c->inter_t : 0;
  net_scratch s;
  s.wide = base;
  s.inner = s.wide + (max3(S * 3 * D, S * 2 * I, 2 * It * D) + 15) / 16 * 16;
  s.out = s.inner + (max3(S * D, S * I, It * D) + 15) / 16 * 16;
  s.scores = s.out + (S * D + 15) / 16 * 16;
  return s;
}

/* ---- elementwise pieces ---- */

static float silu(float a) { return a / (1.0f + expf(-a)); }

/* v / sqrt(mean(v^2) + eps) over each row of h [rows, cols]. */
static void rmsnorm_rows(float *h, size_t rows, size_t cols, float eps) {
  for (size_t r = 0; r < rows; r++) {
    float *v = h + r * cols;
    float sum = 0.0f;
    for (size_t j = 0; j < cols; j++) sum += v[j] * v[j];
    float scale = 1.0f / sqrtf(sum / (float)cols + eps);
    for (size_t j = 0; j < cols; j++) v[j] *= scale;
  }
}

/* The same over each column of h [rows, cols]: the token MLP normalises along the sequence. */
static void rmsnorm_cols(float *h, size_t rows, size_t cols, float eps, float *sums) {
  memset(sums, 0, cols * sizeof *sums);
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < cols; j++) sums[j] += h[r * cols + j] * h[r * cols + j];
  for (size_t j = 0; j < cols; j++) sums[j] = 1.0f / sqrtf(sums[j] / (float)rows + eps);
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < cols; j++) h[r * cols + j] *= sums[j];
}

static void add_into(float *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* ---- the mixing step ---- */

/* Rotates the first and second halves of one head vector by the position's angles. */
static void rope_rotate(float *v, const float *cos_p, const float *sin_p, size_t half) {
  for (size_t i = 0; i < half; i++) {
    float a = v[i], b = v[i + half];
    v[i] = a * cos_p[i] - b * sin_p[i];
    v[i + half] = b * cos_p[i] + a * sin_p[i];
  }
}

/* out = softmax(q k^T / sqrt(head_dim)) v per head, no mask, then o_proj. */
static void attention(const trm_model *m, const trm_layer *layer, const float *h, net_scratch *s) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, H = (size_t)c->num_heads;
  size_t hd = (size_t)c->head_dim, ld = 3 * D;
  float *qkv = s->wide, *heads = s->inner;
  trm_gemm(S, 3 * D, D, h, D, layer->qkv_t, 3 * D, qkv, ld);

  if (c->pos_encodings == TRM_POS_ROPE) {
    size_t half = hd / 2;
    for (size_t p = 0; p < S; p++)
      for (size_t head = 0; head < 2 * H; head++) /* the q heads, then the k heads */
        rope_rotate(qkv + p * ld + head * hd, m->rope_cos + p * half, m->rope_sin + p * half, half);
  }

  float scale = 1.0f / sqrtf((float)hd);
  for (size_t head = 0; head < H; head++) {
    const float *q = qkv + head * hd, *k = qkv + D + head * hd, *v = qkv + 2 * D + head * hd;
    for (size_t i = 0; i < S; i++) {
      float best = -INFINITY;
      for (size_t j = 0; j < S; j++) {
        float dot = 0.0f;
        for (size_t t = 0; t < hd; t++) dot += q[i * ld + t] * k[j * ld + t];
        s->scores[j] = dot * scale;
        if (s->scores[j] > best) best = s->scores[j];
      }
      float total = 0.0f;
      for (size_t j = 0; j < S; j++) {
        s->scores[j] = expf(s->scores[j] - best);
        total += s->scores[j];
      }
      float *o = heads + i * D + head * hd;
      memset(o, 0, hd * sizeof *o);
      for (size_t j = 0; j < S; j++) {
        float p = s->scores[j] / total;
        for (size_t t = 0; t < hd; t++) o[t] += p * v[j * ld + t];
      }
    }
  }
  trm_gemm(S, D, D, heads, D, layer->o_t, D, s->out, D);
}

/* The token MLP swiglu_t(h^T)^T, computed without transposing: the weights multiply h from the
 * left, so gate_up^T = W_gate_up h and out = W_down act^T. */
static void token_mlp(const trm_model *m, const trm_layer *layer, const float *h, net_scratch *s) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t;
  float *gate_up_t = s->wide, *act_t = s->inner;
  trm_gemm(2 * It, D, S, layer->mlpt_gate_up, S, h, D, gate_up_t, D);
  for (size_t j = 0; j < It; j++)
    for (size_t d = 0; d < D; d++) act_t[j * D + d] = silu(gate_up_t[j * D + d]) * gate_up_t[(It + j) * D + d];
  trm_gemm(S, D, It, layer->mlpt_down, It, act_t, D, s->out, D);
}

/* ---- the channel step ---- */

static void channel_mlp(const trm_model *m, const trm_layer *layer, const float *h, net_scratch *s) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, I = (size_t)c->inter;
  float *gate_up = s->wide, *act = s->inner;
  trm_gemm(S, 2 * I, D, h, D, layer->gate_up_t, 2 * I, gate_up, 2 * I);
  for (size_t r = 0; r < S; r++)
    for (size_t j = 0; j < I; j++) act[r * I + j] = silu(gate_up[r * 2 * I + j]) * gate_up[r * 2 * I + I + j];
  trm_gemm(S, D, I, act, I, layer->down_t, D, s->out, D);
}

/* ---- one call of f ---- */

/* The blocks of f on h, in place (post-norm). */
static void blocks(const trm_model *m, float *h, float *scratch) {
  const trm_config *c = &m->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size;
  float eps = (float)c->rms_norm_eps;
  net_scratch s = carve(m, scratch);
  for (int64_t l = 0; l < c->L_layers; l++) {
    const trm_layer *layer = &m->layers[l];
    if (c->mlp_t) {
      token_mlp(m, layer, h, &s);
      add_into(h, s.out, S * D);
      rmsnorm_cols(h, S, D, eps, s.wide); /* wide is free again and holds >= D floats */
    } else {
      attention(m, layer, h, &s);
      add_into(h, s.out, S * D);
      rmsnorm_rows(h, S, D, eps);
    }
    channel_mlp(m, layer, h, &s);
    add_into(h, s.out, S * D);
    rmsnorm_rows(h, S, D, eps);
  }
}

void trm_net_latent_update(const trm_model *m, float *z, const float *y, const float *x, float *scratch) {
  size_t n = (size_t)(m->cfg.state_len * m->cfg.hidden_size);
  for (size_t i = 0; i < n; i++) z[i] += y[i] + x[i]; /* the reference adds (y + x) to z */
  blocks(m, z, scratch);
}

void trm_net_answer_update(const trm_model *m, float *y, const float *z, float *scratch) {
  size_t n = (size_t)(m->cfg.state_len * m->cfg.hidden_size);
  add_into(y, z, n);
  blocks(m, y, scratch);
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

void trm_net_q(const trm_model *m, const float *y, float q[2]) {
  size_t D = (size_t)m->cfg.hidden_size;
  q[0] = dot(y, m->q_weight, D) + m->q_bias[0];
  q[1] = dot(y, m->q_weight + D, D) + m->q_bias[1];
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
