/* Files a trainer writes: libtrm model files (docs/FORMAT.md) and checkpoints. Both are
 * safetensors; a checkpoint holds the model's tensors (the trained weights) under their model
 * names plus the trainer's state under "trainer.*" names, and its configuration, options and
 * counters as metadata strings. Checkpoints are read back with the library's safetensors parser,
 * which checks every offset; each tensor is then checked against the configuration. */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include "../format/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a safetensors writer ---- */

typedef struct out_tensor {
  char name[96];
  const char *dtype; /* "F32", "I32" or "U8" */
  size_t elem;       /* bytes per element */
  size_t ndim;
  uint64_t shape[2];
  const void *data;
} out_tensor;

typedef struct out_meta {
  char key[48];
  char value[64];
} out_meta;

typedef struct out_list {
  out_tensor t[600];
  size_t n;
  out_meta m[64];
  size_t nm;
  bool overflow;
} out_list;

static void add_tensor(out_list *l, const char *name, const char *dtype, size_t elem, size_t rows, size_t cols,
                       const void *data) {
  if (l->n >= sizeof l->t / sizeof l->t[0]) {
    l->overflow = true;
    return;
  }
  out_tensor *t = &l->t[l->n++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->dtype = dtype;
  t->elem = elem;
  t->ndim = cols ? 2 : 1;
  t->shape[0] = rows;
  t->shape[1] = cols;
  t->data = data;
}

static void add_meta(out_list *l, const char *key, const char *fmt, ...) TRM_PRINTF(3, 4);
static void add_meta(out_list *l, const char *key, const char *fmt, ...) {
  if (l->nm >= sizeof l->m / sizeof l->m[0]) {
    l->overflow = true;
    return;
  }
  out_meta *m = &l->m[l->nm++];
  snprintf(m->key, sizeof m->key, "%s", key);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->value, sizeof m->value, fmt, ap);
  va_end(ap);
}

static size_t numel(const out_tensor *t) { return (size_t)t->shape[0] * (t->ndim == 2 ? (size_t)t->shape[1] : 1); }

typedef struct text {
  char *buf; /* NULL: count only */
  size_t len;
} text;

static void emit(text *w, const char *fmt, ...) TRM_PRINTF(2, 3);
static void emit(text *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (w->buf) memcpy(w->buf + w->len, tmp, (size_t)n);
  w->len += (size_t)n;
}

