/* Model file -> an immutable trm_model: the configuration from the safetensors metadata, every
 * tensor checked against it, weights converted to float32 and laid out for the kernels. */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, fseeko */
#include "internal.h"

#include "format/safetensors.h"

#include <sys/stat.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ceilings on the configuration. They are far above any TRM (the paper's largest uses
 * hidden 512, state 916, vocab 12) and keep every size product well inside 64 bits. */
#define MAX_HIDDEN 16384
#define MAX_HEADS 1024
#define MAX_LAYERS 256
#define MAX_CYCLES 4096
#define MAX_SEQ 65536
#define MAX_VOCAB (1 << 20)
#define MAX_PUZZLE_NDIM (1 << 20)
#define MAX_PUZZLE_IDS (1 << 28)
#define MAX_STEPS (1 << 20)
#define MAX_INTER (1 << 20)

/* ---- configuration from the metadata ---- */

static trm_status meta_int(const st_file *f, const char *key, bool required, int64_t def, int64_t lo, int64_t hi,
                           int64_t *out) {
  const char *s = st_meta_get(f, key);
  if (!s) {
    if (required) return trm_fail(TRM_E_FORMAT, "model metadata lacks '%s'", key);
    *out = def;
    return TRM_OK;
  }
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  bool plain = (s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9');
  if (!plain || *end != '\0' || errno == ERANGE) /* plain decimal: strtoll alone skips spaces */
    return trm_fail(TRM_E_FORMAT, "model metadata '%s' = '%.40s' is not an integer", key, s);
  if (v < lo || v > hi)
    return trm_fail(TRM_E_FORMAT, "model metadata '%s' = %lld is outside [%lld, %lld]", key, v, (long long)lo,
                    (long long)hi);
  *out = v;
  return TRM_OK;
}

static trm_status meta_real(const st_file *f, const char *key, double def, double *out) {
  const char *s = st_meta_get(f, key);
  if (!s) {
    *out = def;
    return TRM_OK;
  }
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !isfinite(v) || v <= 0)
    return trm_fail(TRM_E_FORMAT, "model metadata '%s' = '%.40s' is not a positive number", key, s);
  *out = v;
  return TRM_OK;
}

static trm_status meta_bool(const st_file *f, const char *key, bool required, bool def, bool *out) {
  const char *s = st_meta_get(f, key);
  if (!s) {
    if (required) return trm_fail(TRM_E_FORMAT, "model metadata lacks '%s'", key);
    *out = def;
    return TRM_OK;
  }
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "1")) *out = true;
  else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "0")) *out = false;
  else return trm_fail(TRM_E_FORMAT, "model metadata '%s' = '%.40s' is not a boolean", key, s);
  return TRM_OK;
}

