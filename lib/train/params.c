/* Training parameters: one flat row-major array for the dense trained tensors (so that the
 * optimisers and the EMA run over one array), the puzzle-embedding table apart (it is trained
 * sparsely by signSGD), H_init / L_init (buffers in the reference, never trained). */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include "../format/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ---- */

static int64_t reference_inter(double expansion, int64_t n) {
  int64_t v = (int64_t)nearbyint(expansion * (double)n * 2 / 3); /* round half to even */
  return (v + 255) / 256 * 256;
}

trm_status trm_tr_config_resolve(trm_config *c) {
  if (c->hidden_size < 1 || c->num_heads < 1 || c->hidden_size % c->num_heads != 0)
    return trm_fail(TRM_E_INVALID, "hidden_size %lld must be a positive multiple of num_heads %lld",
                    (long long)c->hidden_size, (long long)c->num_heads);
  if (c->L_layers < 1 || c->H_cycles < 1 || c->L_cycles < 1 || c->seq_len < 1 || c->vocab_size < 1)
    return trm_fail(TRM_E_INVALID, "L_layers, H_cycles, L_cycles, seq_len and vocab_size must be >= 1");
  c->head_dim = c->hidden_size / c->num_heads;
  if (c->pos_encodings == TRM_POS_ROPE && c->head_dim % 2 != 0)
    return trm_fail(TRM_E_INVALID, "rope needs an even head_dim, got %lld", (long long)c->head_dim);
  if (c->puzzle_emb_ndim < 0 || c->puzzle_len < 0)
    return trm_fail(TRM_E_INVALID, "puzzle_emb_ndim and puzzle_emb_len must be >= 0");
  if (c->puzzle_emb_ndim == 0) {
    c->puzzle_len = 0;
    if (c->num_puzzle_identifiers < 1) c->num_puzzle_identifiers = 1;
  } else {
    if (c->puzzle_len == 0) c->puzzle_len = (c->puzzle_emb_ndim + c->hidden_size - 1) / c->hidden_size;
    if (c->puzzle_len * c->hidden_size < c->puzzle_emb_ndim)
      return trm_fail(TRM_E_INVALID, "puzzle_emb_ndim %lld does not fit in %lld rows", (long long)c->puzzle_emb_ndim,
                      (long long)c->puzzle_len);
    if (c->num_puzzle_identifiers < 1) return trm_fail(TRM_E_INVALID, "num_puzzle_identifiers must be >= 1");
  }
  c->state_len = c->seq_len + c->puzzle_len;
  if (c->inter <= 0) {
    if (!(c->expansion > 0)) return trm_fail(TRM_E_INVALID, "neither inter nor expansion is given");
    c->inter = reference_inter(c->expansion, c->hidden_size);
  }
  if (c->mlp_t && c->inter_t <= 0) {
    if (!(c->expansion > 0)) return trm_fail(TRM_E_INVALID, "neither inter_t nor expansion is given");
    c->inter_t = reference_inter(c->expansion, c->state_len);
  }
  if (!c->mlp_t) c->inter_t = 0;
  if (!(c->rms_norm_eps > 0)) c->rms_norm_eps = 1e-5;
  if (!(c->rope_theta > 0)) c->rope_theta = 10000.0;
  if (c->halt_max_steps < 1) c->halt_max_steps = 16;
  return TRM_OK;
}

/* ---- layout ---- */

typedef struct layout {
  trm_tr_tensor *t;
  size_t n, floats;
} layout;

static void add(layout *l, const char *name, size_t rows, size_t cols) {
  if (l->t) {
    trm_tr_tensor *e = &l->t[l->n];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->offset = l->floats;
    e->rows = rows;
    e->cols = cols;
  }
  l->n++;
  l->floats += rows * (cols ? cols : 1);
}

