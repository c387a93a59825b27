/* Test helper: builds libtrm model files in memory. See model_builder.h. */
#define _POSIX_C_SOURCE 200809L
#include "model_builder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small utilities ---- */

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "model_builder: out of memory (%zu bytes)\n", n);
    abort();
  }
  return p;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "model_builder: out of memory (%zu bytes)\n", n);
    abort();
  }
  return q;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = xmalloc(n);
  memcpy(d, s, n);
  return d;
}

/* ---- randomness: splitmix64 ---- */

void mb_rng_seed(mb_rng *r, uint64_t seed) { r->state = seed; }

uint64_t mb_rng_next(mb_rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double mb_rng_uniform(mb_rng *r) { return (double)(mb_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t mb_rng_below(mb_rng *r, uint64_t n) { return n ? mb_rng_next(r) % n : 0; }

static uint64_t hash_name(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

/* ---- number formats ---- */

static uint16_t f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7FFFu + lsb;
  return (uint16_t)(x >> 16);
}

static float bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xFFu;
  uint32_t mant = x & 0x7FFFFFu;
  if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0u));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7C00u);
  if (e <= 0) { /* subnormal half (or zero) */
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    unsigned shift = (unsigned)(14 - e);
    uint32_t h = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into the exponent: correct */
  return (uint16_t)h;
}

static float f16_to_f32(uint16_t h) {
  int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  double v;
  if (e == 0) v = ldexp((double)m, -24);
  else if (e == 31) v = m ? (double)NAN : (double)INFINITY;
  else v = ldexp((double)(m + 1024), e - 25);
  return (float)((h & 0x8000) ? -v : v);
}

size_t mb_dtype_size(const char *dtype) {
  if (!strcmp(dtype, "F32")) return 4;
  if (!strcmp(dtype, "F16") || !strcmp(dtype, "BF16")) return 2;
  if (!strcmp(dtype, "F64")) return 8;
  return 0;
}

