#include "safetensors.h"

#include "json.h"

#include <stdlib.h>
#include <string.h>

/* Limits that keep a hostile header from costing more than a bounded amount of memory/time. */
enum {
  ST_MAX_TENSORS = 4096,
  ST_MAX_META = 1024,
  ST_MAX_NAME = 1024,
  ST_MAX_META_VALUE = 1 << 20
};

static uint64_t read_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Element size of a safetensors dtype name; 0 if the name is unknown. */
static size_t dtype_size(const char *name, st_dtype *dtype) {
  static const struct {
    const char *name;
    size_t size;
    st_dtype dtype;
  } table[] = {
      {"F32", 4, ST_F32},          {"F16", 2, ST_F16},          {"BF16", 2, ST_BF16},
      {"F64", 8, ST_UNSUPPORTED},  {"I64", 8, ST_UNSUPPORTED},  {"U64", 8, ST_UNSUPPORTED},
      {"I32", 4, ST_UNSUPPORTED},  {"U32", 4, ST_UNSUPPORTED},  {"I16", 2, ST_UNSUPPORTED},
      {"U16", 2, ST_UNSUPPORTED},  {"I8", 1, ST_UNSUPPORTED},   {"U8", 1, ST_UNSUPPORTED},
      {"BOOL", 1, ST_UNSUPPORTED}, {"F8_E4M3", 1, ST_UNSUPPORTED}, {"F8_E5M2", 1, ST_UNSUPPORTED},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (strcmp(name, table[i].name) == 0) {
      *dtype = table[i].dtype;
      return table[i].size;
    }
  }
  return 0;
}

void st_free(st_file *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n_tensors; i++) trm_release(f->tensors[i].name);
  for (size_t i = 0; i < f->n_meta; i++) {
    trm_release(f->meta[i].key);
    trm_release(f->meta[i].value);
  }
  trm_release(f->tensors);
  trm_release(f->meta);
  memset(f, 0, sizeof *f);
}

static trm_status json_fail(json_cursor *c) {
  if (c->nomem) return trm_fail(TRM_E_NOMEM, "out of memory while reading the safetensors header");
  /* header byte offsets are reported relative to the header; the file offset is 8 more */
  return trm_fail(TRM_E_FORMAT, "safetensors header: %s", c->err);
}

static trm_status parse_metadata(json_cursor *c, st_file *f) {
  if (!json_expect(c, '{')) return json_fail(c);
  if (json_accept(c, '}')) return TRM_OK;
  do {
    if (f->n_meta == ST_MAX_META)
      return trm_fail(TRM_E_FORMAT, "safetensors header: more than %d metadata entries", ST_MAX_META);
    st_meta *e = &f->meta[f->n_meta];
    if (!json_string(c, &e->key, ST_MAX_NAME)) return json_fail(c);
    if (!json_expect(c, ':')) {
      trm_release(e->key);
      return json_fail(c);
    }
    if (!json_string(c, &e->value, ST_MAX_META_VALUE)) {
      trm_status st = c->nomem ? json_fail(c)
                               : trm_fail(TRM_E_FORMAT,
                                          "safetensors header: metadata value of '%s' is not a string (%s)", e->key,
                                          c->err);
      trm_release(e->key);
      return st;
    }
    f->n_meta++;
    for (size_t i = 0; i + 1 < f->n_meta; i++)
      if (strcmp(f->meta[i].key, e->key) == 0)
        return trm_fail(TRM_E_FORMAT, "safetensors header: metadata key '%s' appears twice", e->key);
  } while (json_accept(c, ','));
  if (!json_expect(c, '}')) return json_fail(c);
  return TRM_OK;
}

static trm_status parse_uint_array(json_cursor *c, st_tensor *t, const char *field, uint64_t *vals, size_t max,
                                   size_t *count) {
  *count = 0;
  if (!json_expect(c, '[')) return json_fail(c);
  if (json_accept(c, ']')) return TRM_OK;
  do {
    if (*count == max)
      return trm_fail(TRM_E_FORMAT, "tensor '%s': '%s' has more than %zu entries", t->name, field, max);
    if (!json_uint64(c, &vals[*count])) return json_fail(c);
    (*count)++;
  } while (json_accept(c, ','));
  if (!json_expect(c, ']')) return json_fail(c);
  return TRM_OK;
}