static trm_status read_config(const st_file *f, trm_config *c) {
  const char *format = st_meta_get(f, "format");
  if (!format || strcmp(format, "libtrm") != 0)
    return trm_fail(TRM_E_FORMAT, "not a libtrm model: metadata 'format' is %s%s%s (convert reference checkpoints "
                                  "with trm-convert)",
                    format ? "'" : "", format ? format : "missing", format ? "'" : "");
  const char *version = st_meta_get(f, "format_version");
  if (!version) return trm_fail(TRM_E_FORMAT, "model metadata lacks 'format_version'");
  if (strcmp(version, "1") != 0)
    return trm_fail(TRM_E_UNSUPPORTED, "model format_version '%.20s' is newer than this libtrm reads (1)", version);

  trm_status st;
#define INT(key, field, req, def, lo, hi)                                                                          \
  if ((st = meta_int(f, key, req, def, lo, hi, &c->field)) != TRM_OK) return st
  INT("hidden_size", hidden_size, true, 0, 1, MAX_HIDDEN);
  INT("num_heads", num_heads, true, 0, 1, MAX_HEADS);
  INT("L_layers", L_layers, true, 0, 1, MAX_LAYERS);
  INT("H_cycles", H_cycles, true, 0, 1, MAX_CYCLES);
  INT("L_cycles", L_cycles, true, 0, 1, MAX_CYCLES);
  INT("seq_len", seq_len, true, 0, 1, MAX_SEQ);
  INT("vocab_size", vocab_size, true, 0, 1, MAX_VOCAB);
  INT("puzzle_emb_ndim", puzzle_emb_ndim, true, 0, 0, MAX_PUZZLE_NDIM);
  INT("puzzle_emb_len", puzzle_len, true, 0, 0, MAX_SEQ);
  INT("halt_max_steps", halt_max_steps, true, 0, 1, MAX_STEPS);
  INT("num_puzzle_identifiers", num_puzzle_identifiers, false, -1, 1, MAX_PUZZLE_IDS);
#undef INT
  if ((st = meta_bool(f, "mlp_t", true, false, &c->mlp_t)) != TRM_OK) return st;
  if ((st = meta_bool(f, "no_ACT_continue", false, true, &c->no_act_continue)) != TRM_OK) return st;
  if ((st = meta_real(f, "rms_norm_eps", 1e-5, &c->rms_norm_eps)) != TRM_OK) return st;
  if ((st = meta_real(f, "rope_theta", 10000.0, &c->rope_theta)) != TRM_OK) return st;
  if ((st = meta_real(f, "expansion", 0.0, &c->expansion)) != TRM_OK) return st;

  const char *pos = st_meta_get(f, "pos_encodings");
  if (!pos) return trm_fail(TRM_E_FORMAT, "model metadata lacks 'pos_encodings'");
  if (!strcmp(pos, "rope")) c->pos_encodings = TRM_POS_ROPE;
  else if (!strcmp(pos, "learned")) c->pos_encodings = TRM_POS_LEARNED;
  else if (!strcmp(pos, "none")) c->pos_encodings = TRM_POS_NONE;
  else return trm_fail(TRM_E_UNSUPPORTED, "pos_encodings '%.40s' is not one of rope, learned, none", pos);

  if (c->hidden_size % c->num_heads != 0)
    return trm_fail(TRM_E_FORMAT, "hidden_size %lld is not a multiple of num_heads %lld", (long long)c->hidden_size,
                    (long long)c->num_heads);
  c->head_dim = c->hidden_size / c->num_heads;
  if (c->pos_encodings == TRM_POS_ROPE && c->head_dim % 2 != 0)
    return trm_fail(TRM_E_FORMAT, "rope needs an even head_dim, got %lld", (long long)c->head_dim);

  /* the reference resolves puzzle_emb_len 0 to ceil(puzzle_emb_ndim / hidden_size) */
  if (c->puzzle_emb_ndim == 0) {
    if (c->puzzle_len != 0)
      return trm_fail(TRM_E_FORMAT, "puzzle_emb_len is %lld but puzzle_emb_ndim is 0 (no prefix to fill)",
                      (long long)c->puzzle_len);
  } else {
    if (c->puzzle_len == 0) c->puzzle_len = (c->puzzle_emb_ndim + c->hidden_size - 1) / c->hidden_size;
    if (c->puzzle_len * c->hidden_size < c->puzzle_emb_ndim)
      return trm_fail(TRM_E_FORMAT, "puzzle_emb_ndim %lld does not fit in puzzle_emb_len %lld rows of %lld",
                      (long long)c->puzzle_emb_ndim, (long long)c->puzzle_len, (long long)c->hidden_size);
  }
  c->state_len = c->seq_len + c->puzzle_len;
  if (c->state_len > MAX_SEQ)
    return trm_fail(TRM_E_FORMAT, "state length seq_len + puzzle_emb_len = %lld exceeds %d", (long long)c->state_len,
                    MAX_SEQ);
  return TRM_OK;
}

/* SwiGLU width the reference computes: 256 * ceil(round(expansion * n * 2/3) / 256), round half to even. */
static int64_t reference_inter(double expansion, int64_t n) {
  double r = nearbyint(expansion * (double)n * 2 / 3);
  int64_t v = (int64_t)r;
  return (v + 255) / 256 * 256;
}

/* ---- tensors ---- */

