/* Gradient checks for the training engine (lib/train): every backward pass against central
 * finite differences of an independent double-precision implementation of the same operation
 * written here from TRM-SPEC.md and the reference code; the whole supervision step likewise;
 * the training forward pass against the inference library's public API; the optimisers against
 * values worked out by hand from their formulas.
 *
 * The error of a gradient is max_i |analytic_i - fd_i| / max_i |fd_i| over the checked
 * coordinates: the float32 engine against double differences (step 1e-5, truncation error
 * about 1e-10), so what it measures is float32 rounding in the engine. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_builder.h"
#include "train/train.h"

/* ---- harness ---- */

static int failures, checks;
static bool verbose;

#define CHECK(cond, ...)                                                                                           \
  do {                                                                                                             \
    checks++;                                                                                                      \
    if (!(cond)) {                                                                                                 \
      failures++;                                                                                                  \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                         \
      fprintf(stderr, __VA_ARGS__);                                                                                \
      fputc('\n', stderr);                                                                                         \
    }                                                                                                              \
  } while (0)

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static double worst_error; /* the largest gradient error measured over the run */

/* Compares analytic gradients with differences at the coordinates fd_mask marks (NULL: all). */
static double compare_grad(const char *what, const float *analytic, const double *fd, const bool *mask, size_t n,
                           double tol) {
  double max_err = 0, max_ref = 0, max_an = 0;
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    if (mask && !mask[i]) continue;
    used++;
    double e = fabs((double)analytic[i] - fd[i]);
    if (e > max_err) max_err = e;
    if (fabs(fd[i]) > max_ref) max_ref = fabs(fd[i]);
    if (fabs((double)analytic[i]) > max_an) max_an = fabs((double)analytic[i]);
  }
  double err = max_ref > 1e-9 ? max_err / max_ref : max_an;
  if (err > worst_error) worst_error = err;
  if (verbose) printf("  %-44s %6zu coords  max|g| %.3e  error %.2e\n", what, used, max_ref, err);
  CHECK(used > 0 && max_ref > 1e-9, "%s: gradient checked on no coordinate, or identically zero", what);
  CHECK(err <= tol, "%s: gradient error %.3e exceeds %.1e (max|g| %.3e)", what, err, tol, max_ref);
  return err;
}

/* deterministic inputs */
static uint64_t rng_state = 12345;
static double urand(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng_state >> 11) * 0x1.0p-52 - 1.0;
}
static void frand(float *v, size_t n, double scale) {
  for (size_t i = 0; i < n; i++) v[i] = (float)(scale * urand());
}

/* ---- tiny models through the model builder ---- */

typedef struct variant {
  const char *name;
  const char *pos;
  bool mlp_t;
} variant;

static mb_model *build_model(const variant *v) {
  mb_config c;
  mb_default_config(&c);
  c.hidden_size = 16;
  c.num_heads = 2;
  c.L_layers = 2;
  c.H_cycles = 2;
  c.L_cycles = 2;
  c.seq_len = 8;
  c.vocab_size = 6;
  c.puzzle_emb_ndim = 24; /* P = 2 rows, the second half zero-padded */
  c.num_puzzle_identifiers = 3;
  c.pos_encodings = v->pos;
  c.mlp_t = v->mlp_t;
  c.inter_override = 32;
  c.inter_t_override = 24;
  c.weight_scale = 3.0;
  c.seed = 7;
  mb_model *m = mb_build(&c);
  mb_set_meta(m, "expansion", NULL); /* the widths are overridden */
  return m;
}

static void load_params(mb_model *mb, trm_tr_params *p) {
  size_t size;
  unsigned char *file = mb_serialize(mb, &size);
  trm_status st = trm_tr_params_load_memory(file, size, p);
  free(file);
  if (st != TRM_OK) {
    fprintf(stderr, "loading the test model: %s\n", trm_last_error());
    exit(2);
  }
}

/* ---- the double-precision reference ---- */

typedef struct ref {
  const trm_tr_params *layout; /* for the tensor table and configuration */
  const trm_config *c;
  double *w;      /* the dense weights, same layout */
  double *puzzle; /* [ids, ndim] */
  double *cos_t, *sin_t; /* [S, hd/2] */
} ref;

static double *ref_tensor(const ref *r, const char *name) {
  for (size_t i = 0; i < r->layout->n_tensors; i++)
    if (!strcmp(r->layout->tensors[i].name, name)) return r->w + r->layout->tensors[i].offset;
  fprintf(stderr, "no tensor %s\n", name);
  exit(2);
}

static double *ref_layer(const ref *r, int64_t l, const char *suffix) {
  char name[96];
  snprintf(name, sizeof name, "L_level.layers.%lld.%s", (long long)l, suffix);
  return ref_tensor(r, name);
}

static void ref_init(ref *r, const trm_tr_params *p) {
  const trm_config *c = &p->cfg;
  r->layout = p;
  r->c = c;
  r->w = xcalloc(p->floats, sizeof(double));
  for (size_t i = 0; i < p->floats; i++) r->w[i] = p->w.data[i];
  size_t np = (size_t)(c->num_puzzle_identifiers * c->puzzle_emb_ndim);
  r->puzzle = xcalloc(np, sizeof(double));
  for (size_t i = 0; i < np; i++) r->puzzle[i] = p->puzzle_emb[i];
  size_t S = (size_t)c->state_len, half = (size_t)c->head_dim / 2;
  r->cos_t = xcalloc(S * half, sizeof(double));
  r->sin_t = xcalloc(S * half, sizeof(double));
  for (size_t s = 0; s < S; s++)
    for (size_t i = 0; i < half; i++) {
      double angle = (double)s * pow(c->rope_theta, -2.0 * (double)i / (double)c->head_dim);
      r->cos_t[s * half + i] = cos(angle);
      r->sin_t[s * half + i] = sin(angle);
    }
}

static void ref_free(ref *r) {
  free(r->w);
  free(r->puzzle);
  free(r->cos_t);
  free(r->sin_t);
}

/* out [M, N] = x [M, K] W^T, W [N, K] */
static void ref_linear(const double *x, const double *W, size_t M, size_t N, size_t K, double *out) {
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      double s = 0;
      for (size_t k = 0; k < K; k++) s += x[i * K + k] * W[j * K + k];
      out[i * N + j] = s;
    }
}

static void ref_rms_rows(double *v, size_t rows, size_t cols, double eps) {
  for (size_t i = 0; i < rows; i++) {
    double ms = 0;
    for (size_t j = 0; j < cols; j++) ms += v[i * cols + j] * v[i * cols + j];
    double s = 1.0 / sqrt(ms / (double)cols + eps);
    for (size_t j = 0; j < cols; j++) v[i * cols + j] *= s;
  }
}

static void ref_rms_cols(double *v, size_t rows, size_t cols, double eps) {
  for (size_t j = 0; j < cols; j++) {
    double ms = 0;
    for (size_t i = 0; i < rows; i++) ms += v[i * cols + j] * v[i * cols + j];
    double s = 1.0 / sqrt(ms / (double)rows + eps);
    for (size_t i = 0; i < rows; i++) v[i * cols + j] *= s;
  }
}

static double silu(double a) { return a / (1.0 + exp(-a)); }

/* act [rows, inter] from gu [rows, 2 inter] */
static void ref_swiglu(const double *gu, double *act, size_t rows, size_t inter) {
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < inter; j++) act[i * inter + j] = silu(gu[i * 2 * inter + j]) * gu[i * 2 * inter + inter + j];
}

/* h = rmsnorm(h + down(swiglu(h Wgu^T))) over rows of h [rows, D] */
static void ref_channel(const ref *r, int64_t l, double *h, size_t rows) {
  size_t D = (size_t)r->c->hidden_size, I = (size_t)r->c->inter;
  double *gu = xcalloc(rows * 2 * I, sizeof(double)), *act = xcalloc(rows * I, sizeof(double));
  double *out = xcalloc(rows * D, sizeof(double));
  ref_linear(h, ref_layer(r, l, "mlp.gate_up_proj.weight"), rows, 2 * I, D, gu);
  ref_swiglu(gu, act, rows, I);
  ref_linear(act, ref_layer(r, l, "mlp.down_proj.weight"), rows, D, I, out);
  for (size_t i = 0; i < rows * D; i++) h[i] += out[i];
  ref_rms_rows(h, rows, D, r->c->rms_norm_eps);
  free(gu);
  free(act);
  free(out);
}

/* h = rmsnorm(h + o(attention(h))) for B states */
static void ref_attention(const ref *r, int64_t l, double *h, size_t B) {
  const trm_config *c = r->c;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, H = (size_t)c->num_heads, hd = (size_t)c->head_dim;
  size_t R = B * S, half = hd / 2;
  double *qkv = xcalloc(R * 3 * D, sizeof(double)), *heads = xcalloc(R * D, sizeof(double));
  double *out = xcalloc(R * D, sizeof(double)), *sc = xcalloc(S, sizeof(double));
  ref_linear(h, ref_layer(r, l, "self_attn.qkv_proj.weight"), R, 3 * D, D, qkv);
  if (c->pos_encodings == TRM_POS_ROPE)
    for (size_t row = 0; row < R; row++)
      for (size_t hh = 0; hh < 2 * H; hh++) {
        double *v = qkv + row * 3 * D + hh * hd;
        const double *cs = r->cos_t + (row % S) * half, *sn = r->sin_t + (row % S) * half;
        for (size_t i = 0; i < half; i++) {
          double a = v[i], b = v[i + half];
          v[i] = a * cs[i] - b * sn[i];
          v[i + half] = b * cs[i] + a * sn[i];
        }
      }
  for (size_t b = 0; b < B; b++)
    for (size_t hh = 0; hh < H; hh++)
      for (size_t i = 0; i < S; i++) {
        const double *q = qkv + (b * S + i) * 3 * D + hh * hd;
        double mx = -INFINITY, total = 0;
        for (size_t t = 0; t < S; t++) {
          const double *k = qkv + (b * S + t) * 3 * D + D + hh * hd;
          double s = 0;
          for (size_t e = 0; e < hd; e++) s += q[e] * k[e];
          sc[t] = s / sqrt((double)hd);
          if (sc[t] > mx) mx = sc[t];
        }
        for (size_t t = 0; t < S; t++) total += (sc[t] = exp(sc[t] - mx));
        double *o = heads + (b * S + i) * D + hh * hd;
        for (size_t e = 0; e < hd; e++) {
          double s = 0;
          for (size_t t = 0; t < S; t++) s += sc[t] / total * qkv[(b * S + t) * 3 * D + 2 * D + hh * hd + e];
          o[e] = s;
        }
      }
  ref_linear(heads, ref_layer(r, l, "self_attn.o_proj.weight"), R, D, D, out);
  for (size_t i = 0; i < R * D; i++) h[i] += out[i];
  ref_rms_rows(h, R, D, c->rms_norm_eps);
  free(qkv);
  free(heads);
  free(out);
  free(sc);
}