static void header(const out_list *l, text *w) {
  emit(w, "{\"__metadata__\":{");
  for (size_t i = 0; i < l->nm; i++) emit(w, "%s\"%s\":\"%s\"", i ? "," : "", l->m[i].key, l->m[i].value);
  emit(w, "}");
  uint64_t offset = 0;
  for (size_t i = 0; i < l->n; i++) {
    const out_tensor *t = &l->t[i];
    uint64_t bytes = (uint64_t)numel(t) * t->elem;
    emit(w, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%" PRIu64, t->name, t->dtype, t->shape[0]);
    if (t->ndim == 2) emit(w, ",%" PRIu64, t->shape[1]);
    emit(w, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset, offset + bytes);
    offset += bytes;
  }
  emit(w, "}");
}

static trm_status build_file(const out_list *l, uint8_t **out, size_t *size) {
  if (l->overflow) return trm_fail(TRM_E_INVALID, "too many tensors or metadata entries to write");
  text count = {0};
  header(l, &count);
  size_t header_len = (count.len + 7) / 8 * 8; /* padded with spaces so the data starts aligned */
  size_t data = 0;
  for (size_t i = 0; i < l->n; i++) data += numel(&l->t[i]) * l->t[i].elem;
  size_t total = 8 + header_len + data;
  uint8_t *buf = trm_alloc(total);
  if (!buf) return trm_fail(TRM_E_NOMEM, "out of memory for a %zu-byte file image", total);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
  text w = {(char *)buf + 8, 0};
  header(l, &w);
  memset(buf + 8 + w.len, ' ', header_len - w.len);
  uint8_t *p = buf + 8 + header_len;
  for (size_t i = 0; i < l->n; i++) { /* little-endian hosts: the arrays are the bytes */
    size_t bytes = numel(&l->t[i]) * l->t[i].elem;
    memcpy(p, l->t[i].data, bytes);
    p += bytes;
  }
  *out = buf;
  *size = total;
  return TRM_OK;
}

trm_status trm_tr_write_file(const char *path, const uint8_t *data, size_t size) {
  size_t n = strlen(path);
  char *tmp = trm_alloc(n + 8);
  if (!tmp) return trm_fail(TRM_E_NOMEM, "out of memory for a file name");
  snprintf(tmp, n + 8, "%s.tmp", path);
  FILE *fp = fopen(tmp, "wb");
  trm_status st = TRM_OK;
  if (!fp) {
    st = trm_fail(TRM_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
  } else {
    bool ok = fwrite(data, 1, size, fp) == size;
    ok = (fclose(fp) == 0) && ok;
    if (!ok) st = trm_fail(TRM_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
    else if (rename(tmp, path) != 0) st = trm_fail(TRM_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st != TRM_OK) remove(tmp);
  }
  trm_release(tmp);
  return st;
}

/* ---- the model's tensors and metadata ---- */

static const char *pos_name(int pos) { return pos == TRM_POS_ROPE ? "rope" : pos == TRM_POS_LEARNED ? "learned" : "none"; }

static void model_part(const trm_trainer *t, const float *dense, out_list *l) {
  const trm_tr_params *p = &t->p;
  const trm_config *c = &p->cfg;
  add_meta(l, "format", "libtrm");
  add_meta(l, "format_version", "1");
  add_meta(l, "hidden_size", "%lld", (long long)c->hidden_size);
  add_meta(l, "num_heads", "%lld", (long long)c->num_heads);
  add_meta(l, "L_layers", "%lld", (long long)c->L_layers);
  add_meta(l, "H_cycles", "%lld", (long long)c->H_cycles);
  add_meta(l, "L_cycles", "%lld", (long long)c->L_cycles);
  add_meta(l, "seq_len", "%lld", (long long)c->seq_len);
  add_meta(l, "vocab_size", "%lld", (long long)c->vocab_size);
  add_meta(l, "puzzle_emb_ndim", "%lld", (long long)c->puzzle_emb_ndim);
  add_meta(l, "puzzle_emb_len", "%lld", (long long)c->puzzle_len);
  add_meta(l, "num_puzzle_identifiers", "%lld", (long long)c->num_puzzle_identifiers);
  add_meta(l, "pos_encodings", "%s", pos_name(c->pos_encodings));
  add_meta(l, "mlp_t", "%s", c->mlp_t ? "true" : "false");
  add_meta(l, "halt_max_steps", "%lld", (long long)c->halt_max_steps);
  add_meta(l, "no_ACT_continue", "%s", c->no_act_continue ? "true" : "false");
  add_meta(l, "rms_norm_eps", "%.17g", c->rms_norm_eps);
  add_meta(l, "rope_theta", "%.17g", c->rope_theta);
  if (t->expansion_known) add_meta(l, "expansion", "%.17g", c->expansion);
  add_meta(l, "source", "libtrm trainer");
  for (size_t i = 0; i < p->n_tensors; i++) {
    const trm_tr_tensor *e = &p->tensors[i];
    add_tensor(l, e->name, "F32", 4, e->rows, e->cols, dense + e->offset);
  }
  add_tensor(l, "H_init", "F32", 4, (size_t)c->hidden_size, 0, p->H_init);
  add_tensor(l, "L_init", "F32", 4, (size_t)c->hidden_size, 0, p->L_init);
  if (p->puzzle_emb)
    add_tensor(l, "puzzle_emb.weights", "F32", 4, (size_t)c->num_puzzle_identifiers, (size_t)c->puzzle_emb_ndim,
               p->puzzle_emb);
}

trm_status trm_tr_model_bytes(const trm_trainer *t, bool ema, uint8_t **out, size_t *size) {
  out_list *l = trm_alloc_zero(1, sizeof *l);
  if (!l) return trm_fail(TRM_E_NOMEM, "out of memory for a model file");
  model_part(t, ema && t->ema ? t->ema : t->p.w.data, l);
  trm_status st = build_file(l, out, size);
  trm_release(l);
  return st;
}

/* ---- checkpoints ---- */

static const char *const option_keys[] = {
    "lr", "lr_min_ratio", "warmup_steps", "total_steps", "weight_decay", "beta1", "beta2", "eps", "ema",
    "puzzle_emb_lr", "puzzle_emb_weight_decay", "optimizer", "batch", "threads", "seed",
    "halt_exploration_prob", "halt_max_steps", "augment"};

trm_status trm_tr_checkpoint_save(const trm_trainer *t, const char *path) {
  out_list *l = trm_alloc_zero(1, sizeof *l);
  if (!l) return trm_fail(TRM_E_NOMEM, "out of memory for a checkpoint");
  const trm_config *c = &t->p.cfg;
  model_part(t, t->p.w.data, l);
  add_meta(l, "libtrm_checkpoint", "1");
  add_meta(l, "inter", "%lld", (long long)c->inter);
  add_meta(l, "inter_t", "%lld", (long long)c->inter_t);
  add_meta(l, "expansion_known", "%d", t->expansion_known ? 1 : 0);
  for (int i = 0; i < 18; i++) {
    if (i + 1 == TRM_TRAIN_SEED || i + 1 == TRM_TRAIN_HALT_MAX_STEPS) continue; /* written apart */
    double v = 0;
    trm_trainer_get_option(t, (trm_train_option)(i + 1), &v);
    add_meta(l, option_keys[i], "%.17g", v);
  }
  add_meta(l, "seed", "%" PRIu64, t->opt.seed); /* exact, as an integer */
  add_meta(l, "step", "%lld", (long long)t->step);
  add_meta(l, "drawn", "%" PRIu64, t->drawn);
  add_meta(l, "data_count", "%zu", t->count);
  add_meta(l, "data_hash", "%" PRIu64, t->data_hash);
  add_meta(l, "ignore_label", "%d", (int)t->ignore_label);
  add_meta(l, "started", "%zu", t->B);
  size_t n = t->p.floats;
  if (t->B > 0) {
    size_t B = t->B, seq = (size_t)c->seq_len, SD = (size_t)(c->state_len * c->hidden_size);
    add_tensor(l, "trainer.m", "F32", 4, n, 0, t->m);
    add_tensor(l, "trainer.v", "F32", 4, n, 0, t->v);
    if (t->ema) add_tensor(l, "trainer.ema", "F32", 4, n, 0, t->ema);
    add_tensor(l, "trainer.y", "F32", 4, B, SD, t->y);
    add_tensor(l, "trainer.z", "F32", 4, B, SD, t->z);
    add_tensor(l, "trainer.slot_tokens", "I32", 4, B, seq, t->slot_tokens);
    add_tensor(l, "trainer.slot_labels", "I32", 4, B, seq, t->slot_labels);
    add_tensor(l, "trainer.slot_ids", "I32", 4, B, 0, t->slot_ids);
    add_tensor(l, "trainer.slot_steps", "I32", 4, B, 0, t->slot_steps);
    add_tensor(l, "trainer.slot_halted", "U8", 1, B, 0, t->slot_halted);
  }
  uint8_t *bytes;
  size_t size;
  trm_status st = build_file(l, &bytes, &size);
  trm_release(l);
  if (st != TRM_OK) return st;
  st = trm_tr_write_file(path, bytes, size);
  trm_release(bytes);
  return st;
}

static trm_status meta_text(const st_file *f, const char *key, const char **out) {
  *out = st_meta_get(f, key);
  if (!*out) return trm_fail(TRM_E_FORMAT, "checkpoint: metadata '%s' is missing", key);
  return TRM_OK;
}

static trm_status meta_u64(const st_file *f, const char *key, uint64_t hi, uint64_t *out) {
  const char *v;
  trm_status st = meta_text(f, key, &v);
  if (st != TRM_OK) return st;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (end == v || *end || errno == ERANGE || v[0] == '-' || x > hi)
    return trm_fail(TRM_E_FORMAT, "checkpoint: metadata '%s' = '%.40s' is not an integer in [0, %" PRIu64 "]", key, v, hi);
  *out = x;
  return TRM_OK;
}

static trm_status meta_i64(const st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out) {
  const char *v;
  trm_status st = meta_text(f, key, &v);
  if (st != TRM_OK) return st;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end || errno == ERANGE || x < lo || x > hi)
    return trm_fail(TRM_E_FORMAT, "checkpoint: metadata '%s' = '%.40s' is not an integer in [%lld, %lld]", key, v,
                    (long long)lo, (long long)hi);
  *out = x;
  return TRM_OK;
}

static trm_status meta_f64(const st_file *f, const char *key, double *out) {
  const char *v;
  trm_status st = meta_text(f, key, &v);
  if (st != TRM_OK) return st;
  char *end;
  double x = strtod(v, &end);
  if (end == v || *end || !isfinite(x)) return trm_fail(TRM_E_FORMAT, "checkpoint: metadata '%s' = '%.40s' is not a number", key, v);
  *out = x;
  return TRM_OK;
}

/* Copies tensor `name` of exactly `count` elements of `dtype` into out. */
static trm_status take(const st_file *f, const char *name, const char *dtype, size_t elem, size_t count, void *out) {
  const st_tensor *t = st_find(f, name);
  if (!t || !t->data || strcmp(t->dtype_name, dtype) != 0 || t->elem_size != elem || t->numel != count)
    return trm_fail(TRM_E_FORMAT, "checkpoint: tensor '%s' is missing or is not %zu values of %s", name, count, dtype);
  memcpy(out, t->data, count * elem);
  return TRM_OK;
}

static trm_status read_config(const st_file *f, trm_config *c, bool *expansion_known) {
  memset(c, 0, sizeof *c);
  const int64_t big = 1 << 20;
  trm_status st;
  int64_t known = 0;
  if ((st = meta_i64(f, "hidden_size", 1, 1 << 16, &c->hidden_size)) || (st = meta_i64(f, "num_heads", 1, 1 << 12, &c->num_heads)) ||
      (st = meta_i64(f, "L_layers", 1, 256, &c->L_layers)) || (st = meta_i64(f, "H_cycles", 1, 256, &c->H_cycles)) ||
      (st = meta_i64(f, "L_cycles", 1, 256, &c->L_cycles)) || (st = meta_i64(f, "seq_len", 1, big, &c->seq_len)) ||
      (st = meta_i64(f, "vocab_size", 1, big, &c->vocab_size)) ||
      (st = meta_i64(f, "puzzle_emb_ndim", 0, 1 << 16, &c->puzzle_emb_ndim)) ||
      (st = meta_i64(f, "puzzle_emb_len", 0, 1024, &c->puzzle_len)) ||
      (st = meta_i64(f, "num_puzzle_identifiers", 1, big * 16, &c->num_puzzle_identifiers)) ||
      (st = meta_i64(f, "halt_max_steps", 1, 1024, &c->halt_max_steps)) ||
      (st = meta_i64(f, "inter", 1, big, &c->inter)) || (st = meta_i64(f, "inter_t", 0, big, &c->inter_t)) ||
      (st = meta_f64(f, "rms_norm_eps", &c->rms_norm_eps)) || (st = meta_f64(f, "rope_theta", &c->rope_theta)) ||
      (st = meta_i64(f, "expansion_known", 0, 1, &known)))
    return st;
  *expansion_known = known;
  if (known && (st = meta_f64(f, "expansion", &c->expansion)) != TRM_OK) return st;
  const char *pos, *mlp_t, *nac;
  if ((st = meta_text(f, "pos_encodings", &pos)) || (st = meta_text(f, "mlp_t", &mlp_t)) ||
      (st = meta_text(f, "no_ACT_continue", &nac)))
    return st;
  if (!strcmp(pos, "rope")) c->pos_encodings = TRM_POS_ROPE;
  else if (!strcmp(pos, "learned")) c->pos_encodings = TRM_POS_LEARNED;
  else if (!strcmp(pos, "none")) c->pos_encodings = TRM_POS_NONE;
  else return trm_fail(TRM_E_FORMAT, "checkpoint: pos_encodings '%.20s'", pos);
  c->mlp_t = !strcmp(mlp_t, "true");
  c->no_act_continue = !strcmp(nac, "true");
  if (c->mlp_t && c->inter_t < 1) return trm_fail(TRM_E_FORMAT, "checkpoint: inter_t must be >= 1 with mlp_t");
  size_t check;
  if (!trm_mul_ok((size_t)c->hidden_size, (size_t)c->inter, &check) ||
      !trm_mul_ok((size_t)c->vocab_size, (size_t)c->hidden_size, &check) || check > ((size_t)1 << 34))
    return trm_fail(TRM_E_FORMAT, "checkpoint: configuration too large");
  st = trm_tr_config_resolve(c);
  return st == TRM_OK ? TRM_OK : trm_fail(TRM_E_FORMAT, "checkpoint: %s", trm_last_error());
}

static trm_status load_from(const st_file *f, trm_trainer *t) {
  trm_status st;
  if (!st_meta_get(f, "libtrm_checkpoint"))
    return trm_fail(TRM_E_FORMAT, "not a libtrm checkpoint (no 'libtrm_checkpoint' metadata)");
  trm_config c;
  if ((st = read_config(f, &c, &t->expansion_known)) != TRM_OK) return st;
  if ((st = trm_tr_params_alloc(&c, &t->p)) != TRM_OK) return st;
  trm_tr_params *p = &t->p;
  for (size_t i = 0; i < p->n_tensors; i++) {
    const trm_tr_tensor *e = &p->tensors[i];
    if ((st = take(f, e->name, "F32", 4, e->rows * (e->cols ? e->cols : 1), p->w.data + e->offset)) != TRM_OK) return st;
  }
  size_t D = (size_t)c.hidden_size;
  if ((st = take(f, "H_init", "F32", 4, D, p->H_init)) || (st = take(f, "L_init", "F32", 4, D, p->L_init))) return st;
  if (p->puzzle_emb &&
      (st = take(f, "puzzle_emb.weights", "F32", 4, (size_t)(c.num_puzzle_identifiers * c.puzzle_emb_ndim), p->puzzle_emb)))
    return st;
  /* options through the setter (validated), with the trainer not yet started */
  for (int i = 0; i < 18; i++) {
    double v;
    if ((st = meta_f64(f, option_keys[i], &v)) != TRM_OK) return st;
    if (i + 1 == TRM_TRAIN_SEED) continue;
    if ((st = trm_trainer_set_option(t, (trm_train_option)(i + 1), v)) != TRM_OK)
      return trm_fail(TRM_E_FORMAT, "checkpoint: %s", trm_last_error());
  }
  uint64_t u;
  int64_t i64;
  if ((st = meta_u64(f, "seed", (uint64_t)1 << 53, &t->opt.seed))) return st;
  if ((st = meta_i64(f, "step", 0, INT64_MAX / 2, &t->step)) || (st = meta_u64(f, "drawn", UINT64_MAX / 2, &t->drawn)) ||
      (st = meta_u64(f, "data_count", UINT32_MAX, &t->resume_count)) || (st = meta_u64(f, "data_hash", UINT64_MAX, &t->resume_hash)) ||
      (st = meta_i64(f, "ignore_label", INT32_MIN, INT32_MAX, &i64)) || (st = meta_u64(f, "started", 65536, &u)))
    return st;
  t->resume_pending = true;
  t->ignore_label = (int32_t)i64;
  if (u == 0) return TRM_OK;
  if (u != (uint64_t)t->opt.batch) return trm_fail(TRM_E_FORMAT, "checkpoint: %" PRIu64 " slots but batch %lld", u, (long long)t->opt.batch);
  if ((st = trm_tr_trainer_prepare(t)) != TRM_OK) return st;
  size_t n = p->floats, B = t->B, seq = (size_t)c.seq_len, SD = (size_t)(c.state_len * c.hidden_size);
  if ((st = take(f, "trainer.m", "F32", 4, n, t->m)) || (st = take(f, "trainer.v", "F32", 4, n, t->v)) ||
      (t->ema && (st = take(f, "trainer.ema", "F32", 4, n, t->ema))) || (st = take(f, "trainer.y", "F32", 4, B * SD, t->y)) ||
      (st = take(f, "trainer.z", "F32", 4, B * SD, t->z)) ||
      (st = take(f, "trainer.slot_tokens", "I32", 4, B * seq, t->slot_tokens)) ||
      (st = take(f, "trainer.slot_labels", "I32", 4, B * seq, t->slot_labels)) ||
      (st = take(f, "trainer.slot_ids", "I32", 4, B, t->slot_ids)) ||
      (st = take(f, "trainer.slot_steps", "I32", 4, B, t->slot_steps)) ||
      (st = take(f, "trainer.slot_halted", "U8", 1, B, t->slot_halted)))
    return st;
  /* the slots' samples are checked as trm_trainer_set_data checks data */
  for (size_t b = 0; b < B; b++) {
    if (t->slot_steps[b] < 0 || t->slot_halted[b] > 1) return trm_fail(TRM_E_FORMAT, "checkpoint: slot %zu state", b);
    if (c.puzzle_emb_ndim > 0 && (t->slot_ids[b] < 0 || t->slot_ids[b] >= c.num_puzzle_identifiers))
      return trm_fail(TRM_E_FORMAT, "checkpoint: slot %zu puzzle id %d", b, (int)t->slot_ids[b]);
    for (size_t k = 0; k < seq; k++) {
      int32_t tok = t->slot_tokens[b * seq + k], lab = t->slot_labels[b * seq + k];
      if (tok < 0 || tok >= c.vocab_size || (lab != t->ignore_label && (lab < 0 || lab >= c.vocab_size)))
        return trm_fail(TRM_E_FORMAT, "checkpoint: slot %zu holds a token or label outside the vocabulary", b);
    }
  }
  return TRM_OK;
}

trm_status trm_tr_checkpoint_load(const char *path, trm_trainer **out) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return trm_fail(TRM_E_IO, "cannot open '%s': %s", path, strerror(errno));
  trm_status st = TRM_OK;
  uint8_t *buf = NULL;
  long size = -1;
  if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
    st = trm_fail(TRM_E_IO, "cannot size '%s'", path);
  else if (!(buf = trm_alloc(size ? (size_t)size : 1)))
    st = trm_fail(TRM_E_NOMEM, "out of memory reading '%s' (%ld bytes)", path, size);
  else if (fread(buf, 1, (size_t)size, fp) != (size_t)size)
    st = trm_fail(TRM_E_IO, "cannot read '%s'", path);
  fclose(fp);
  st_file f;
  if (st == TRM_OK) st = st_parse(buf, (size_t)size, (uint64_t)size, &f);
  if (st != TRM_OK) {
    trm_release(buf);
    return st;
  }
  trm_trainer *t = trm_alloc_zero(1, sizeof *t);
  if (!t) st = trm_fail(TRM_E_NOMEM, "out of memory for a trainer");
  if (st == TRM_OK) {
    t->order_epoch = UINT64_MAX;
    /* defaults for anything the setter checks against before the metadata sets it */
    t->opt.batch = 1;
    t->opt.threads = 1;
    st = load_from(&f, t);
  }
  st_free(&f);
  trm_release(buf);
  if (st != TRM_OK) {
    trm_tr_trainer_destroy(t);
    return st;
  }
  *out = t;
  return TRM_OK;
}