/* Where the tensor data comes from: the caller's buffer holding the whole file, or the file
 * itself, read one row at a time so that loading never holds more than the weights being built. */
typedef struct loader {
  st_file file;
  trm_model *model;
  FILE *fp;         /* NULL when the whole file is in memory */
  const char *path; /* for messages */
  float *row_buf;   /* one row of the widest tensor */
} loader;

static void format_shape(char *buf, size_t size, size_t ndim, const uint64_t *shape) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (size_t i = 0; i < ndim && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

/* Finds a tensor and checks its dtype and shape against what the configuration needs. */
static trm_status find_tensor(loader *ld, const char *name, size_t ndim, int64_t rows, int64_t cols,
                              st_tensor **out) {
  st_tensor *t = st_find(&ld->file, name);
  if (!t) return trm_fail(TRM_E_FORMAT, "model lacks tensor '%s'", name);
  t->used = true;
  if (t->dtype == ST_UNSUPPORTED)
    return trm_fail(TRM_E_UNSUPPORTED, "tensor '%s' has dtype %s; libtrm loads F32, BF16 and F16", name,
                    t->dtype_name);
  uint64_t want[2] = {(uint64_t)rows, (uint64_t)cols};
  if (t->ndim != ndim || t->shape[0] != want[0] || (ndim == 2 && t->shape[1] != want[1])) {
    char have_s[128], want_s[128];
    format_shape(have_s, sizeof have_s, t->ndim, t->shape);
    format_shape(want_s, sizeof want_s, ndim, want);
    return trm_fail(TRM_E_FORMAT, "tensor '%s' has shape %s; the configuration needs %s", name, have_s, want_s);
  }
  ld->model->param_count += (int64_t)t->numel;
  *out = t;
  return TRM_OK;
}

/* Rows [row, row+count) of a tensor (rows of `width` elements) as float32 into out, checked finite. */
static trm_status read_rows(loader *ld, const st_tensor *t, size_t row, size_t count, size_t width, float *out) {
  size_t n = count * width, bytes = n * t->elem_size;
  uint64_t offset = (uint64_t)row * width * t->elem_size;
  const uint8_t *src;
  if (ld->fp) {
    /* read into the upper end of out and widen in place */
    uint8_t *raw = (uint8_t *)out + (n * sizeof(float) - bytes);
    if (fseeko(ld->fp, (off_t)(ld->file.data_start + t->begin + offset), SEEK_SET) != 0 ||
        fread(raw, 1, bytes, ld->fp) != bytes)
      return trm_fail(TRM_E_IO, "%s: cannot read tensor '%s': %s", ld->path, t->name,
                      ferror(ld->fp) ? strerror(errno) : "file shrank while loading");
    src = raw;
  } else {
    src = t->data + offset;
  }
  st_convert(t->dtype, src, n, out);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(out[i]))
      return trm_fail(TRM_E_FORMAT, "tensor '%s' holds a non-finite value (NaN or Inf) at element %llu", t->name,
                      (unsigned long long)(row * width + i));
  return TRM_OK;
}

/* Takes a tensor whole, as float32 in a new array. */
static trm_status take(loader *ld, const char *name, size_t ndim, int64_t rows, int64_t cols, float **out) {
  st_tensor *t;
  trm_status st = find_tensor(ld, name, ndim, rows, cols, &t);
  if (st != TRM_OK) return st;
  float *values = trm_alloc_zero((size_t)t->numel, sizeof(float));
  if (!values) return trm_fail(TRM_E_NOMEM, "out of memory loading tensor '%s'", name);
  if ((st = read_rows(ld, t, 0, 1, (size_t)t->numel, values)) != TRM_OK) {
    trm_release(values);
    return st;
  }
  *out = values;
  return TRM_OK;
}

typedef struct row_source {
  loader *ld;
  const st_tensor *t;
  size_t width;
} row_source;

static trm_status next_row(void *ctx, size_t row, float *out) {
  const row_source *r = ctx;
  return read_rows(r->ld, r->t, row, 1, r->width, out);
}