uint64_t mb_numel(const mb_tensor *t) {
  uint64_t n = 1;
  for (size_t i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

static uint64_t get_le(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

static void put_le(unsigned char *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

void mb_put_le64(unsigned char *p, uint64_t v) { put_le(p, v, 8); }

uint64_t mb_header_len(const unsigned char *file) { return get_le(file, 8); }

static float decode(const char *dtype, const unsigned char *p) {
  if (!strcmp(dtype, "F32")) {
    uint32_t x = (uint32_t)get_le(p, 4);
    float f;
    memcpy(&f, &x, 4);
    return f;
  }
  if (!strcmp(dtype, "BF16")) return bf16_to_f32((uint16_t)get_le(p, 2));
  if (!strcmp(dtype, "F16")) return f16_to_f32((uint16_t)get_le(p, 2));
  if (!strcmp(dtype, "F64")) {
    uint64_t x = get_le(p, 8);
    double d;
    memcpy(&d, &x, 8);
    return (float)d;
  }
  fprintf(stderr, "model_builder: cannot decode dtype %s\n", dtype);
  abort();
}

static void encode(const char *dtype, unsigned char *p, float v) {
  if (!strcmp(dtype, "F32")) {
    uint32_t x;
    memcpy(&x, &v, 4);
    put_le(p, x, 4);
  } else if (!strcmp(dtype, "BF16")) {
    put_le(p, f32_to_bf16(v), 2);
  } else if (!strcmp(dtype, "F16")) {
    put_le(p, f32_to_f16(v), 2);
  } else if (!strcmp(dtype, "F64")) {
    double d = (double)v;
    uint64_t x;
    memcpy(&x, &d, 8);
    put_le(p, x, 8);
  } else {
    fprintf(stderr, "model_builder: cannot encode dtype %s\n", dtype);
    abort();
  }
}

float mb_get(const mb_tensor *t, size_t i) { return decode(t->dtype, t->data + i * mb_dtype_size(t->dtype)); }

void mb_set(mb_tensor *t, size_t i, float v) { encode(t->dtype, t->data + i * mb_dtype_size(t->dtype), v); }

void mb_convert(mb_tensor *t, const char *dtype) {
  size_t n = (size_t)mb_numel(t), size = mb_dtype_size(dtype);
  if (!size) {
    fprintf(stderr, "model_builder: cannot convert to dtype %s\n", dtype);
    abort();
  }
  unsigned char *data = xmalloc(n * size);
  for (size_t i = 0; i < n; i++) encode(dtype, data + i * size, mb_get(t, i));
  free(t->data);
  t->data = data;
  t->nbytes = n * size;
  snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
}

void mb_convert_all(mb_model *m, const char *dtype) {
  for (size_t i = 0; i < m->n_tensors; i++) mb_convert(&m->tensors[i], dtype);
}

void mb_round_to(mb_tensor *t, const char *dtype) {
  unsigned char buf[8];
  size_t n = (size_t)mb_numel(t);
  for (size_t i = 0; i < n; i++) {
    encode(dtype, buf, mb_get(t, i));
    mb_set(t, i, decode(dtype, buf));
  }
}

void mb_set_dtype_name(mb_tensor *t, const char *dtype) { snprintf(t->dtype, sizeof t->dtype, "%s", dtype); }

void mb_retype_raw(mb_tensor *t, const char *dtype, size_t elem_size) {
  snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
  t->nbytes = (size_t)mb_numel(t) * elem_size;
  free(t->data);
  t->data = xmalloc(t->nbytes);
  memset(t->data, 0, t->nbytes);
}

void mb_reshape(mb_tensor *t, size_t ndim, const uint64_t *shape) {
  size_t esize = mb_dtype_size(t->dtype);
  if (!esize) esize = 4;
  t->ndim = ndim;
  for (size_t i = 0; i < ndim; i++) t->shape[i] = shape[i];
  size_t nbytes = (size_t)mb_numel(t) * esize;
  t->data = xrealloc(t->data, nbytes);
  if (nbytes > t->nbytes) memset(t->data + t->nbytes, 0, nbytes - t->nbytes);
  t->nbytes = nbytes;
}

/* ---- the tensor list ---- */

mb_tensor *mb_find(mb_model *m, const char *name) {
  for (size_t i = 0; i < m->n_tensors; i++)
    if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
  return NULL;
}

mb_tensor *mb_add(mb_model *m, const char *name, const char *dtype, size_t ndim, const uint64_t *shape) {
  if (m->n_tensors == m->cap_tensors) {
    m->cap_tensors = m->cap_tensors ? 2 * m->cap_tensors : 16;
    m->tensors = xrealloc(m->tensors, m->cap_tensors * sizeof *m->tensors);
  }
  mb_tensor *t = &m->tensors[m->n_tensors++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
  t->ndim = ndim;
  for (size_t i = 0; i < ndim; i++) t->shape[i] = shape[i];
  size_t esize = mb_dtype_size(dtype);
  t->nbytes = (size_t)mb_numel(t) * (esize ? esize : 4);
  t->data = xmalloc(t->nbytes);
  memset(t->data, 0, t->nbytes);
  return t;
}

mb_tensor *mb_duplicate(mb_model *m, const char *name, const char *new_name) {
  mb_tensor *src = mb_find(m, name);
  if (!src) return NULL;
  size_t index = (size_t)(src - m->tensors);
  mb_tensor *t = mb_add(m, new_name, m->tensors[index].dtype, m->tensors[index].ndim, m->tensors[index].shape);
  src = &m->tensors[index]; /* mb_add may have moved the array */
  memcpy(t->data, src->data, t->nbytes < src->nbytes ? t->nbytes : src->nbytes);
  return t;
}

bool mb_remove(mb_model *m, const char *name) {
  mb_tensor *t = mb_find(m, name);
  if (!t) return false;
  free(t->data);
  size_t index = (size_t)(t - m->tensors);
  memmove(t, t + 1, (m->n_tensors - index - 1) * sizeof *t);
  m->n_tensors--;
  return true;
}

bool mb_rename(mb_model *m, const char *name, const char *new_name) {
  mb_tensor *t = mb_find(m, name);
  if (!t) return false;
  snprintf(t->name, sizeof t->name, "%s", new_name);
  return true;
}

/* ---- metadata ---- */

void mb_set_meta(mb_model *m, const char *key, const char *value) {
  for (size_t i = 0; i < m->n_meta; i++) {
    if (!strcmp(m->meta[i].key, key)) {
      free(m->meta[i].value);
      if (value) {
        m->meta[i].value = xstrdup(value);
      } else {
        free(m->meta[i].key);
        memmove(&m->meta[i], &m->meta[i + 1], (m->n_meta - i - 1) * sizeof *m->meta);
        m->n_meta--;
      }
      return;
    }
  }
  if (!value) return;
  if (m->n_meta == m->cap_meta) {
    m->cap_meta = m->cap_meta ? 2 * m->cap_meta : 32;
    m->meta = xrealloc(m->meta, m->cap_meta * sizeof *m->meta);
  }
  m->meta[m->n_meta].key = xstrdup(key);
  m->meta[m->n_meta].value = xstrdup(value);
  m->n_meta++;
}

void mb_set_meta_int(mb_model *m, const char *key, int64_t value) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)value);
  mb_set_meta(m, key, buf);
}

const char *mb_get_meta(const mb_model *m, const char *key) {
  for (size_t i = 0; i < m->n_meta; i++)
    if (!strcmp(m->meta[i].key, key)) return m->meta[i].value;
  return NULL;
}

/* ---- building ---- */

void mb_default_config(mb_config *c) {
  memset(c, 0, sizeof *c);
  c->hidden_size = 16;
  c->num_heads = 2;
  c->L_layers = 2;
  c->H_cycles = 2;
  c->L_cycles = 2;
  c->seq_len = 6;
  c->vocab_size = 5;
  c->puzzle_emb_ndim = 16;
  c->puzzle_emb_len = 0;
  c->num_puzzle_identifiers = 2;
  c->pos_encodings = "rope";
  c->mlp_t = false;
  c->halt_max_steps = 4;
  c->expansion = 2.0;
  c->seed = 1;
  c->weight_scale = 1.0;
}

int64_t mb_round_half_even(double v) {
  double f = floor(v), frac = v - f;
  int64_t r = (int64_t)f;
  if (frac > 0.5) return r + 1;
  if (frac < 0.5) return r;
  return (r % 2 == 0) ? r : r + 1;
}

int64_t mb_swiglu_width(double expansion, int64_t n) {
  int64_t r = mb_round_half_even(expansion * (double)n * 2.0 / 3.0);
  return (r + 255) / 256 * 256;
}

/* A tensor of uniform values in [-0.5, 0.5] * scale / sqrt(fan_in), seeded by its name. */
static void add_random(mb_model *m, const char *name, size_t ndim, uint64_t d0, uint64_t d1, uint64_t fan_in) {
  uint64_t shape[2] = {d0, d1};
  mb_tensor *t = mb_add(m, name, "F32", ndim, shape);
  mb_rng r;
  mb_rng_seed(&r, m->cfg.seed * 0x2545F4914F6CDD1Dull ^ hash_name(name));
  double scale = m->cfg.weight_scale / sqrt((double)fan_in);
  size_t n = (size_t)mb_numel(t);
  for (size_t i = 0; i < n; i++) mb_set(t, i, (float)((mb_rng_uniform(&r) - 0.5) * scale));
}

mb_model *mb_build(const mb_config *c) {
  mb_model *m = xmalloc(sizeof *m);
  memset(m, 0, sizeof *m);
  m->cfg = *c;
  int64_t D = c->hidden_size;
  if (c->puzzle_emb_ndim > 0)
    m->P = c->puzzle_emb_len ? c->puzzle_emb_len : (c->puzzle_emb_ndim + D - 1) / D;
  else
    m->P = c->puzzle_emb_len;
  m->S = c->seq_len + m->P;
  m->inter = c->inter_override > 0 ? c->inter_override : mb_swiglu_width(c->expansion, D);
  m->inter_t = !c->mlp_t ? 0 : c->inter_t_override > 0 ? c->inter_t_override : mb_swiglu_width(c->expansion, m->S);
  uint64_t uD = (uint64_t)D, S = (uint64_t)m->S, V = (uint64_t)c->vocab_size;
  uint64_t I = (uint64_t)m->inter, It = (uint64_t)m->inter_t;

  add_random(m, "embed_tokens.embedding_weight", 2, V, uD, 1);
  if (c->puzzle_emb_ndim > 0)
    add_random(m, "puzzle_emb.weights", 2, (uint64_t)c->num_puzzle_identifiers, (uint64_t)c->puzzle_emb_ndim, 1);
  if (!strcmp(c->pos_encodings, "learned")) add_random(m, "embed_pos.embedding_weight", 2, S, uD, 1);
  add_random(m, "H_init", 1, uD, 0, 1);
  add_random(m, "L_init", 1, uD, 0, 1);
  for (int64_t i = 0; i < c->L_layers; i++) {
    char name[MB_NAME_MAX];
#define LAYER(suffix, d0, d1, fan)                                                                                 \
  snprintf(name, sizeof name, "L_level.layers.%lld.%s", (long long)i, suffix);                                    \
  add_random(m, name, 2, d0, d1, fan)
    if (c->mlp_t) {
      LAYER("mlp_t.gate_up_proj.weight", 2 * It, S, S);
      LAYER("mlp_t.down_proj.weight", S, It, It);
    } else {
      LAYER("self_attn.qkv_proj.weight", 3 * uD, uD, uD);
      LAYER("self_attn.o_proj.weight", uD, uD, uD);
    }
    LAYER("mlp.gate_up_proj.weight", 2 * I, uD, uD);
    LAYER("mlp.down_proj.weight", uD, I, I);
#undef LAYER
  }
  add_random(m, "lm_head.weight", 2, V, uD, uD);
  add_random(m, "q_head.weight", 2, 2, uD, uD);
  add_random(m, "q_head.bias", 1, 2, 0, 1);

  char buf[64];
  mb_set_meta(m, "format", "libtrm");
  mb_set_meta(m, "format_version", "1");
  mb_set_meta_int(m, "hidden_size", c->hidden_size);
  mb_set_meta_int(m, "num_heads", c->num_heads);
  mb_set_meta_int(m, "L_layers", c->L_layers);
  mb_set_meta_int(m, "H_cycles", c->H_cycles);
  mb_set_meta_int(m, "L_cycles", c->L_cycles);
  mb_set_meta_int(m, "seq_len", c->seq_len);
  mb_set_meta_int(m, "vocab_size", c->vocab_size);
  mb_set_meta_int(m, "puzzle_emb_ndim", c->puzzle_emb_ndim);
  mb_set_meta_int(m, "puzzle_emb_len", c->puzzle_emb_len);
  mb_set_meta_int(m, "num_puzzle_identifiers", c->num_puzzle_identifiers);
  mb_set_meta(m, "pos_encodings", c->pos_encodings);
  mb_set_meta(m, "mlp_t", c->mlp_t ? "true" : "false");
  mb_set_meta_int(m, "halt_max_steps", c->halt_max_steps);
  snprintf(buf, sizeof buf, "%.17g", c->expansion);
  mb_set_meta(m, "expansion", buf);
  mb_set_meta(m, "source", "tests/model_builder.c");
  return m;
}

void mb_free(mb_model *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_tensors; i++) free(m->tensors[i].data);
  for (size_t i = 0; i < m->n_meta; i++) {
    free(m->meta[i].key);
    free(m->meta[i].value);
  }
  free(m->tensors);
  free(m->meta);
  free(m);
}

/* ---- serialising ---- */

typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    while (b->len + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 1024;
    b->p = xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
  sb_put(b, tmp, (size_t)n);
}

static void sb_json_string(sbuf *b, const char *s) {
  sb_str(b, "\"");
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    char tmp[8];
    if (ch == '"' || ch == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)ch;
      sb_put(b, tmp, 2);
    } else if (ch < 0x20) {
      snprintf(tmp, sizeof tmp, "\\u%04x", ch);
      sb_str(b, tmp);
    } else {
      sb_put(b, (const char *)&ch, 1);
    }
  }
  sb_str(b, "\"");
}