/* per state: h^T [D, S] <- rmsnorm over S of (h^T + swiglu_t(h^T)) */
static void ref_token_mlp(const ref *r, int64_t l, double *h, size_t B) {
  const trm_config *c = r->c;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t;
  double *ht = xcalloc(D * S, sizeof(double)), *gu = xcalloc(D * 2 * It, sizeof(double));
  double *act = xcalloc(D * It, sizeof(double)), *out = xcalloc(D * S, sizeof(double));
  for (size_t b = 0; b < B; b++) {
    double *hb = h + b * S * D;
    for (size_t s = 0; s < S; s++)
      for (size_t d = 0; d < D; d++) ht[d * S + s] = hb[s * D + d];
    ref_linear(ht, ref_layer(r, l, "mlp_t.gate_up_proj.weight"), D, 2 * It, S, gu);
    ref_swiglu(gu, act, D, It);
    ref_linear(act, ref_layer(r, l, "mlp_t.down_proj.weight"), D, S, It, out);
    for (size_t i = 0; i < D * S; i++) ht[i] += out[i];
    ref_rms_rows(ht, D, S, c->rms_norm_eps); /* rows of h^T = columns of h */
    for (size_t s = 0; s < S; s++)
      for (size_t d = 0; d < D; d++) hb[s * D + d] = ht[d * S + s];
  }
  free(ht);
  free(gu);
  free(act);
  free(out);
}

/* out = f(target, a + b) */
static void ref_f(const ref *r, size_t B, const double *target, const double *a, const double *b, double *out) {
  size_t n = B * (size_t)r->c->state_len * (size_t)r->c->hidden_size;
  for (size_t i = 0; i < n; i++) out[i] = target[i] + (b ? a[i] + b[i] : a[i]);
  for (int64_t l = 0; l < r->c->L_layers; l++) {
    if (r->c->mlp_t) ref_token_mlp(r, l, out, B);
    else ref_attention(r, l, out, B);
    ref_channel(r, l, out, B * (size_t)r->c->state_len);
  }
}

static void ref_embed(const ref *r, size_t B, const int32_t *tokens, const int32_t *ids, double *x) {
  const trm_config *c = r->c;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, P = (size_t)c->puzzle_len, seq = (size_t)c->seq_len;
  size_t ndim = (size_t)c->puzzle_emb_ndim;
  const double *tok = ref_tensor(r, "embed_tokens.embedding_weight");
  for (size_t b = 0; b < B; b++) {
    double *xb = x + b * S * D;
    memset(xb, 0, S * D * sizeof *xb);
    for (size_t j = 0; j < ndim; j++) xb[j] = r->puzzle[(size_t)ids[b] * ndim + j];
    for (size_t i = 0; i < seq; i++)
      for (size_t d = 0; d < D; d++) xb[(P + i) * D + d] = tok[(size_t)tokens[b * seq + i] * D + d];
    if (c->pos_encodings == TRM_POS_LEARNED) {
      const double *pos = ref_tensor(r, "embed_pos.embedding_weight");
      for (size_t i = 0; i < S * D; i++) xb[i] = 0.707106781 * (xb[i] + pos[i]);
    }
    for (size_t i = 0; i < S * D; i++) xb[i] *= sqrt((double)D);
  }
}

static void ref_heads(const ref *r, size_t B, const double *y, double *logits, double *q) {
  const trm_config *c = r->c;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, P = (size_t)c->puzzle_len, seq = (size_t)c->seq_len;
  size_t V = (size_t)c->vocab_size;
  const double *lm = ref_tensor(r, "lm_head.weight"), *qw = ref_tensor(r, "q_head.weight");
  const double *qb = ref_tensor(r, "q_head.bias");
  for (size_t b = 0; b < B; b++) {
    ref_linear(y + (b * S + P) * D, lm, seq, V, D, logits + b * seq * V);
    for (size_t k = 0; k < 2; k++) {
      double s = qb[k];
      for (size_t d = 0; d < D; d++) s += y[b * S * D + d] * qw[k * D + d];
      q[2 * b + k] = s;
    }
  }
}

/* the reference's loss: stablemax CE averaged over each puzzle's valid tokens, summed over
 * puzzles, + 0.5 (BCE(q_halt, exact) + BCE(q_continue, target)). Exactness is taken as given
 * (a step function, no gradient). */
static double ref_stablemax_ce(const double *x, size_t V, int32_t label) {
  double total = 0, s_label = 0;
  for (size_t v = 0; v < V; v++) {
    double s = x[v] < 0 ? 1.0 / (1.0 - x[v] + 1e-30) : x[v] + 1.0;
    total += s;
    if ((int32_t)v == label) s_label = s;
  }
  return -log(s_label / total);
}

static double ref_bce(double x, double t) {
  double p = 1.0 / (1.0 + exp(-x));
  return -(t * log(p) + (1 - t) * log(1 - p));
}

static double ref_loss(const double *logits, const double *q, const int32_t *labels, const uint8_t *exact, size_t B,
                       size_t seq, size_t V, const float *q_cont_target) {
  double total = 0;
  for (size_t b = 0; b < B; b++) {
    size_t count = 0;
    double lm = 0;
    for (size_t t = 0; t < seq; t++) {
      if (labels[b * seq + t] == -100) continue;
      count++;
      lm += ref_stablemax_ce(logits + (b * seq + t) * V, V, labels[b * seq + t]);
    }
    total += lm / (double)(count ? count : 1);
    total += 0.5 * ref_bce(q[2 * b], exact[b] ? 1.0 : 0.0);
    if (q_cont_target) total += 0.5 * ref_bce(q[2 * b + 1], q_cont_target[b]);
  }
  return total;
}

/* ---- finite differences ---- */

typedef double (*objective_fn)(void *ctx);

/* fd[i] = dJ/dtheta_i by central differences at the coordinates mask marks (NULL: all) */
static void fd_grad(objective_fn J, void *ctx, double *theta, size_t n, const bool *mask, double *fd) {
  const double h = 1e-5;
  for (size_t i = 0; i < n; i++) {
    if (mask && !mask[i]) continue;
    double save = theta[i];
    theta[i] = save + h;
    double jp = J(ctx);
    theta[i] = save - h;
    double jm = J(ctx);
    theta[i] = save;
    fd[i] = (jp - jm) / (2 * h);
  }
}

static double dot_w(const double *v, const double *w, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += v[i] * w[i];
  return s;
}