/* Reads the rows of a layer's gate_up weight to learn a SwiGLU width, which must be the same in
 * every layer and agree with the expansion factor when the file gives one. */
static trm_status swiglu_width(loader *ld, const char *which, int64_t n_in, int64_t *inter) {
  const trm_config *c = &ld->model->cfg;
  for (int64_t i = 0; i < c->L_layers; i++) {
    char name[96];
    snprintf(name, sizeof name, "L_level.layers.%lld.%s.gate_up_proj.weight", (long long)i, which);
    const st_tensor *t = st_find(&ld->file, name);
    if (!t) return trm_fail(TRM_E_FORMAT, "model lacks tensor '%s'", name);
    if (t->ndim != 2 || t->shape[0] % 2 != 0 || t->shape[0] == 0 || t->shape[0] / 2 > MAX_INTER)
      return trm_fail(TRM_E_FORMAT, "tensor '%s' must be [2 * inter, %lld] with 0 < inter <= %d", name,
                      (long long)n_in, MAX_INTER);
    int64_t w = (int64_t)(t->shape[0] / 2);
    if (i == 0) *inter = w;
    else if (w != *inter)
      return trm_fail(TRM_E_FORMAT, "tensor '%s' has inner width %lld, layer 0 has %lld", name, (long long)w,
                      (long long)*inter);
  }
  if (c->expansion > 0) {
    /* a width beyond any tensor's would not even convert to an integer (found by tests/fuzz/fuzz_load) */
    if (c->expansion * (double)n_in * 2 / 3 > MAX_INTER)
      return trm_fail(TRM_E_FORMAT, "expansion %g gives a %s inner width above the limit of %d", c->expansion, which,
                      MAX_INTER);
    int64_t expect = reference_inter(c->expansion, n_in);
    if (expect != *inter)
      return trm_fail(TRM_E_FORMAT, "%s inner width %lld in the weights, but expansion %g gives %lld", which,
                      (long long)*inter, c->expansion, (long long)expect);
  }
  return TRM_OK;
}

enum packing { RIGHT, LEFT, SWIGLU };

/* Takes a layer weight [rows, cols] and packs it for the kernel row by row: as the right
 * operand of x W^T, (left) as the left operand of W h, or as a SwiGLU gate_up weight for the
 * fused product when the kernel can (else as a plain right operand). */
static trm_status take_packed(loader *ld, const char *name, int64_t rows, int64_t cols, enum packing how,
                              trm_packed *out) {
  st_tensor *t;
  trm_status st = find_tensor(ld, name, 2, rows, cols, &t);
  if (st != TRM_OK) return st;
  const trm_kernel *k = ld->model->kernel;
  row_source src = {ld, t, (size_t)cols};
  if (how == SWIGLU && trm_swiglu_fusable(k, (size_t)rows / 2, (size_t)cols))
    return trm_pack_swiglu_rows(k, (size_t)rows / 2, (size_t)cols, next_row, &src, ld->row_buf, out);
  if (how == LEFT) return trm_pack_left_rows(k, (size_t)rows, (size_t)cols, next_row, &src, ld->row_buf, out);
  return trm_pack_right_rows(k, (size_t)rows, (size_t)cols, next_row, &src, ld->row_buf, out);
}

static trm_status load_layer(loader *ld, int64_t i, trm_layer *layer) {
  const trm_config *c = &ld->model->cfg;
  int64_t D = c->hidden_size, S = c->state_len;
  char name[96];
  trm_status st;
#define TAKE(suffix, rows, cols, how, field)                                                                      \
  snprintf(name, sizeof name, "L_level.layers.%lld.%s", (long long)i, suffix);                                    \
  if ((st = take_packed(ld, name, rows, cols, how, &layer->field)) != TRM_OK) return st
  if (c->mlp_t) {
    TAKE("mlp_t.gate_up_proj.weight", 2 * c->inter_t, S, SWIGLU, mlpt_gate_up);
    TAKE("mlp_t.down_proj.weight", S, c->inter_t, LEFT, mlpt_down);
  } else {
    TAKE("self_attn.qkv_proj.weight", 3 * D, D, RIGHT, qkv);
    TAKE("self_attn.o_proj.weight", D, D, RIGHT, o);
  }
  TAKE("mlp.gate_up_proj.weight", 2 * c->inter, D, SWIGLU, gate_up);
  TAKE("mlp.down_proj.weight", D, c->inter, RIGHT, down);
#undef TAKE
  return TRM_OK;
}