unsigned char *mb_file_from_parts(const char *header, size_t header_len, const void *data, size_t data_len,
                                  size_t *size) {
  *size = 8 + header_len + data_len;
  unsigned char *file = xmalloc(*size);
  mb_put_le64(file, header_len);
  if (header_len) memcpy(file + 8, header, header_len);
  if (data_len) memcpy(file + 8 + header_len, data, data_len);
  return file;
}

unsigned char *mb_serialize(const mb_model *m, size_t *size) {
  sbuf h = {0};
  sb_str(&h, "{");
  bool first = true;
  if (m->n_meta) {
    sb_str(&h, "\"__metadata__\":{");
    for (size_t i = 0; i < m->n_meta; i++) {
      if (i) sb_str(&h, ",");
      sb_json_string(&h, m->meta[i].key);
      sb_str(&h, ":");
      sb_json_string(&h, m->meta[i].value);
    }
    sb_str(&h, "}");
    first = false;
  }
  size_t offset = 0;
  for (size_t i = 0; i < m->n_tensors; i++) {
    const mb_tensor *t = &m->tensors[i];
    if (!first) sb_str(&h, ",");
    first = false;
    sb_json_string(&h, t->name);
    sb_str(&h, ":{\"dtype\":");
    sb_json_string(&h, t->dtype);
    sb_str(&h, ",\"shape\":[");
    for (size_t d = 0; d < t->ndim; d++) {
      if (d) sb_str(&h, ",");
      sb_u64(&h, t->shape[d]);
    }
    uint64_t begin = t->override_offsets ? t->begin : offset;
    uint64_t end = t->override_offsets ? t->end : offset + t->nbytes;
    sb_str(&h, "],\"data_offsets\":[");
    sb_u64(&h, begin);
    sb_str(&h, ",");
    sb_u64(&h, end);
    sb_str(&h, "]}");
    offset += t->nbytes;
  }
  sb_str(&h, "}");
  while (h.len % 8) sb_str(&h, " ");

  *size = 8 + h.len + offset;
  unsigned char *file = xmalloc(*size);
  mb_put_le64(file, h.len);
  memcpy(file + 8, h.p, h.len);
  unsigned char *p = file + 8 + h.len;
  for (size_t i = 0; i < m->n_tensors; i++) {
    if (m->tensors[i].nbytes) memcpy(p, m->tensors[i].data, m->tensors[i].nbytes);
    p += m->tensors[i].nbytes;
  }
  free(h.p);
  return file;
}