static double *to_double(const float *v, size_t n) {
  double *d = xcalloc(n, sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = v[i];
  return d;
}

/* compares a named dense tensor's gradient */
static void compare_tensor(const trm_tr_params *p, const char *name, const float *g_flat, const double *fd_flat,
                           const bool *mask_flat, double tol, const char *prefix) {
  for (size_t i = 0; i < p->n_tensors; i++) {
    const trm_tr_tensor *t = &p->tensors[i];
    if (strcmp(t->name, name)) continue;
    size_t n = t->rows * (t->cols ? t->cols : 1);
    char what[160];
    snprintf(what, sizeof what, "%s %s", prefix, name);
    compare_grad(what, g_flat + t->offset, fd_flat + t->offset, mask_flat ? mask_flat + t->offset : NULL, n, tol);
    return;
  }
  CHECK(false, "no tensor %s", name);
}

/* ---- one-layer operation checks ---- */

enum { OP_ATTENTION, OP_TOKEN_MLP, OP_CHANNEL };

typedef struct op_ctx {
  ref r;
  int op;
  size_t B;
  double *h;       /* input */
  double *wout;    /* objective weights */
  double *scratch;
} op_ctx;

static double op_objective(void *arg) {
  op_ctx *o = arg;
  size_t n = o->B * (size_t)o->r.c->state_len * (size_t)o->r.c->hidden_size;
  memcpy(o->scratch, o->h, n * sizeof(double));
  if (o->op == OP_ATTENTION) ref_attention(&o->r, 0, o->scratch, o->B);
  else if (o->op == OP_TOKEN_MLP) ref_token_mlp(&o->r, 0, o->scratch, o->B);
  else ref_channel(&o->r, 0, o->scratch, o->B * (size_t)o->r.c->state_len);
  return dot_w(o->scratch, o->wout, n);
}

static void check_op(const variant *v, int op, const char *label, double tol) {
  mb_model *mb = build_model(v);
  trm_tr_params p;
  load_params(mb, &p);
  trm_tr_ctx ctx;
  trm_tr_ctx_init(&ctx, 1);
  size_t B = 2;
  trm_tr_work w;
  if (trm_tr_work_init(&ctx, &p, B, &w) != TRM_OK) exit(2);
  const trm_config *c = &p.cfg;
  size_t n = B * (size_t)c->state_len * (size_t)c->hidden_size;
  float *h_in = xcalloc(n, sizeof(float)), *h = xcalloc(n, sizeof(float)), *d = xcalloc(n, sizeof(float));
  float *gdata = xcalloc(p.floats, sizeof(float));
  frand(h_in, n, 1.5);
  memcpy(h, h_in, n * sizeof *h);
  double *wout = xcalloc(n, sizeof(double));
  for (size_t i = 0; i < n; i++) wout[i] = urand();
  for (size_t i = 0; i < n; i++) d[i] = (float)wout[i];
  trm_tr_dense g;
  trm_tr_dense_view(&p, gdata, &g);
  trm_tr_layer_tape *lt = &w.tapes[0].layers[0];
  const trm_tr_layer *lw = &p.w.layers[0];
  if (op == OP_ATTENTION) {
    trm_tr_attention_forward(&ctx, &p, lw, B, h, lt, &w.sc);
    trm_tr_attention_backward(&ctx, &p, lw, &g.layers[0], B, h_in, h, lt, d, &w.sc);
  } else if (op == OP_TOKEN_MLP) {
    trm_tr_token_mlp_forward(&ctx, &p, lw, B, h, lt, &w.sc);
    trm_tr_token_mlp_backward(&ctx, &p, lw, &g.layers[0], B, h_in, h, lt, d, &w.sc);
  } else {
    trm_tr_channel_forward(&ctx, &p, lw, B * (size_t)c->state_len, h, lt, &w.sc);
    trm_tr_channel_backward(&ctx, &p, lw, &g.layers[0], B * (size_t)c->state_len, h_in, h, lt, d, &w.sc);
  }
  op_ctx o = {.op = op, .B = B, .wout = wout};
  ref_init(&o.r, &p);
  o.h = to_double(h_in, n);
  o.scratch = xcalloc(n, sizeof(double));
  /* the float forward against the double one */
  op_objective(&o);
  double fwd_err = 0;
  for (size_t i = 0; i < n; i++) fwd_err = fmax(fwd_err, fabs(o.scratch[i] - (double)h[i]));
  if (verbose) printf("  %-44s forward max |float - double| %.2e\n", label, fwd_err);
  CHECK(fwd_err < 1e-5, "%s: forward differs from the double reference by %.3e", label, fwd_err);
  /* the input */
  double *fd = xcalloc(n, sizeof(double));
  fd_grad(op_objective, &o, o.h, n, NULL, fd);
  char what[160];
  snprintf(what, sizeof what, "%s d(input)", label);
  compare_grad(what, d, fd, NULL, n, tol);
  free(fd);
  /* the weights of layer 0 this operation uses */
  double *fdw = xcalloc(p.floats, sizeof(double));
  bool *mask = xcalloc(p.floats, sizeof(bool));
  const char *names[2];
  if (op == OP_ATTENTION) {
    names[0] = "L_level.layers.0.self_attn.qkv_proj.weight";
    names[1] = "L_level.layers.0.self_attn.o_proj.weight";
  } else if (op == OP_TOKEN_MLP) {
    names[0] = "L_level.layers.0.mlp_t.gate_up_proj.weight";
    names[1] = "L_level.layers.0.mlp_t.down_proj.weight";
  } else {
    names[0] = "L_level.layers.0.mlp.gate_up_proj.weight";
    names[1] = "L_level.layers.0.mlp.down_proj.weight";
  }
  for (size_t t = 0; t < p.n_tensors; t++)
    for (int k = 0; k < 2; k++)
      if (!strcmp(p.tensors[t].name, names[k]))
        for (size_t i = 0; i < p.tensors[t].rows * p.tensors[t].cols; i++) mask[p.tensors[t].offset + i] = true;
  fd_grad(op_objective, &o, o.r.w, p.floats, mask, fdw);
  for (int k = 0; k < 2; k++) compare_tensor(&p, names[k], gdata, fdw, mask, tol, label);
  free(fdw);
  free(mask);
  free(o.h);
  free(o.scratch);
  ref_free(&o.r);
  free(wout);
  free(h_in);
  free(h);
  free(d);
  free(gdata);
  trm_tr_dense_view_free(&g);
  trm_tr_work_free(&w);
  trm_tr_ctx_free(&ctx);
  trm_tr_params_free(&p);
  mb_free(mb);
}

/* ---- RMSNorm and SwiGLU on their own ---- */

typedef struct elem_ctx {
  int which; /* 0 rms rows, 1 rms cols, 2 swiglu */
  double *x, *wout, *out;
  size_t rows, cols;
} elem_ctx;

static double elem_objective(void *arg) {
  elem_ctx *e = arg;
  size_t n_in = e->rows * e->cols, n_out = e->which == 2 ? e->rows * e->cols / 2 : n_in;
  if (e->which == 2) {
    ref_swiglu(e->x, e->out, e->rows, e->cols / 2);
  } else {
    memcpy(e->out, e->x, n_in * sizeof(double));
    if (e->which == 0) ref_rms_rows(e->out, e->rows, e->cols, 1e-5);
    else ref_rms_cols(e->out, e->rows, e->cols, 1e-5);
  }
  return dot_w(e->out, e->wout, n_out);
}

static void check_elementwise(void) {
  const char *names[3] = {"rmsnorm over rows", "rmsnorm over columns", "swiglu silu(gate)*up"};
  size_t rows = 7, cols = 12;
  for (int which = 0; which < 3; which++) {
    size_t n = rows * cols, n_out = which == 2 ? n / 2 : n;
    float *x = xcalloc(n, sizeof(float)), *y = xcalloc(n, sizeof(float)), *inv = xcalloc(rows + cols, sizeof(float));
    float *d = xcalloc(n, sizeof(float));
    frand(x, n, 3.0);
    elem_ctx e = {.which = which, .rows = rows, .cols = cols};
    e.x = to_double(x, n);
    e.wout = xcalloc(n_out, sizeof(double));
    e.out = xcalloc(n, sizeof(double));
    for (size_t i = 0; i < n_out; i++) e.wout[i] = urand();
    if (which == 2) {
      trm_tr_swiglu(x, y, rows, cols / 2);
      float *da = xcalloc(n_out, sizeof(float));
      for (size_t i = 0; i < n_out; i++) da[i] = (float)e.wout[i];
      trm_tr_swiglu_backward(x, da, d, rows, cols / 2);
      free(da);
    } else {
      memcpy(y, x, n * sizeof *x);
      for (size_t i = 0; i < n; i++) d[i] = (float)e.wout[i];
      if (which == 0) {
        trm_tr_rmsnorm_rows(y, inv, rows, cols, 1e-5f);
        trm_tr_rmsnorm_rows_backward(y, inv, d, rows, cols);
      } else {
        trm_tr_rmsnorm_cols(y, inv, rows, cols, 1e-5f);
        trm_tr_rmsnorm_cols_backward(y, inv, d, rows, cols);
      }
    }
    elem_objective(&e);
    double fwd_err = 0;
    for (size_t i = 0; i < n_out; i++) fwd_err = fmax(fwd_err, fabs(e.out[i] - (double)y[i]));
    CHECK(fwd_err < 1e-5, "%s: forward differs by %.3e", names[which], fwd_err);
    double *fd = xcalloc(n, sizeof(double));
    fd_grad(elem_objective, &e, e.x, n, NULL, fd);
    compare_grad(names[which], d, fd, NULL, n, 2e-6);
    free(fd);
    free(e.x);
    free(e.wout);
    free(e.out);
    free(x);
    free(y);
    free(inv);
    free(d);
  }
}

/* ---- embedding and heads ---- */

typedef struct io_ctx {
  ref r;
  size_t B;
  const int32_t *tokens, *ids;
  double *y, *wx, *wl, *wq, *buf, *buf2;
} io_ctx;

static double embed_objective(void *arg) {
  io_ctx *o = arg;
  ref_embed(&o->r, o->B, o->tokens, o->ids, o->buf);
  return dot_w(o->buf, o->wx, o->B * (size_t)(o->r.c->state_len * o->r.c->hidden_size));
}

static double heads_objective(void *arg) {
  io_ctx *o = arg;
  const trm_config *c = o->r.c;
  ref_heads(&o->r, o->B, o->y, o->buf, o->buf2);
  return dot_w(o->buf, o->wl, o->B * (size_t)(c->seq_len * c->vocab_size)) + dot_w(o->buf2, o->wq, 2 * o->B);
}

static void check_embed_heads(const variant *v) {
  mb_model *mb = build_model(v);
  trm_tr_params p;
  load_params(mb, &p);
  trm_tr_ctx ctx;
  trm_tr_ctx_init(&ctx, 1);
  const trm_config *c = &p.cfg;
  size_t B = 3, S = (size_t)c->state_len, D = (size_t)c->hidden_size, seq = (size_t)c->seq_len;
  size_t V = (size_t)c->vocab_size, n = B * S * D, ndim = (size_t)c->puzzle_emb_ndim;
  trm_tr_work w;
  if (trm_tr_work_init(&ctx, &p, B, &w) != TRM_OK) exit(2);
  int32_t tokens[3 * 8], ids[3] = {2, 0, 2}; /* a repeated id and repeated tokens */
  for (size_t i = 0; i < B * seq; i++) tokens[i] = (int32_t)((i * 5 + 1) % V);
  io_ctx o = {.B = B, .tokens = tokens, .ids = ids};
  ref_init(&o.r, &p);
  o.wx = xcalloc(n, sizeof(double));
  o.wl = xcalloc(B * seq * V, sizeof(double));
  o.wq = xcalloc(2 * B, sizeof(double));
  o.buf = xcalloc(n, sizeof(double));
  o.buf2 = xcalloc(2 * B, sizeof(double));
  for (size_t i = 0; i < n; i++) o.wx[i] = urand();
  for (size_t i = 0; i < B * seq * V; i++) o.wl[i] = urand();
  for (size_t i = 0; i < 2 * B; i++) o.wq[i] = urand();
  char label[96];

  /* embedding: x against the double one, gradients of tokens, positions and puzzle rows */
  float *x = xcalloc(n, sizeof(float)), *dx = xcalloc(n, sizeof(float)), *gdata = xcalloc(p.floats, sizeof(float));
  float *dpuzzle = xcalloc(B * ndim, sizeof(float));
  trm_tr_dense g;
  trm_tr_dense_view(&p, gdata, &g);
  trm_tr_embed(&p, B, tokens, ids, x);
  embed_objective(&o);
  double fwd_err = 0;
  for (size_t i = 0; i < n; i++) fwd_err = fmax(fwd_err, fabs(o.buf[i] - (double)x[i]) / (1 + fabs(o.buf[i])));
  CHECK(fwd_err < 1e-6, "%s embedding forward differs by %.3e", v->name, fwd_err);
  for (size_t i = 0; i < n; i++) dx[i] = (float)o.wx[i];
  trm_tr_embed_backward(&p, B, tokens, dx, &g, dpuzzle);
  double *fd = xcalloc(p.floats, sizeof(double));
  bool *mask = xcalloc(p.floats, sizeof(bool));
  for (size_t t = 0; t < p.n_tensors; t++)
    if (strstr(p.tensors[t].name, "embedding_weight"))
      for (size_t i = 0; i < p.tensors[t].rows * p.tensors[t].cols; i++) mask[p.tensors[t].offset + i] = true;
  fd_grad(embed_objective, &o, o.r.w, p.floats, mask, fd);
  snprintf(label, sizeof label, "%s embedding:", v->name);
  compare_tensor(&p, "embed_tokens.embedding_weight", gdata, fd, mask, 1e-6, label);
  if (c->pos_encodings == TRM_POS_LEARNED) compare_tensor(&p, "embed_pos.embedding_weight", gdata, fd, mask, 1e-6, label);
  /* puzzle rows: the table's gradient is the sum of the batch rows with that id */
  size_t np = (size_t)c->num_puzzle_identifiers * ndim;
  double *fdp = xcalloc(np, sizeof(double));
  float *table_grad = xcalloc(np, sizeof(float));
  bool *pmask = xcalloc(np, sizeof(bool));
  for (size_t b = 0; b < B; b++)
    for (size_t j = 0; j < ndim; j++) {
      table_grad[(size_t)ids[b] * ndim + j] += dpuzzle[b * ndim + j];
      pmask[(size_t)ids[b] * ndim + j] = true;
    }
  fd_grad(embed_objective, &o, o.r.puzzle, np, pmask, fdp);
  snprintf(label, sizeof label, "%s embedding: puzzle_emb rows", v->name);
  compare_grad(label, table_grad, fdp, pmask, np, 1e-6);
  free(fdp);
  free(table_grad);
  free(pmask);

  /* heads: logits and q against the double ones, gradients of y, lm_head and q_head */
  float *y = xcalloc(n, sizeof(float));
  frand(y, n, 1.0);
  o.y = to_double(y, n);
  memset(gdata, 0, p.floats * sizeof(float));
  trm_tr_heads(&ctx, &p, B, y, w.logits, w.q);
  heads_objective(&o);
  fwd_err = 0;
  for (size_t i = 0; i < B * seq * V; i++) fwd_err = fmax(fwd_err, fabs(o.buf[i] - (double)w.logits[i]));
  for (size_t i = 0; i < 2 * B; i++) fwd_err = fmax(fwd_err, fabs(o.buf2[i] - (double)w.q[i]));
  CHECK(fwd_err < 1e-5, "%s heads forward differs by %.3e", v->name, fwd_err);
  for (size_t i = 0; i < B * seq * V; i++) w.dlogits[i] = (float)o.wl[i];
  for (size_t i = 0; i < 2 * B; i++) w.dq[i] = (float)o.wq[i];
  trm_tr_heads_backward(&ctx, &p, &w, B, y, w.dlogits, w.dq, &g, w.dy);
  memset(mask, 0, p.floats * sizeof(bool));
  for (size_t t = 0; t < p.n_tensors; t++)
    if (strstr(p.tensors[t].name, "lm_head") || strstr(p.tensors[t].name, "q_head"))
      for (size_t i = 0; i < p.tensors[t].rows * (p.tensors[t].cols ? p.tensors[t].cols : 1); i++)
        mask[p.tensors[t].offset + i] = true;
  fd_grad(heads_objective, &o, o.r.w, p.floats, mask, fd);
  snprintf(label, sizeof label, "%s heads:", v->name);
  compare_tensor(&p, "lm_head.weight", gdata, fd, mask, 1e-5, label);
  compare_tensor(&p, "q_head.weight", gdata, fd, mask, 1e-5, label);
  compare_tensor(&p, "q_head.bias", gdata, fd, mask, 1e-5, label);
  double *fdy = xcalloc(n, sizeof(double));
  fd_grad(heads_objective, &o, o.y, n, NULL, fdy);
  snprintf(label, sizeof label, "%s heads: d(y)", v->name);
  compare_grad(label, w.dy, fdy, NULL, n, 1e-5);
  free(fdy);
  free(y);
  free(o.y);
  free(fd);
  free(mask);
  free(x);
  free(dx);
  free(gdata);
  free(dpuzzle);
  free(o.wx);
  free(o.wl);
  free(o.wq);
  free(o.buf);
  free(o.buf2);
  ref_free(&o.r);
  trm_tr_dense_view_free(&g);
  trm_tr_work_free(&w);
  trm_tr_ctx_free(&ctx);
  trm_tr_params_free(&p);
  mb_free(mb);
}

/* ---- the loss ---- */

typedef struct loss_ctx {
  double *logits, *q;
  const int32_t *labels;
  const uint8_t *exact;
  size_t B, seq, V;
  const float *target;
  double scale;
} loss_ctx;

static double loss_objective(void *arg) {
  loss_ctx *l = arg;
  return l->scale * ref_loss(l->logits, l->q, l->labels, l->exact, l->B, l->seq, l->V, l->target);
}

static void check_loss(void) {
  /* stablemax CE and BCE on their own, against the formulas written out here */
  float x[6] = {-2.5f, -0.3f, 0.0f, 0.7f, 3.0f, -7.0f};
  double grad[6], xd[6], fd[6];
  for (int i = 0; i < 6; i++) xd[i] = x[i];
  for (int32_t label = 0; label < 6; label += 3) {
    double v = trm_tr_stablemax_xent(x, 6, label, grad);
    CHECK(fabs(v - ref_stablemax_ce(xd, 6, label)) < 1e-12, "stablemax CE value");
    /* by hand for label 0: s = 1/3.5, 1/1.3, 1, 1.7, 4, 1/8 (the inputs are these decimals
     * rounded to float, hence the tolerance) */
    if (label == 0) {
      double total = 1 / 3.5 + 1 / 1.3 + 1 + 1.7 + 4 + 1.0 / 8;
      CHECK(fabs(v - log(total * 3.5)) < 1e-7, "stablemax CE by hand: %.17g vs %.17g", v, log(total * 3.5));
    }
    for (int i = 0; i < 6; i++) {
      if (i == 2) continue; /* s'' jumps at 0: differences straddling it are not the derivative */
      double save = xd[i];
      xd[i] = save + 1e-6;
      double jp = ref_stablemax_ce(xd, 6, label);
      xd[i] = save - 1e-6;
      double jm = ref_stablemax_ce(xd, 6, label);
      xd[i] = save;
      fd[i] = (jp - jm) / 2e-6;
      CHECK(fabs(fd[i] - grad[i]) < 1e-8, "stablemax CE gradient %d (label %d): %.10g vs %.10g", i, label, grad[i],
            fd[i]);
    }
  }
  double xs[5] = {-30.0, -1.5, 0.0, 0.8, 25.0};
  for (int i = 0; i < 5; i++)
    for (int t = 0; t <= 1; t++) {
      double g;
      double v = trm_tr_bce_logits(xs[i], t, &g);
      double h = 1e-6, numeric = (ref_bce(xs[i] + h, t) - ref_bce(xs[i] - h, t)) / (2 * h);
      if (fabs(xs[i]) < 20) CHECK(fabs(v - ref_bce(xs[i], t)) < 1e-12, "BCE value at %g, %d", xs[i], t);
      CHECK(fabs(g - (1.0 / (1.0 + exp(-xs[i])) - t)) < 1e-15, "BCE gradient formula at %g", xs[i]);
      if (fabs(xs[i]) < 20) CHECK(fabs(g - numeric) < 1e-8, "BCE gradient at %g, %d: %g vs %g", xs[i], t, g, numeric);
    }
  CHECK(fabs(trm_tr_bce_logits(-30.0, 1.0, NULL) - 30.0) < 1e-9, "BCE stays finite far out");

  /* the whole loss head: ignore labels, an exact puzzle, a puzzle with no valid token, q_continue */
  enum { B = 4, SEQ = 5, V = 4 };
  float logits[B * SEQ * V], q[2 * B], dlogits[B * SEQ * V], dq[2 * B], target[B] = {0.2f, 0.9f, 0.5f, 0.0f};
  int32_t labels[B * SEQ];
  frand(logits, B * SEQ * V, 3.0);
  frand(q, 2 * B, 2.0);
  for (int i = 0; i < B * SEQ; i++) labels[i] = (int32_t)((i * 3 + 1) % V);
  labels[2] = labels[7] = -100;
  for (int t = 0; t < SEQ; t++) labels[2 * SEQ + t] = -100; /* puzzle 2: nothing valid -> exact */
  for (int t = 0; t < SEQ; t++) {                            /* puzzle 1: make the argmax right */
    float *row = logits + (SEQ + t) * V;
    if (labels[SEQ + t] != -100) row[labels[SEQ + t]] = 5.0f + (float)t;
  }
  logits[(3 * SEQ) * V + labels[3 * SEQ]] = 4.0f; /* puzzle 3: one right token, others random */
  uint8_t exact[B];
  trm_tr_loss L;
  double scale = 0.25;
  trm_status st = trm_tr_loss_eval(logits, q, labels, B, SEQ, V, -100, target, scale, dlogits, dq, exact, &L);
  CHECK(st == TRM_OK, "loss_eval: %s", trm_last_error());
  CHECK(exact[1] == 1 && exact[2] == 1, "exact puzzles found: %d %d", exact[1], exact[2]);
  uint8_t ref_exact[B];
  for (int b = 0; b < B; b++) { /* exactness written out independently */
    bool all = true;
    for (int t = 0; t < SEQ; t++) {
      int32_t lab = labels[b * SEQ + t];
      if (lab == -100) continue;
      const float *row = logits + (b * SEQ + t) * V;
      for (int v = 0; v < V; v++)
        if (row[v] > row[lab] || (row[v] == row[lab] && v < lab)) all = false;
    }
    ref_exact[b] = all;
    CHECK(exact[b] == ref_exact[b], "exactness of puzzle %d", b);
  }
  loss_ctx lc = {.labels = labels, .exact = ref_exact, .B = B, .seq = SEQ, .V = V, .target = target, .scale = scale};
  lc.logits = to_double(logits, B * SEQ * V);
  lc.q = to_double(q, 2 * B);
  double ref_total = ref_loss(lc.logits, lc.q, labels, ref_exact, B, SEQ, V, target);
  CHECK(fabs(L.total - ref_total) < 1e-9 * fabs(ref_total), "loss total %.12g vs %.12g", L.total, ref_total);
  CHECK(L.valid_tokens == (size_t)(B * SEQ - 2 - SEQ), "valid tokens %zu", L.valid_tokens);
  double *fdl = xcalloc(B * SEQ * V, sizeof(double)), fdq[2 * B];
  fd_grad(loss_objective, &lc, lc.logits, B * SEQ * V, NULL, fdl);
  fd_grad(loss_objective, &lc, lc.q, 2 * B, NULL, fdq);
  compare_grad("loss head: d(logits)", dlogits, fdl, NULL, B * SEQ * V, 1e-6);
  compare_grad("loss head: d(q_halt, q_continue)", dq, fdq, NULL, 2 * B, 1e-6);
  free(fdl);
  free(lc.logits);
  free(lc.q);
  labels[0] = V; /* out of range */
  CHECK(trm_tr_loss_eval(logits, q, labels, B, SEQ, V, -100, NULL, 1, dlogits, dq, NULL, NULL) == TRM_E_INVALID,
        "a label outside the vocabulary is refused");
}

/* ---- the whole supervision step ---- */

typedef struct step_ctx {
  ref r;
  size_t B;
  const int32_t *tokens, *labels, *ids;
  const uint8_t *exact;
  double *y0, *z0; /* the carry going in */
  double scale;
} step_ctx;

static double step_objective(void *arg) {
  step_ctx *s = arg;
  const trm_config *c = s->r.c;
  size_t n = s->B * (size_t)(c->state_len * c->hidden_size), seq = (size_t)c->seq_len, V = (size_t)c->vocab_size;
  double *x = xcalloc(n, sizeof(double)), *y = xcalloc(n, sizeof(double)), *z = xcalloc(n, sizeof(double));
  double *logits = xcalloc(s->B * seq * V, sizeof(double)), q[16];
  memcpy(y, s->y0, n * sizeof(double));
  memcpy(z, s->z0, n * sizeof(double));
  ref_embed(&s->r, s->B, s->tokens, s->ids, x);
  for (int64_t h = 0; h < c->H_cycles; h++) {
    for (int64_t l = 0; l < c->L_cycles; l++) ref_f(&s->r, s->B, z, y, x, z);
    ref_f(&s->r, s->B, y, z, NULL, y);
  }
  ref_heads(&s->r, s->B, y, logits, q);
  double J = s->scale * ref_loss(logits, q, s->labels, s->exact, s->B, seq, V, NULL);
  free(x);
  free(y);
  free(z);
  free(logits);
  return J;
}

/* Gradient of the last H-cycle only: the differences must see the earlier cycles as constants.
 * The objective above differentiates through all cycles, so the check runs with the first
 * H_cycles - 1 cycles folded into the carry: (y0, z0) are taken after them. */
static double step_objective_last_cycle(void *arg) {
  step_ctx *s = arg;
  const trm_config *c = s->r.c;
  trm_config one = *c;
  one.H_cycles = 1;
  s->r.c = &one;
  double J = step_objective(s);
  s->r.c = c;
  return J;
}

static void check_step(const variant *v, size_t threads_a, size_t threads_b) {
  mb_model *mb = build_model(v);
  trm_tr_params p;
  load_params(mb, &p);
  const trm_config *c = &p.cfg;
  size_t B = 3, S = (size_t)c->state_len, D = (size_t)c->hidden_size, seq = (size_t)c->seq_len;
  size_t V = (size_t)c->vocab_size, n = B * S * D, ndim = (size_t)c->puzzle_emb_ndim;
  trm_tr_ctx ctx, ctx2;
  trm_tr_ctx_init(&ctx, threads_a);
  trm_tr_ctx_init(&ctx2, threads_b);
  trm_tr_work w, w2;
  if (trm_tr_work_init(&ctx, &p, B, &w) != TRM_OK || trm_tr_work_init(&ctx2, &p, B, &w2) != TRM_OK) exit(2);
  int32_t tokens[3 * 8], labels[3 * 8], ids[3] = {1, 2, 1};
  for (size_t i = 0; i < B * seq; i++) {
    tokens[i] = (int32_t)((i * 7 + 2) % V);
    labels[i] = (int32_t)((i * 5 + 3) % V);
  }
  labels[3] = labels[12] = -100;
  float *y = xcalloc(n, sizeof(float)), *z = xcalloc(n, sizeof(float));
  for (size_t b = 0; b < B; b++) trm_tr_carry_reset(&p, y, z, b);
  float *gdata = xcalloc(p.floats, sizeof(float)), *gdata2 = xcalloc(p.floats, sizeof(float));
  trm_tr_dense g, g2;
  trm_tr_dense_view(&p, gdata, &g);
  trm_tr_dense_view(&p, gdata2, &g2);
  trm_tr_batch batch = {.B = B, .tokens = tokens, .labels = labels, .puzzle_ids = ids, .ignore_label = -100,
                        .loss_scale = 0.5};
  uint8_t exact[3];
  trm_tr_loss L;
  /* a first step from the initial carry, then the checked step from the carry it leaves */
  trm_status st = trm_tr_step(&ctx, &p, &w, &batch, y, z, &g, exact, &L);
  CHECK(st == TRM_OK, "%s first step: %s", v->name, trm_last_error());
  memset(gdata, 0, p.floats * sizeof(float));
  float *y1 = xcalloc(n, sizeof(float)), *z1 = xcalloc(n, sizeof(float));
  memcpy(y1, y, n * sizeof(float));
  memcpy(z1, z, n * sizeof(float));
  st = trm_tr_step(&ctx, &p, &w, &batch, y, z, &g, exact, &L);
  CHECK(st == TRM_OK, "%s step: %s", v->name, trm_last_error());
  CHECK(isfinite(L.total) && L.total > 0, "%s loss %g", v->name, L.total);

  /* the same step on another thread count gives bitwise the same gradients and carry */
  {
    float *y2 = xcalloc(n, sizeof(float)), *z2 = xcalloc(n, sizeof(float));
    memcpy(y2, y1, n * sizeof(float));
    memcpy(z2, z1, n * sizeof(float));
    trm_tr_loss L2;
    st = trm_tr_step(&ctx2, &p, &w2, &batch, y2, z2, &g2, NULL, &L2);
    CHECK(st == TRM_OK && !memcmp(gdata, gdata2, p.floats * sizeof(float)) && !memcmp(y, y2, n * sizeof(float)) &&
              !memcmp(z, z2, n * sizeof(float)) && !memcmp(w.dpuzzle, w2.dpuzzle, B * ndim * sizeof(float)) &&
              L.total == L2.total,
          "%s: %zu and %zu threads give different results", v->name, ctx.workers, ctx2.workers);
    free(y2);
    free(z2);
  }

  /* the reference: the first H_cycles - 1 cycles of the step without gradient, in double, from
   * the same carry; the checked objective is the last cycle, heads and loss */
  step_ctx s = {.B = B, .tokens = tokens, .labels = labels, .ids = ids, .exact = exact, .scale = 0.5};
  ref_init(&s.r, &p);
  s.y0 = to_double(y1, n);
  s.z0 = to_double(z1, n);
  {
    double *x = xcalloc(n, sizeof(double));
    ref_embed(&s.r, B, tokens, ids, x);
    for (int64_t h = 0; h + 1 < c->H_cycles; h++) {
      for (int64_t l = 0; l < c->L_cycles; l++) ref_f(&s.r, B, s.z0, s.y0, x, s.z0);
      ref_f(&s.r, B, s.y0, s.z0, NULL, s.y0);
    }
    free(x);
  }
  /* forward: the full step in double against the engine's loss and carry */
  double J = step_objective_last_cycle(&s);
  CHECK(fabs(J - 0.5 * L.total) < 1e-5 * fabs(J), "%s: step loss %.9g vs double %.9g", v->name, 0.5 * L.total, J);
  if (verbose) printf("  %s step loss: engine %.9g, double reference %.9g\n", v->name, 0.5 * L.total, J);

  /* every coordinate of small tensors, a spread of the big ones (about 150 each) */
  bool *mask = xcalloc(p.floats, sizeof(bool));
  for (size_t t = 0; t < p.n_tensors; t++) {
    size_t cnt = p.tensors[t].rows * (p.tensors[t].cols ? p.tensors[t].cols : 1);
    size_t stride = cnt > 150 ? cnt / 150 : 1;
    for (size_t i = t % stride; i < cnt; i += stride) mask[p.tensors[t].offset + i] = true;
  }
  double *fd = xcalloc(p.floats, sizeof(double));
  fd_grad(step_objective_last_cycle, &s, s.r.w, p.floats, mask, fd);
  char label[96];
  snprintf(label, sizeof label, "%s step:", v->name);
  for (size_t t = 0; t < p.n_tensors; t++) compare_tensor(&p, p.tensors[t].name, gdata, fd, mask, 3e-5, label);
  /* the puzzle rows */
  size_t np = (size_t)c->num_puzzle_identifiers * ndim;
  double *fdp = xcalloc(np, sizeof(double));
  float *table_grad = xcalloc(np, sizeof(float));
  bool *pmask = xcalloc(np, sizeof(bool));
  for (size_t b = 0; b < B; b++)
    for (size_t j = 0; j < ndim; j++) {
      table_grad[(size_t)ids[b] * ndim + j] += w.dpuzzle[b * ndim + j];
      pmask[(size_t)ids[b] * ndim + j] = true;
    }
  fd_grad(step_objective_last_cycle, &s, s.r.puzzle, np, pmask, fdp);
  snprintf(label, sizeof label, "%s step: puzzle_emb rows", v->name);
  compare_grad(label, table_grad, fdp, pmask, np, 3e-5);

  /* a directional derivative along a random direction over every dense weight */
  double *dir = xcalloc(p.floats, sizeof(double)), *base = xcalloc(p.floats, sizeof(double));
  memcpy(base, s.r.w, p.floats * sizeof(double));
  double analytic = 0;
  for (size_t i = 0; i < p.floats; i++) {
    dir[i] = urand();
    analytic += dir[i] * gdata[i];
  }
  const double h = 1e-5;
  for (size_t i = 0; i < p.floats; i++) s.r.w[i] = base[i] + h * dir[i];
  double jp = step_objective_last_cycle(&s);
  for (size_t i = 0; i < p.floats; i++) s.r.w[i] = base[i] - h * dir[i];
  double jm = step_objective_last_cycle(&s);
  memcpy(s.r.w, base, p.floats * sizeof(double));
  double numeric = (jp - jm) / (2 * h), rel = fabs(analytic - numeric) / fabs(numeric);
  if (verbose) printf("  %-44s %.9g vs %.9g  rel %.2e\n", "  directional, all weights:", analytic, numeric, rel);
  CHECK(rel < 2e-5, "%s: directional derivative %.9g vs %.9g (rel %.2e)", v->name, analytic, numeric, rel);
  if (rel > worst_error) worst_error = rel;

  free(dir);
  free(base);
  free(fdp);
  free(table_grad);
  free(pmask);
  free(fd);
  free(mask);
  free(s.y0);
  free(s.z0);
  ref_free(&s.r);
  free(y);
  free(z);
  free(y1);
  free(z1);
  free(gdata);
  free(gdata2);
  trm_tr_dense_view_free(&g);
  trm_tr_dense_view_free(&g2);
  trm_tr_work_free(&w);
  trm_tr_work_free(&w2);
  trm_tr_ctx_free(&ctx);
  trm_tr_ctx_free(&ctx2);
  trm_tr_params_free(&p);
  mb_free(mb);
}

/* ---- the training forward pass against the inference library ---- */

static void check_against_inference(const variant *v) {
  mb_model *mb = build_model(v);
  size_t size;
  unsigned char *file = mb_serialize(mb, &size);
  trm_model *m = NULL;
  trm_session *sess = NULL;
  CHECK(trm_model_load_memory(file, size, &m) == TRM_OK, "load: %s", trm_last_error());
  trm_tr_params p;
  CHECK(trm_tr_params_load_memory(file, size, &p) == TRM_OK, "params load: %s", trm_last_error());
  free(file);
  const trm_config *c = &p.cfg;
  size_t B = 3, S = (size_t)c->state_len, D = (size_t)c->hidden_size, seq = (size_t)c->seq_len;
  size_t V = (size_t)c->vocab_size, n = B * S * D;
  CHECK(trm_session_create(m, B, &sess) == TRM_OK, "session: %s", trm_last_error());
  trm_tr_ctx ctx;
  trm_tr_ctx_init(&ctx, 2);
  trm_tr_work w;
  if (trm_tr_work_init(&ctx, &p, B, &w) != TRM_OK) exit(2);
  int32_t tokens[3 * 8], labels[3 * 8], ids[3] = {0, 2, 1};
  for (size_t i = 0; i < B * seq; i++) tokens[i] = labels[i] = (int32_t)((i * 3 + 1) % V);
  for (size_t b = 0; b < B; b++) CHECK(trm_session_set_input(sess, b, tokens + b * seq, seq, ids[b]) == TRM_OK, "input");
  float *y = xcalloc(n, sizeof(float)), *z = xcalloc(n, sizeof(float)), *buf = xcalloc(n, sizeof(float));
  float *gdata = xcalloc(p.floats, sizeof(float)), *lbuf = xcalloc(seq * V, sizeof(float));
  for (size_t b = 0; b < B; b++) trm_tr_carry_reset(&p, y, z, b);
  trm_tr_dense g;
  trm_tr_dense_view(&p, gdata, &g);
  trm_tr_batch batch = {.B = B, .tokens = tokens, .labels = labels, .puzzle_ids = ids, .ignore_label = -100,
                        .loss_scale = 1.0};
  for (int step = 1; step <= 2; step++) {
    trm_tr_loss L;
    CHECK(trm_tr_step(&ctx, &p, &w, &batch, y, z, &g, NULL, &L) == TRM_OK, "step: %s", trm_last_error());
    trm_event ev = TRM_EVENT_INIT;
    CHECK(trm_refine(sess, &ev) == TRM_OK && ev.kind == TRM_EVENT_STEP, "refine");
    double err_y = 0, err_z = 0, err_l = 0, err_q = 0;
    for (size_t b = 0; b < B; b++) {
      trm_session_latent(sess, b, TRM_LATENT_Y, buf, S * D);
      for (size_t i = 0; i < S * D; i++) err_y = fmax(err_y, fabs(buf[i] - y[b * S * D + i]));
      trm_session_latent(sess, b, TRM_LATENT_Z, buf, S * D);
      for (size_t i = 0; i < S * D; i++) err_z = fmax(err_z, fabs(buf[i] - z[b * S * D + i]));
      trm_session_logits(sess, b, lbuf, seq * V);
      for (size_t i = 0; i < seq * V; i++) err_l = fmax(err_l, fabs(lbuf[i] - w.logits[b * seq * V + i]));
      float qh, qc;
      trm_session_q(sess, b, &qh, &qc);
      err_q = fmax(err_q, fmax(fabs(qh - w.q[2 * b]), fabs(qc - w.q[2 * b + 1])));
    }
    if (verbose)
      printf("  %-22s step %d vs inference: max |dy| %.1e |dz| %.1e |dlogits| %.1e |dq| %.1e\n", v->name, step, err_y,
             err_z, err_l, err_q);
    CHECK(err_y < 1e-5 && err_z < 1e-5 && err_l < 1e-5 && err_q < 1e-5,
          "%s step %d: training forward differs from inference: y %.2e z %.2e logits %.2e q %.2e", v->name, step,
          err_y, err_z, err_l, err_q);
  }
  free(y);
  free(z);
  free(buf);
  free(gdata);
  free(lbuf);
  trm_tr_dense_view_free(&g);
  trm_tr_work_free(&w);
  trm_tr_ctx_free(&ctx);
  trm_tr_params_free(&p);
  trm_session_free(sess);
  trm_model_free(m);
  mb_free(mb);
}

/* ---- optimisers against values worked out from the formulas ---- */

static void check_optimisers(void) {
  /* lr: base 1e-4, warm-up 10, total 110, min ratio 0.1 */
  CHECK(trm_tr_lr(0, 1e-4, 10, 110, 0.1) == 0.0, "lr at step 0");
  CHECK(fabs(trm_tr_lr(5, 1e-4, 10, 110, 0.1) - 5e-5) < 1e-18, "lr half-way through warm-up");
  CHECK(fabs(trm_tr_lr(10, 1e-4, 10, 110, 0.1) - 1e-4) < 1e-18, "lr at the end of warm-up");
  CHECK(fabs(trm_tr_lr(60, 1e-4, 10, 110, 0.1) - 5.5e-5) < 1e-15, "lr half-way down: 0.1 + 0.9 * 0.5");
  CHECK(fabs(trm_tr_lr(110, 1e-4, 10, 110, 0.1) - 1e-5) < 1e-15, "lr at the end");
  CHECK(fabs(trm_tr_lr(500, 1e-4, 10, 110, 1.0) - 1e-4) < 1e-18, "min ratio 1: constant");

  /* AdamATan2, two steps: p0 = 0.5, g = 0.2 then -0.1, lr 0.01, betas 0.9 0.95, wd 0.1
   * step 1: p = 0.5 (1 - 0.001) = 0.4995; m = 0.02; v = 0.002; m^ = 0.2; sqrt(v^) = 0.2
   *         p -= 0.01 atan2(0.2, 0.2) = 0.01 pi/4
   * step 2: p *= 0.999; m = 0.018 - 0.01 = 0.008; v = 0.0019 + 0.0005 = 0.0024;
   *         m^ = 0.008 / 0.19; sqrt(v^) = sqrt(0.0024 / 0.0975) */
  {
    float p = 0.5f, m = 0, v = 0, g1 = 0.2f, g2 = -0.1f;
    const double pi = 3.14159265358979323846;
    trm_tr_adam_atan2(&p, &g1, &m, &v, 1, 1, 0.01, 0.9, 0.95, 0.1);
    double p1 = 0.4995 - 0.01 * pi / 4;
    CHECK(fabs(p - p1) < 1e-6 && fabs(m - 0.02) < 1e-8 && fabs(v - 0.002) < 1e-9, "AdamATan2 step 1: %.9g vs %.9g", p,
          p1);
    trm_tr_adam_atan2(&p, &g2, &m, &v, 1, 2, 0.01, 0.9, 0.95, 0.1);
    double p2 = p1 * 0.999 - 0.01 * atan2(0.008 / 0.19, sqrt(0.0024 / 0.0975));
    CHECK(fabs(p - p2) < 1e-6 && fabs(m - 0.008) < 1e-8 && fabs(v - 0.0024) < 1e-9, "AdamATan2 step 2: %.9g vs %.9g",
          p, p2);
    /* a zero gradient from zero moments: atan2(0, 0) = 0, only the decay acts */
    float q = 2.0f, qm = 0, qv = 0, zero = 0;
    trm_tr_adam_atan2(&q, &zero, &qm, &qv, 1, 1, 0.01, 0.9, 0.95, 0.1);
    CHECK(q == (float)(2.0 * 0.999) || fabs(q - 1.998) < 1e-6, "AdamATan2 with zero gradient: %.9g", q);
    /* the update is bounded by lr * pi/2 whatever the gradient */
    float r = 0, rm = 0, rv = 0, huge = 1e30f;
    trm_tr_adam_atan2(&r, &huge, &rm, &rv, 1, 1, 0.01, 0.9, 0.95, 0.0);
    CHECK(fabs(r) <= 0.01 * pi / 2 + 1e-7, "AdamATan2 step bounded: %g", r);
  }
  /* AdamW, one step: p -= lr m^ / (sqrt(v^) + eps) = 0.01 * 0.2 / (0.2 + 1e-8), after decay */
  {
    float p = 0.5f, m = 0, v = 0, g = 0.2f;
    trm_tr_adamw(&p, &g, &m, &v, 1, 1, 0.01, 0.9, 0.95, 0.1, 1e-8);
    double want = 0.4995 - 0.01 * 0.2 / (0.2 + 1e-8);
    CHECK(fabs(p - want) < 1e-6, "AdamW step 1: %.9g vs %.9g", p, want);
  }
  /* EMA: 0.1 * 3 + 0.9 * 1 = 1.2 */
  {
    float shadow[2] = {1.0f, -2.0f}, p[2] = {3.0f, 2.0f};
    trm_tr_ema(shadow, p, 2, 0.9);
    CHECK(fabs(shadow[0] - 1.2f) < 1e-6 && fabs(shadow[1] - (-1.6f)) < 1e-6, "EMA: %g %g", shadow[0], shadow[1]);
  }
  /* signSGD: ids {2, 0, 2}; row 2's gradient is the sum of batch rows 0 and 2 */
  {
    float table[3 * 3] = {1, 1, 1, 5, 5, 5, -1, 2, 0.5f};
    int32_t ids[3] = {2, 0, 2};
    float grads[3 * 3] = {0.3f, -1.0f, 0.2f, /* row 0 of the batch -> id 2 */
                          -4.0f, 0.0f, 1e-9f,  /* id 0 */
                          -0.1f, 1.0f, -0.5f}; /* id 2: sums 0.2, 0, -0.3 */
    CHECK(trm_tr_signsgd_rows(table, 3, 3, ids, grads, 3, 0.1, 0.5) == TRM_OK, "signSGD");
    /* decay 1 - 0.05 = 0.95 */
    float want[9] = {0.95f + 0.1f, 0.95f, 0.95f - 0.1f, 5, 5, 5, -0.95f - 0.1f, 1.9f, 0.475f + 0.1f};
    for (int i = 0; i < 9; i++) CHECK(fabs(table[i] - want[i]) < 1e-6, "signSGD element %d: %g vs %g", i, table[i], want[i]);
    int32_t bad[1] = {3};
    CHECK(trm_tr_signsgd_rows(table, 3, 3, bad, grads, 1, 0.1, 0.5) == TRM_E_INVALID, "signSGD refuses a bad id");
  }
}

/* ---- random initialisation ---- */

static void check_init(void) {
  /* truncated normal: std as asked, nothing beyond 2 of the underlying std */
  uint64_t st = 99;
  size_t n = 200000;
  double sum = 0, sq = 0, max_abs = 0;
  for (size_t i = 0; i < n; i++) {
    double x = trm_tr_trunc_normal(&st, 0.5);
    sum += x;
    sq += x * x;
    max_abs = fmax(max_abs, fabs(x));
  }
  double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
  /* comp_std = 0.5 / sqrt(1 - 4 phi(2) / erf(sqrt 2)) = 0.5 / 0.8796 */
  double comp = 0.5 / sqrt(1 - 4 * exp(-2.0) / sqrt(2 * 3.14159265358979323846) / erf(sqrt(2.0)));
  CHECK(fabs(mean) < 0.005 && fabs(sd - 0.5) < 0.005, "truncated normal mean %g sd %g", mean, sd);
  CHECK(max_abs <= 2 * comp + 1e-6 && max_abs > 1.9 * comp, "truncated normal range %g (bound %g)", max_abs, 2 * comp);

  trm_config c = {0};
  c.hidden_size = 32;
  c.num_heads = 4;
  c.L_layers = 2;
  c.H_cycles = 3;
  c.L_cycles = 4;
  c.seq_len = 10;
  c.vocab_size = 7;
  c.puzzle_emb_ndim = 32;
  c.num_puzzle_identifiers = 5;
  c.pos_encodings = TRM_POS_ROPE;
  c.expansion = 4;
  CHECK(trm_tr_config_resolve(&c) == TRM_OK, "config");
  CHECK(c.inter == 256 && c.puzzle_len == 1 && c.state_len == 11, "resolved config: inter %lld P %lld",
        (long long)c.inter, (long long)c.puzzle_len);
  trm_tr_params a, b;
  CHECK(trm_tr_params_alloc(&c, &a) == TRM_OK && trm_tr_params_alloc(&c, &b) == TRM_OK, "alloc");
  trm_tr_params_init_random(&a, 5);
  trm_tr_params_init_random(&b, 5);
  CHECK(!memcmp(a.w.data, b.w.data, a.floats * sizeof(float)), "initialisation is deterministic");
  CHECK(a.w.q_bias[0] == -5.0f && a.w.q_bias[1] == -5.0f && a.w.q_weight[0] == 0.0f, "q head: zero weight, bias -5");
  CHECK(a.puzzle_emb[0] == 0.0f, "puzzle embeddings start at zero");
  /* the qkv weight's std is about 1/sqrt(32) */
  const float *qkv = a.w.layers[0].qkv;
  double s2 = 0;
  for (size_t i = 0; i < 3 * 32 * 32; i++) s2 += (double)qkv[i] * qkv[i];
  double sd_qkv = sqrt(s2 / (3 * 32 * 32));
  CHECK(fabs(sd_qkv - 1 / sqrt(32.0)) < 0.02, "qkv init std %g", sd_qkv);
  trm_tr_params_init_random(&b, 6);
  CHECK(memcmp(a.w.data, b.w.data, a.floats * sizeof(float)) != 0, "another seed, other weights");
  trm_tr_params_free(&a);
  trm_tr_params_free(&b);
  trm_config bad = c;
  bad.num_heads = 5;
  CHECK(trm_tr_config_resolve(&bad) == TRM_E_INVALID, "hidden not a multiple of heads is refused");
}

/* ---- bad input ---- */

static void check_errors(void) {
  trm_tr_params p;
  unsigned char junk[64] = {1, 2, 3};
  CHECK(trm_tr_params_load_memory(junk, sizeof junk, &p) != TRM_OK, "junk is refused");
  CHECK(trm_tr_params_load("/nonexistent/model.safetensors", &p) == TRM_E_IO, "a missing file is TRM_E_IO");
  variant v = {"attention+rope", "rope", false};
  mb_model *mb = build_model(&v);
  load_params(mb, &p);
  trm_tr_ctx ctx;
  trm_tr_ctx_init(&ctx, 1);
  trm_tr_work w;
  CHECK(trm_tr_work_init(&ctx, &p, 0, &w) == TRM_E_INVALID, "batch 0 is refused");
  trm_tr_work_init(&ctx, &p, 1, &w);
  size_t n = (size_t)(p.cfg.state_len * p.cfg.hidden_size);
  float *y = xcalloc(n, sizeof(float)), *z = xcalloc(n, sizeof(float)), *gdata = xcalloc(p.floats, sizeof(float));
  trm_tr_dense g;
  trm_tr_dense_view(&p, gdata, &g);
  int32_t tokens[8] = {0}, labels[8] = {0}, id = 0;
  trm_tr_batch batch = {.B = 1, .tokens = tokens, .labels = labels, .puzzle_ids = &id, .ignore_label = -100,
                        .loss_scale = 1};
  tokens[3] = 6;
  CHECK(trm_tr_step(&ctx, &p, &w, &batch, y, z, &g, NULL, NULL) == TRM_E_INVALID, "a token outside the vocabulary");
  tokens[3] = 0;
  id = 3;
  CHECK(trm_tr_step(&ctx, &p, &w, &batch, y, z, &g, NULL, NULL) == TRM_E_INVALID, "a puzzle id outside the table");
  id = 0;
  batch.B = 2;
  CHECK(trm_tr_step(&ctx, &p, &w, &batch, y, z, &g, NULL, NULL) == TRM_E_INVALID, "a batch larger than the work");
  free(y);
  free(z);
  free(gdata);
  trm_tr_dense_view_free(&g);
  trm_tr_work_free(&w);
  trm_tr_ctx_free(&ctx);
  trm_tr_params_free(&p);
  mb_free(mb);
}

/* ---- the engine's fast paths: split of work, no-gradient forward, packed weights ---- */

typedef struct run_out {
  float *g, *y, *z;
} run_out;

/* Two supervision steps of B puzzles on `threads` threads from the initial carry; the second
 * step's gradients and the carry after it. */
static run_out two_steps(trm_tr_params *p, size_t B, size_t threads, const int32_t *tokens, const int32_t *labels,
                         const int32_t *ids) {
  const trm_config *c = &p->cfg;
  size_t n = B * (size_t)(c->state_len * c->hidden_size);
  run_out r = {xcalloc(p->floats, sizeof(float)), xcalloc(n, sizeof(float)), xcalloc(n, sizeof(float))};
  trm_tr_ctx ctx;
  trm_tr_work w;
  if (trm_tr_ctx_init(&ctx, threads) != TRM_OK || trm_tr_work_init(&ctx, p, B, &w) != TRM_OK) exit(2);
  trm_tr_dense g;
  trm_tr_dense_view(p, r.g, &g);
  for (size_t b = 0; b < B; b++) trm_tr_carry_reset(p, r.y, r.z, b);
  trm_tr_batch batch = {.B = B, .tokens = tokens, .labels = labels, .puzzle_ids = ids, .ignore_label = -100,
                        .loss_scale = 1.0 / (double)B};
  for (int step = 0; step < 2; step++) {
    memset(r.g, 0, p->floats * sizeof(float));
    CHECK(trm_tr_step(&ctx, p, &w, &batch, r.y, r.z, &g, NULL, NULL) == TRM_OK, "step: %s", trm_last_error());
  }
  trm_tr_dense_view_free(&g);
  trm_tr_work_free(&w);
  trm_tr_ctx_free(&ctx);
  return r;
}

static void run_free(run_out *r) {
  free(r->g);
  free(r->y);
  free(r->z);
}

static bool same_run(const run_out *a, const run_out *b, size_t floats, size_t n) {
  return !memcmp(a->g, b->g, floats * sizeof(float)) && !memcmp(a->y, b->y, n * sizeof(float)) &&
         !memcmp(a->z, b->z, n * sizeof(float));
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
  return m;
}

static void check_fast_paths(const variant *v) {
  mb_model *mb = build_model(v);
  trm_tr_params p;
  load_params(mb, &p);
  const trm_config *c = &p.cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, seq = (size_t)c->seq_len, V = (size_t)c->vocab_size;
  enum { BIG = 13 };
  int32_t tokens[BIG * 8], labels[BIG * 8], ids[BIG];
  for (size_t i = 0; i < BIG * seq; i++) {
    tokens[i] = (int32_t)((i * 5 + 1) % V);
    labels[i] = (int32_t)((i * 3 + 2) % V);
  }
  for (size_t b = 0; b < BIG; b++) ids[b] = (int32_t)(b % 3);

  /* 1 puzzle (too few rows and states for the workers: products over the pool) and 13 (each
   * worker takes whole rows and states): the same bits on 1, 2 and 3 threads */
  size_t batches[2] = {1, BIG};
  for (int k = 0; k < 2; k++) {
    size_t B = batches[k], n = B * S * D;
    run_out one = two_steps(&p, B, 1, tokens, labels, ids);
    for (size_t threads = 2; threads <= 3; threads++) {
      run_out more = two_steps(&p, B, threads, tokens, labels, ids);
      CHECK(same_run(&one, &more, p.floats, n), "%s batch %zu: 1 and %zu threads give different results", v->name, B,
            threads);
      run_free(&more);
    }
    run_free(&one);
  }

  trm_tr_ctx ctx;
  trm_tr_work w, fresh;
  size_t B = 4, n = B * S * D;
  if (trm_tr_ctx_init(&ctx, 2) != TRM_OK || trm_tr_work_init(&ctx, &p, B, &w) != TRM_OK ||
      trm_tr_work_init(&ctx, &p, B, &fresh) != TRM_OK)
    exit(2);
  float *y = xcalloc(n, sizeof(float)), *z = xcalloc(n, sizeof(float)), *x = xcalloc(n, sizeof(float));
  float *out_tape = xcalloc(n, sizeof(float)), *out_free = xcalloc(n, sizeof(float));
  float *out_a = xcalloc(n, sizeof(float)), *out_b = xcalloc(n, sizeof(float));
  for (size_t b = 0; b < B; b++) trm_tr_carry_reset(&p, y, z, b);
  trm_tr_embed(&p, B, tokens, ids, x);

  /* f without a tape (fused SwiGLU products where the kernel can, nothing saved) against f with
   * one: the same function */
  trm_tr_f_forward(&ctx, &p, &w, B, z, y, x, &w.tapes[1], out_tape);
  trm_tr_f_forward(&ctx, &p, &w, B, z, y, x, NULL, out_free);
  double diff = max_abs_diff(out_tape, out_free, n);
  if (verbose) printf("  %-22s f without tape vs with: max |diff| %.1e\n", v->name, diff);
  CHECK(diff < 1e-5, "%s: f without a tape differs from f with one by %.3e", v->name, diff);

  /* weights changed in place: trm_tr_weights_changed makes f re-pack them, so it agrees with a
   * fresh work memory; without it the stale packed weights are used (packs are really read) */
  float *layer0 = c->mlp_t ? p.w.layers[0].mlpt_gate_up : p.w.layers[0].qkv;
  size_t count = c->mlp_t ? 2 * (size_t)c->inter_t * S : 3 * D * D;
  for (size_t i = 0; i < count; i++) layer0[i] *= 1.5f;
  trm_tr_f_forward(&ctx, &p, &w, B, z, y, x, NULL, out_a);
  trm_tr_f_forward(&ctx, &p, &fresh, B, z, y, x, NULL, out_b);
  CHECK(memcmp(out_a, out_b, n * sizeof(float)) != 0, "%s: stale packed weights went unnoticed?", v->name);
  trm_tr_weights_changed(&w);
  trm_tr_f_forward(&ctx, &p, &w, B, z, y, x, NULL, out_a);
  CHECK(!memcmp(out_a, out_b, n * sizeof(float)), "%s: after trm_tr_weights_changed f differs from a fresh work",
        v->name);

  /* a step, the optimiser, a step: the second step sees the updated weights (the packs are
   * refreshed after each step's forward pass without being told) */
  float *g = xcalloc(p.floats, sizeof(float)), *m1 = xcalloc(p.floats, sizeof(float));
  float *m2 = xcalloc(p.floats, sizeof(float)), *g2 = xcalloc(p.floats, sizeof(float));
  float *y2 = xcalloc(n, sizeof(float)), *z2 = xcalloc(n, sizeof(float));
  trm_tr_dense gv, gv2;
  trm_tr_dense_view(&p, g, &gv);
  trm_tr_dense_view(&p, g2, &gv2);
  trm_tr_batch batch = {.B = B, .tokens = tokens, .labels = labels, .puzzle_ids = ids, .ignore_label = -100,
                        .loss_scale = 0.25};
  CHECK(trm_tr_step(&ctx, &p, &w, &batch, y, z, &gv, NULL, NULL) == TRM_OK, "step");
  trm_tr_adam_atan2(p.w.data, g, m1, m2, p.floats, 1, 1e-2, 0.9, 0.95, 0.1);
  memset(g, 0, p.floats * sizeof(float));
  memcpy(y2, y, n * sizeof(float));
  memcpy(z2, z, n * sizeof(float));
  trm_tr_work fresh2;
  if (trm_tr_work_init(&ctx, &p, B, &fresh2) != TRM_OK) exit(2);
  CHECK(trm_tr_step(&ctx, &p, &w, &batch, y, z, &gv, NULL, NULL) == TRM_OK, "step");
  CHECK(trm_tr_step(&ctx, &p, &fresh2, &batch, y2, z2, &gv2, NULL, NULL) == TRM_OK, "step");
  CHECK(!memcmp(g, g2, p.floats * sizeof(float)) && !memcmp(y, y2, n * sizeof(float)),
        "%s: the step after an optimiser update differs from one on a fresh work memory", v->name);

  trm_tr_dense_view_free(&gv);
  trm_tr_dense_view_free(&gv2);
  free(g);
  free(g2);
  free(m1);
  free(m2);
  free(y2);
  free(z2);
  free(y);
  free(z);
  free(x);
  free(out_tape);
  free(out_free);
  free(out_a);
  free(out_b);
  trm_tr_work_free(&w);
  trm_tr_work_free(&fresh);
  trm_tr_work_free(&fresh2);
  trm_tr_ctx_free(&ctx);
  trm_tr_params_free(&p);
  mb_free(mb);
}

int main(int argc, char **argv) {
  verbose = argc > 1 && !strcmp(argv[1], "-v");
  const variant att_rope = {"attention+rope", "rope", false};
  const variant att_learned = {"attention+learned", "learned", false};
  const variant mlpt = {"mlp_t", "none", true};
  const variant mlpt_learned = {"mlp_t+learned", "learned", true};

  if (verbose) printf("elementwise operations\n");
  check_elementwise();
  if (verbose) printf("layer operations (one layer, 2 states)\n");
  check_op(&att_rope, OP_ATTENTION, "attention+rope", 5e-6);
  check_op(&att_learned, OP_ATTENTION, "attention (no rope)", 5e-6);
  check_op(&mlpt, OP_TOKEN_MLP, "token MLP", 5e-6);
  check_op(&att_rope, OP_CHANNEL, "SwiGLU channel MLP", 5e-6);
  if (verbose) printf("embedding and heads\n");
  check_embed_heads(&att_rope);
  check_embed_heads(&att_learned);
  if (verbose) printf("loss\n");
  check_loss();
  if (verbose) printf("whole supervision step (H_cycles 2, L_cycles 2, L_layers 2, 3 puzzles)\n");
  check_step(&att_rope, 1, 2);
  check_step(&att_learned, 2, 1);
  check_step(&mlpt, 1, 3);
  check_step(&mlpt_learned, 1, 2);
  if (verbose) printf("training forward against the inference library\n");
  check_against_inference(&att_rope);
  check_against_inference(&att_learned);
  check_against_inference(&mlpt);
  if (verbose) printf("fast paths: thread splits, f without tape, packed weights refreshed\n");
  check_fast_paths(&att_rope);
  check_fast_paths(&mlpt);
  check_optimisers();
  check_init();
  check_errors();
  printf("test_grad: %d checks, %d failures; largest gradient error %.2e\n", checks, failures, worst_error);
  return failures ? 1 : 0;
}