/* RoPE tables as the reference builds them in float32: angle = p * theta^(-2i/head_dim). */
static trm_status build_rope(trm_model *m) {
  const trm_config *c = &m->cfg;
  size_t half = (size_t)c->head_dim / 2, S = (size_t)c->state_len;
  m->rope_cos = trm_alloc_zero(S * half, sizeof(float));
  m->rope_sin = trm_alloc_zero(S * half, sizeof(float));
  if (!m->rope_cos || !m->rope_sin) return trm_fail(TRM_E_NOMEM, "out of memory for the rope tables");
  for (size_t i = 0; i < half; i++) {
    float inv_freq = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)c->head_dim);
    for (size_t p = 0; p < S; p++) {
      float angle = (float)p * inv_freq;
      m->rope_cos[p * half + i] = cosf(angle);
      m->rope_sin[p * half + i] = sinf(angle);
    }
  }
  return TRM_OK;
}

static trm_status load_weights(loader *ld) {
  trm_model *m = ld->model;
  trm_config *c = &m->cfg;
  int64_t D = c->hidden_size, S = c->state_len, V = c->vocab_size;
  trm_status st;

  m->kernel = trm_kernel_select();
  if ((st = swiglu_width(ld, "mlp", D, &c->inter)) != TRM_OK) return st;
  if (c->mlp_t && (st = swiglu_width(ld, "mlp_t", S, &c->inter_t)) != TRM_OK) return st;
  /* the widest row a packed weight has: D, S, inter or inter_t */
  int64_t widest = D > S ? D : S;
  widest = widest > c->inter ? widest : c->inter;
  widest = widest > c->inter_t ? widest : c->inter_t;
  ld->row_buf = trm_alloc_zero((size_t)widest, sizeof(float));
  if (!ld->row_buf) return trm_fail(TRM_E_NOMEM, "out of memory for a row buffer");

  if ((st = take(ld, "embed_tokens.embedding_weight", 2, V, D, &m->embed_tokens)) != TRM_OK) return st;
  if (c->puzzle_emb_ndim > 0) {
    const st_tensor *t = st_find(&ld->file, "puzzle_emb.weights");
    if (!t) return trm_fail(TRM_E_FORMAT, "model lacks tensor 'puzzle_emb.weights'");
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > MAX_PUZZLE_IDS)
      return trm_fail(TRM_E_FORMAT, "tensor 'puzzle_emb.weights' must be [num_puzzle_identifiers, %lld] with 1 to "
                                    "%d rows",
                      (long long)c->puzzle_emb_ndim, MAX_PUZZLE_IDS);
    if (c->num_puzzle_identifiers >= 0 && (uint64_t)c->num_puzzle_identifiers != t->shape[0])
      return trm_fail(TRM_E_FORMAT, "metadata num_puzzle_identifiers %lld, but 'puzzle_emb.weights' has %llu rows",
                      (long long)c->num_puzzle_identifiers, (unsigned long long)t->shape[0]);
    c->num_puzzle_identifiers = (int64_t)t->shape[0];
    if ((st = take(ld, "puzzle_emb.weights", 2, c->num_puzzle_identifiers, c->puzzle_emb_ndim,
                   &m->puzzle_emb)) != TRM_OK)
      return st;
  } else if (c->num_puzzle_identifiers < 0) {
    c->num_puzzle_identifiers = 1;
  }
  if (c->pos_encodings == TRM_POS_LEARNED &&
      (st = take(ld, "embed_pos.embedding_weight", 2, S, D, &m->embed_pos)) != TRM_OK)
    return st;
  if ((st = take(ld, "H_init", 1, D, 0, &m->H_init)) != TRM_OK) return st;
  if ((st = take(ld, "L_init", 1, D, 0, &m->L_init)) != TRM_OK) return st;

  m->layers = trm_alloc_zero((size_t)c->L_layers, sizeof *m->layers);
  if (!m->layers) return trm_fail(TRM_E_NOMEM, "out of memory for the layer table");
  for (int64_t i = 0; i < c->L_layers; i++)
    if ((st = load_layer(ld, i, &m->layers[i])) != TRM_OK) return st;

  if ((st = take(ld, "lm_head.weight", 2, V, D, &m->lm_head)) != TRM_OK) return st;
  if ((st = take(ld, "q_head.weight", 2, 2, D, &m->q_weight)) != TRM_OK) return st;
  float *bias;
  if ((st = take(ld, "q_head.bias", 1, 2, 0, &bias)) != TRM_OK) return st;
  m->q_bias[0] = bias[0];
  m->q_bias[1] = bias[1];
  trm_release(bias);

  for (size_t i = 0; i < ld->file.n_tensors; i++)
    if (!ld->file.tensors[i].used)
      return trm_fail(TRM_E_FORMAT, "model has tensor '%s', which this configuration does not use",
                      ld->file.tensors[i].name);

  if (c->pos_encodings == TRM_POS_ROPE) return build_rope(m);
  return TRM_OK;
}