/* The dense tensors in a fixed order (reference names). Run once to count, once to fill. */
static void build_layout(const trm_config *c, layout *l) {
  size_t D = (size_t)c->hidden_size, V = (size_t)c->vocab_size, S = (size_t)c->state_len;
  size_t I = (size_t)c->inter, It = (size_t)c->inter_t;
  char name[80];
  add(l, "embed_tokens.embedding_weight", V, D);
  if (c->pos_encodings == TRM_POS_LEARNED) add(l, "embed_pos.embedding_weight", S, D);
  for (int64_t i = 0; i < c->L_layers; i++) {
#define LAYER(suffix, rows, cols)                                                                                  \
  snprintf(name, sizeof name, "L_level.layers.%lld.%s", (long long)i, suffix);                                    \
  add(l, name, rows, cols)
    if (c->mlp_t) {
      LAYER("mlp_t.gate_up_proj.weight", 2 * It, S);
      LAYER("mlp_t.down_proj.weight", S, It);
    } else {
      LAYER("self_attn.qkv_proj.weight", 3 * D, D);
      LAYER("self_attn.o_proj.weight", D, D);
    }
    LAYER("mlp.gate_up_proj.weight", 2 * I, D);
    LAYER("mlp.down_proj.weight", D, I);
#undef LAYER
  }
  add(l, "lm_head.weight", V, D);
  add(l, "q_head.weight", 2, D);
  add(l, "q_head.bias", 2, 0);
}

static float *find(const trm_tr_params *p, float *base, const char *name) {
  for (size_t i = 0; i < p->n_tensors; i++)
    if (!strcmp(p->tensors[i].name, name)) return base + p->tensors[i].offset;
  return NULL;
}

trm_status trm_tr_dense_view(const trm_tr_params *p, float *data, trm_tr_dense *v) {
  const trm_config *c = &p->cfg;
  memset(v, 0, sizeof *v);
  v->data = data;
  v->layers = trm_alloc_zero((size_t)c->L_layers, sizeof *v->layers);
  if (!v->layers) return trm_fail(TRM_E_NOMEM, "out of memory for a parameter view");
  v->embed_tokens = find(p, data, "embed_tokens.embedding_weight");
  v->embed_pos = find(p, data, "embed_pos.embedding_weight");
  v->lm_head = find(p, data, "lm_head.weight");
  v->q_weight = find(p, data, "q_head.weight");
  v->q_bias = find(p, data, "q_head.bias");
  for (int64_t i = 0; i < c->L_layers; i++) {
    char name[80];
    trm_tr_layer *L = &v->layers[i];
#define GET(field, suffix)                                                                                         \
  snprintf(name, sizeof name, "L_level.layers.%lld.%s", (long long)i, suffix);                                    \
  L->field = find(p, data, name)
    GET(qkv, "self_attn.qkv_proj.weight");
    GET(o, "self_attn.o_proj.weight");
    GET(mlpt_gate_up, "mlp_t.gate_up_proj.weight");
    GET(mlpt_down, "mlp_t.down_proj.weight");
    GET(gate_up, "mlp.gate_up_proj.weight");
    GET(down, "mlp.down_proj.weight");
#undef GET
  }
  return TRM_OK;
}

void trm_tr_dense_view_free(trm_tr_dense *v) {
  if (!v) return;
  trm_release(v->layers);
  memset(v, 0, sizeof *v);
}

void trm_tr_params_free(trm_tr_params *p) {
  if (!p) return;
  trm_release(p->w.data);
  trm_tr_dense_view_free(&p->w);
  trm_release(p->tensors);
  trm_release(p->puzzle_emb);
  trm_release(p->H_init);
  trm_release(p->L_init);
  trm_release(p->rope_cos);
  trm_release(p->rope_sin);
  memset(p, 0, sizeof *p);
}