static trm_status parse_tensor(json_cursor *c, st_tensor *t, uint64_t data_size) {
  bool have_dtype = false, have_shape = false, have_offsets = false;
  size_t elem_size = 0;
  uint64_t offsets[2];
  trm_status st;
  if (!json_expect(c, '{')) return json_fail(c);
  if (!json_accept(c, '}')) {
    do {
      char *field;
      if (!json_string(c, &field, 64)) return json_fail(c);
      if (!json_expect(c, ':')) {
        trm_release(field);
        return json_fail(c);
      }
      st = TRM_OK;
      if (strcmp(field, "dtype") == 0 && !have_dtype) {
        char *name;
        if (!json_string(c, &name, sizeof t->dtype_name - 1)) {
          st = c->nomem ? json_fail(c) : trm_fail(TRM_E_FORMAT, "tensor '%s': bad dtype (%s)", t->name, c->err);
        } else {
          strcpy(t->dtype_name, name);
          trm_release(name);
          elem_size = dtype_size(t->dtype_name, &t->dtype);
          if (elem_size == 0) st = trm_fail(TRM_E_FORMAT, "tensor '%s': unknown dtype '%s'", t->name, t->dtype_name);
        }
        have_dtype = true;
      } else if (strcmp(field, "shape") == 0 && !have_shape) {
        st = parse_uint_array(c, t, "shape", t->shape, ST_MAX_DIMS, &t->ndim);
        have_shape = true;
      } else if (strcmp(field, "data_offsets") == 0 && !have_offsets) {
        size_t n;
        st = parse_uint_array(c, t, "data_offsets", offsets, 2, &n);
        if (st == TRM_OK && n != 2)
          st = trm_fail(TRM_E_FORMAT, "tensor '%s': data_offsets needs 2 entries, has %zu", t->name, n);
        have_offsets = true;
      } else {
        st = trm_fail(TRM_E_FORMAT, "tensor '%s': unexpected or repeated field '%s'", t->name, field);
      }
      trm_release(field);
      if (st != TRM_OK) return st;
    } while (json_accept(c, ','));
    if (!json_expect(c, '}')) return json_fail(c);
  }
  if (!have_dtype || !have_shape || !have_offsets)
    return trm_fail(TRM_E_FORMAT, "tensor '%s': missing '%s'", t->name,
                    !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");

  uint64_t numel = 1;
  for (size_t i = 0; i < t->ndim; i++) {
    if (t->shape[i] != 0 && numel > UINT64_MAX / t->shape[i])
      return trm_fail(TRM_E_FORMAT, "tensor '%s': element count overflows", t->name);
    numel *= t->shape[i];
  }
  t->numel = numel;
  t->elem_size = elem_size;
  t->begin = offsets[0];
  t->end = offsets[1];
  if (t->begin > t->end || t->end > data_size)
    return trm_fail(TRM_E_FORMAT,
                    "tensor '%s': data_offsets [%llu, %llu] lie outside the data area of %llu bytes", t->name,
                    (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)data_size);
  if (numel > UINT64_MAX / elem_size || t->end - t->begin != numel * elem_size)
    return trm_fail(TRM_E_FORMAT, "tensor '%s': %llu bytes in data_offsets, but %s x %llu elements needs %llu",
                    t->name, (unsigned long long)(t->end - t->begin), t->dtype_name, (unsigned long long)numel,
                    (unsigned long long)(numel * elem_size));
  return TRM_OK;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b) {
  const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static trm_status check_overlaps(st_file *f) {
  if (f->n_tensors < 2) return TRM_OK;
  const st_tensor **order = trm_alloc_zero(f->n_tensors, sizeof *order);
  if (!order) return trm_fail(TRM_E_NOMEM, "out of memory while checking tensor offsets");
  size_t n = 0;
  for (size_t i = 0; i < f->n_tensors; i++)
    if (f->tensors[i].end > f->tensors[i].begin) order[n++] = &f->tensors[i];
  qsort(order, n, sizeof *order, by_begin);
  trm_status st = TRM_OK;
  for (size_t i = 1; i < n && st == TRM_OK; i++)
    if (order[i]->begin < order[i - 1]->end)
      st = trm_fail(TRM_E_FORMAT, "tensors '%s' and '%s' overlap in the data area", order[i - 1]->name,
                    order[i]->name);
  trm_release(order);
  return st;
}

static trm_status parse_header(json_cursor *c, st_file *f, uint64_t data_size) {
  bool seen_meta = false;
  if (!json_expect(c, '{')) return json_fail(c);
  if (!json_accept(c, '}')) {
    do {
      char *key;
      if (!json_string(c, &key, ST_MAX_NAME)) return json_fail(c);
      if (!json_expect(c, ':')) {
        trm_release(key);
        return json_fail(c);
      }
      trm_status st;
      if (strcmp(key, "__metadata__") == 0) {
        trm_release(key);
        if (seen_meta) return trm_fail(TRM_E_FORMAT, "safetensors header: '__metadata__' appears twice");
        seen_meta = true;
        st = parse_metadata(c, f);
      } else if (f->n_tensors == ST_MAX_TENSORS) {
        trm_release(key);
        st = trm_fail(TRM_E_FORMAT, "safetensors header: more than %d tensors", ST_MAX_TENSORS);
      } else {
        st_tensor *t = &f->tensors[f->n_tensors++];
        memset(t, 0, sizeof *t);
        t->name = key;
        st = parse_tensor(c, t, data_size);
      }
      if (st != TRM_OK) return st;
    } while (json_accept(c, ','));
    if (!json_expect(c, '}')) return json_fail(c);
  }
  if (!json_at_end(c)) {
    json_error(c, "unexpected bytes after the header object");
    return json_fail(c);
  }
  return TRM_OK;
}

trm_status st_header_length(const uint8_t first8[8], uint64_t file_size, uint64_t *header_len) {
  uint64_t n = read_le64(first8);
  if (file_size < 8 || n < 2 || n > file_size - 8)
    return trm_fail(TRM_E_FORMAT, "safetensors header length %llu does not fit in a file of %llu bytes",
                    (unsigned long long)n, (unsigned long long)file_size);
  if (n > ST_MAX_HEADER)
    return trm_fail(TRM_E_FORMAT, "safetensors header length %llu exceeds the limit of %d bytes",
                    (unsigned long long)n, ST_MAX_HEADER);
  *header_len = n;
  return TRM_OK;
}

trm_status st_parse(const uint8_t *head, size_t head_len, uint64_t file_size, st_file *out) {
  memset(out, 0, sizeof *out);
  if (!head) return trm_fail(TRM_E_INVALID, "model data is NULL");
  if (file_size < 8 || head_len < 8)
    return trm_fail(TRM_E_FORMAT, "file of %llu bytes is too short for a safetensors header",
                    (unsigned long long)file_size);
  uint64_t header_len;
  trm_status st = st_header_length(head, file_size, &header_len);
  if (st != TRM_OK) return st;
  if (head_len < 8 + header_len) return trm_fail(TRM_E_INVALID, "st_parse: the header is not in the buffer");
  bool whole = head_len == file_size;
  uint64_t data_size = file_size - 8 - header_len;

  st_file f = {0};
  f.data_start = 8 + header_len;
  f.tensors = trm_alloc_zero(ST_MAX_TENSORS, sizeof *f.tensors);
  f.meta = trm_alloc_zero(ST_MAX_META, sizeof *f.meta);
  if (!f.tensors || !f.meta) {
    st_free(&f);
    return trm_fail(TRM_E_NOMEM, "out of memory while reading the safetensors header");
  }
  json_cursor c;
  json_init(&c, (const char *)head + 8, (size_t)header_len);
  st = parse_header(&c, &f, data_size);
  if (st == TRM_OK) {
    qsort(f.tensors, f.n_tensors, sizeof *f.tensors, by_name);
    for (size_t i = 1; i < f.n_tensors && st == TRM_OK; i++)
      if (strcmp(f.tensors[i - 1].name, f.tensors[i].name) == 0)
        st = trm_fail(TRM_E_FORMAT, "tensor '%s' appears twice in the header", f.tensors[i].name);
  }
  if (st == TRM_OK) st = check_overlaps(&f);
  if (st != TRM_OK) {
    st_free(&f);
    return st;
  }
  for (size_t i = 0; i < f.n_tensors; i++) f.tensors[i].data = whole ? head + f.data_start + f.tensors[i].begin : NULL;
  *out = f;
  return TRM_OK;
}

st_tensor *st_find(const st_file *f, const char *name) {
  st_tensor key;
  key.name = (char *)name;
  return bsearch(&key, f->tensors, f->n_tensors, sizeof *f->tensors, by_name);
}

const char *st_meta_get(const st_file *f, const char *key) {
  for (size_t i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
  return NULL;
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

void st_convert(st_dtype dtype, const uint8_t *src, size_t count, float *out) {
  for (size_t i = 0; i < count; i++) {
    /* read the element's bytes first: src may overlap out (in-place widening) */
    uint32_t bits;
    switch (dtype) {
    case ST_F32:
      bits = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 | (uint32_t)src[4 * i + 2] << 16 |
             (uint32_t)src[4 * i + 3] << 24;
      memcpy(&out[i], &bits, 4);
      break;
    case ST_BF16:
      bits = ((uint32_t)src[2 * i] | (uint32_t)src[2 * i + 1] << 8) << 16;
      memcpy(&out[i], &bits, 4);
      break;
    case ST_F16:
      out[i] = half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
      break;
    case ST_UNSUPPORTED:
      out[i] = 0.0f; /* the loader refuses these before converting */
      break;
    }
  }
}