TRM_API void trm_model_free(trm_model *m) {
  if (!m) return;
  if (m->layers) {
    for (int64_t i = 0; i < m->cfg.L_layers; i++) {
      trm_layer *l = &m->layers[i];
      trm_packed_free(&l->qkv);
      trm_packed_free(&l->o);
      trm_packed_free(&l->mlpt_gate_up);
      trm_packed_free(&l->mlpt_down);
      trm_packed_free(&l->gate_up);
      trm_packed_free(&l->down);
    }
  }
  trm_release(m->layers);
  trm_release(m->embed_tokens);
  trm_release(m->puzzle_emb);
  trm_release(m->embed_pos);
  trm_release(m->H_init);
  trm_release(m->L_init);
  trm_release(m->lm_head);
  trm_release(m->q_weight);
  trm_release(m->rope_cos);
  trm_release(m->rope_sin);
  trm_release(m);
}

/* Builds the model from a parsed header; tensor data from memory or, with fp, from the file. */
static trm_status load(const uint8_t *head, size_t head_len, uint64_t file_size, FILE *fp, const char *path,
                       trm_model **out) {
  loader ld;
  memset(&ld, 0, sizeof ld);
  ld.fp = fp;
  ld.path = path;
  trm_status st = st_parse(head, head_len, file_size, &ld.file);
  if (st != TRM_OK) return st;
  ld.model = trm_alloc_zero(1, sizeof *ld.model);
  if (!ld.model) {
    st_free(&ld.file);
    return trm_fail(TRM_E_NOMEM, "out of memory for the model");
  }
  st = read_config(&ld.file, &ld.model->cfg);
  if (st == TRM_OK) st = load_weights(&ld);
  st_free(&ld.file);
  trm_release(ld.row_buf);
  if (st != TRM_OK) {
    trm_model_free(ld.model);
    return st;
  }
  *out = ld.model;
  return TRM_OK;
}

TRM_API trm_status trm_model_load_memory(const void *data, size_t size, trm_model **out) {
  if (!data || !out) return trm_fail(TRM_E_INVALID, "trm_model_load_memory: %s is NULL", !data ? "data" : "out");
  return load(data, size, size, NULL, NULL, out);
}