/* RoPE tables computed as the inference library does (float32, angle = p theta^(-2i/hd)). */
static void build_rope(trm_tr_params *p) {
  const trm_config *c = &p->cfg;
  size_t half = (size_t)c->head_dim / 2, S = (size_t)c->state_len;
  for (size_t i = 0; i < half; i++) {
    float inv_freq = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)c->head_dim);
    for (size_t s = 0; s < S; s++) {
      float angle = (float)s * inv_freq;
      p->rope_cos[s * half + i] = cosf(angle);
      p->rope_sin[s * half + i] = sinf(angle);
    }
  }
}

trm_status trm_tr_params_alloc(const trm_config *c, trm_tr_params *p) {
  memset(p, 0, sizeof *p);
  p->cfg = *c;
  layout l = {0};
  build_layout(c, &l);
  l.t = trm_alloc_zero(l.n, sizeof *l.t);
  if (!l.t) return trm_fail(TRM_E_NOMEM, "out of memory for the parameter table");
  l.n = 0;
  l.floats = 0;
  build_layout(c, &l);
  p->tensors = l.t;
  p->n_tensors = l.n;
  p->floats = l.floats;
  size_t D = (size_t)c->hidden_size, S = (size_t)c->state_len, half = (size_t)c->head_dim / 2;
  float *data = trm_alloc_zero(p->floats, sizeof(float));
  p->H_init = trm_alloc_zero(D, sizeof(float));
  p->L_init = trm_alloc_zero(D, sizeof(float));
  bool ok = data && p->H_init && p->L_init;
  if (ok && c->puzzle_emb_ndim > 0)
    ok = (p->puzzle_emb = trm_alloc_zero((size_t)c->num_puzzle_identifiers * (size_t)c->puzzle_emb_ndim,
                                         sizeof(float))) != NULL;
  if (ok && c->pos_encodings == TRM_POS_ROPE) {
    p->rope_cos = trm_alloc_zero(S * half, sizeof(float));
    p->rope_sin = trm_alloc_zero(S * half, sizeof(float));
    ok = p->rope_cos && p->rope_sin;
    if (ok) build_rope(p);
  }
  trm_status st = ok ? trm_tr_dense_view(p, data, &p->w) : trm_fail(TRM_E_NOMEM, "out of memory for parameters");
  if (st != TRM_OK) {
    if (p->w.data != data) trm_release(data); /* a failed view may already hold it */
    trm_tr_params_free(p);
  }
  return st;
}

/* ---- random initialisation ---- */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1.0p-53; }

/* Standard normal truncated to [-2, 2] (Box-Muller, rejecting the tails), scaled as the
 * reference's trunc_normal_init_ so that the result's standard deviation is std. */
float trm_tr_trunc_normal(uint64_t *state, double std) {
  const double pi = 3.14159265358979323846;
  /* variance of a standard normal truncated to [-2, 2]: 1 - 4 phi(2) / erf(sqrt 2) */
  double phi2 = exp(-2.0) / sqrt(2 * pi);
  double comp_std = std / sqrt(1.0 - 4.0 * phi2 / erf(sqrt(2.0)));
  for (;;) {
    double u1 = uniform01(state), u2 = uniform01(state);
    if (u1 <= 0) continue;
    double n = sqrt(-2.0 * log(u1)) * cos(2 * pi * u2);
    if (n >= -2.0 && n <= 2.0) return (float)(n * comp_std);
  }
}

static void fill(float *v, size_t n, uint64_t *state, double std) {
  for (size_t i = 0; i < n; i++) v[i] = std == 0 ? 0.0f : trm_tr_trunc_normal(state, std);
}