bool mb_replace_in_header(unsigned char **file, size_t *size, const char *from, const char *to) {
  uint64_t hl = mb_header_len(*file);
  size_t nf = strlen(from), nt = strlen(to);
  if (hl > *size - 8 || nf == 0 || nf > hl) return false;
  const unsigned char *hdr = *file + 8;
  size_t at = 0;
  bool found = false;
  for (; at + nf <= hl; at++) {
    if (!memcmp(hdr + at, from, nf)) {
      found = true;
      break;
    }
  }
  if (!found) return false;
  size_t new_size = *size - nf + nt;
  unsigned char *out = xmalloc(new_size);
  mb_put_le64(out, hl - nf + nt);
  memcpy(out + 8, hdr, at);
  memcpy(out + 8 + at, to, nt);
  memcpy(out + 8 + at + nt, hdr + at + nf, *size - 8 - at - nf);
  free(*file);
  *file = out;
  *size = new_size;
  return true;
}

char *mb_write_temp(const void *data, size_t size) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  size_t n = strlen(dir) + 32;
  char *path = xmalloc(n);
  snprintf(path, n, "%s/trm_test_XXXXXX", dir);
  int fd = mkstemp(path);
  if (fd < 0) {
    free(path);
    return NULL;
  }
  const unsigned char *p = data;
  size_t left = size;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w <= 0) {
      close(fd);
      unlink(path);
      free(path);
      return NULL;
    }
    p += w;
    left -= (size_t)w;
  }
  if (close(fd) != 0) {
    unlink(path);
    free(path);
    return NULL;
  }
  return path;
}