TRM_API trm_status trm_model_load(const char *path, trm_model **out) {
  if (!path || !out) return trm_fail(TRM_E_INVALID, "trm_model_load: %s is NULL", !path ? "path" : "out");
  FILE *fp = fopen(path, "rb");
  if (!fp) return trm_fail(TRM_E_IO, "cannot open '%s': %s", path, strerror(errno));
  trm_status st = TRM_OK;
  uint8_t first8[8], *head = NULL;
  uint64_t header_len = 0, size = 0;
  struct stat info;
  if (fstat(fileno(fp), &info) != 0 || !S_ISREG(info.st_mode)) {
    /* a directory opens fine on Linux, and would report a nonsense size */
    st = trm_fail(TRM_E_IO, "cannot read '%s': not a regular file", path);
  } else if ((size = (uint64_t)info.st_size) < 8) {
    st = trm_fail(TRM_E_FORMAT, "file of %llu bytes is too short for a safetensors header", (unsigned long long)size);
  } else if (fread(first8, 1, 8, fp) != 8) {
    st = trm_fail(TRM_E_IO, "cannot read '%s': %s", path, ferror(fp) ? strerror(errno) : "file shrank while reading");
  } else if ((st = st_header_length(first8, size, &header_len)) != TRM_OK) {
    /* message set */
  } else if (!(head = trm_alloc((size_t)(8 + header_len)))) {
    st = trm_fail(TRM_E_NOMEM, "out of memory for the header of '%s' (%llu bytes)", path,
                  (unsigned long long)header_len);
  } else if (memcpy(head, first8, 8), fread(head + 8, 1, (size_t)header_len, fp) != header_len) {
    st = trm_fail(TRM_E_IO, "cannot read '%s': %s", path, ferror(fp) ? strerror(errno) : "file shrank while reading");
  } else {
    st = load(head, (size_t)(8 + header_len), size, fp, path, out);
  }
  fclose(fp);
  trm_release(head);
  if (st != TRM_OK && st != TRM_E_NOMEM && strncmp(trm_last_error(), path, strlen(path)) != 0) {
    /* name the file in the message */
    char detail[400];
    snprintf(detail, sizeof detail, "%s", trm_last_error());
    trm_fail(st, "%s: %s", path, detail);
  }
  return st;
}

TRM_API trm_status trm_model_info(const trm_model *m, const char *key, int64_t *value) {
  if (!m || !key || !value) return trm_fail(TRM_E_INVALID, "trm_model_info: NULL argument");
  const trm_config *c = &m->cfg;
  const struct {
    const char *key;
    int64_t value;
  } facts[] = {
      {"hidden_size", c->hidden_size},
      {"num_heads", c->num_heads},
      {"head_dim", c->head_dim},
      {"L_layers", c->L_layers},
      {"H_cycles", c->H_cycles},
      {"L_cycles", c->L_cycles},
      {"seq_len", c->seq_len},
      {"vocab_size", c->vocab_size},
      {"num_puzzle_identifiers", c->num_puzzle_identifiers},
      {"puzzle_emb_ndim", c->puzzle_emb_ndim},
      {"puzzle_emb_len", c->puzzle_len},
      {"state_len", c->state_len},
      {"inter_size", c->inter},
      {"inter_t_size", c->mlp_t ? c->inter_t : 0},
      {"halt_max_steps", c->halt_max_steps},
      {"mlp_t", c->mlp_t},
      {"no_ACT_continue", c->no_act_continue},
      {"pos_encodings", c->pos_encodings},
      {"param_count", m->param_count},
      {"isa", m->kernel->isa},
  };
  for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
    if (strcmp(key, facts[i].key) == 0) {
      *value = facts[i].value;
      return TRM_OK;
    }
  }
  return trm_fail(TRM_E_INVALID, "trm_model_info: unknown key '%.64s'", key);
}

TRM_API trm_status trm_model_info_double(const trm_model *m, const char *key, double *value) {
  if (!m || !key || !value) return trm_fail(TRM_E_INVALID, "trm_model_info_double: NULL argument");
  if (!strcmp(key, "rms_norm_eps")) *value = m->cfg.rms_norm_eps;
  else if (!strcmp(key, "rope_theta")) *value = m->cfg.rope_theta;
  else if (!strcmp(key, "expansion")) *value = m->cfg.expansion;
  else return trm_fail(TRM_E_INVALID, "trm_model_info_double: unknown key '%.64s'", key);
  return TRM_OK;
}