void trm_tr_params_init_random(trm_tr_params *p, uint64_t seed) {
  const trm_config *c = &p->cfg;
  uint64_t state = seed;
  size_t D = (size_t)c->hidden_size;
  double embed_std = 1.0 / sqrt((double)D);
  for (size_t i = 0; i < p->n_tensors; i++) {
    const trm_tr_tensor *t = &p->tensors[i];
    float *v = p->w.data + t->offset;
    size_t n = t->rows * (t->cols ? t->cols : 1);
    if (!strcmp(t->name, "q_head.weight")) {
      fill(v, n, &state, 0); /* the reference starts Q at (almost) zero */
    } else if (!strcmp(t->name, "q_head.bias")) {
      for (size_t j = 0; j < n; j++) v[j] = -5.0f;
    } else if (strstr(t->name, "embedding_weight")) {
      fill(v, n, &state, embed_std);
    } else { /* linear weights [out, in]: LeCun std 1/sqrt(in) */
      fill(v, n, &state, 1.0 / sqrt((double)t->cols));
    }
  }
  fill(p->H_init, D, &state, 1.0);
  fill(p->L_init, D, &state, 1.0);
  if (p->puzzle_emb) memset(p->puzzle_emb, 0, (size_t)c->num_puzzle_identifiers * (size_t)c->puzzle_emb_ndim * 4);
}

/* ---- loading a model file ---- */

static trm_status take(const st_file *f, const char *name, float *out, size_t count) {
  const st_tensor *t = st_find(f, name);
  if (!t || t->numel != count || !t->data)
    return trm_fail(TRM_E_FORMAT, "model tensor '%s' is missing or has %llu values, not %zu", name,
                    t ? (unsigned long long)t->numel : 0ull, count);
  st_convert(t->dtype, t->data, count, out);
  return TRM_OK;
}

trm_status trm_tr_params_load_memory(const void *data, size_t size, trm_tr_params *p) {
  if (!data || !p) return trm_fail(TRM_E_INVALID, "trm_tr_params_load_memory: NULL argument");
  /* the inference loader checks every byte and resolves the configuration */
  trm_model *m = NULL;
  trm_status st = trm_model_load_memory(data, size, &m);
  if (st != TRM_OK) return st;
  trm_config c = m->cfg;
  trm_model_free(m);
  if ((st = trm_tr_params_alloc(&c, p)) != TRM_OK) return st;
  st_file f;
  if ((st = st_parse(data, size, size, &f)) != TRM_OK) {
    trm_tr_params_free(p);
    return st;
  }
  for (size_t i = 0; i < p->n_tensors && st == TRM_OK; i++) {
    const trm_tr_tensor *t = &p->tensors[i];
    st = take(&f, t->name, p->w.data + t->offset, t->rows * (t->cols ? t->cols : 1));
  }
  size_t D = (size_t)c.hidden_size;
  if (st == TRM_OK) st = take(&f, "H_init", p->H_init, D);
  if (st == TRM_OK) st = take(&f, "L_init", p->L_init, D);
  if (st == TRM_OK && p->puzzle_emb)
    st = take(&f, "puzzle_emb.weights", p->puzzle_emb, (size_t)c.num_puzzle_identifiers * (size_t)c.puzzle_emb_ndim);
  st_free(&f);
  if (st != TRM_OK) trm_tr_params_free(p);
  return st;
}

trm_status trm_tr_params_load(const char *path, trm_tr_params *p) {
  if (!path || !p) return trm_fail(TRM_E_INVALID, "trm_tr_params_load: NULL argument");
  FILE *fp = fopen(path, "rb");
  if (!fp) return trm_fail(TRM_E_IO, "cannot open '%s': %s", path, strerror(errno));
  trm_status st = TRM_OK;
  uint8_t *buf = NULL;
  long size = -1;
  if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
    st = trm_fail(TRM_E_IO, "cannot size '%s'", path);
  } else if (!(buf = trm_alloc(size ? (size_t)size : 1))) {
    st = trm_fail(TRM_E_NOMEM, "out of memory reading '%s' (%ld bytes)", path, size);
  } else if (fread(buf, 1, (size_t)size, fp) != (size_t)size) {
    st = trm_fail(TRM_E_IO, "cannot read '%s'", path);
  } else {
    st = trm_tr_params_load_memory(buf, (size_t)size, p);
  }
  fclose(fp);
  trm_release(buf);
  return st;
}
