/* Fuzz target: the safetensors container (lib/format/safetensors.c) and the JSON reader under it
 * (lib/format/json.c), called directly. On the input as a whole file, st_parse must either fail
 * with a message or return a table whose every promise holds: byte ranges inside the data area,
 * sizes matching shape x dtype, no overlaps, names sorted and unique, metadata keys unique.
 * Parsing the header alone must agree with parsing the whole file. st_convert is checked
 * against an independent decoding of F32, BF16 and F16. The JSON reader gets the header bytes
 * twice: skipped as a value, and pulled apart with the typed readers the loader uses. */
#include "fuzz.h"

#include <math.h>

#include "format/json.h"
#include "format/safetensors.h"

/* IEEE half precision by its definition, in double. */
static double half_value(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  double v;
  if (exp == 0) v = ldexp((double)mant, -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = ldexp(1.0 + mant / 1024.0, exp - 15);
  return sign ? -v : v;
}

static void check_convert(const st_tensor *t, size_t budget_left) {
  size_t count = (size_t)t->numel;
  if (t->dtype == ST_UNSUPPORTED || count == 0 || count > budget_left) return;
  float *out = malloc(count * sizeof *out);
  FUZZ_CHECK(out != NULL, "malloc");
  st_convert(t->dtype, t->data, count, out);
  for (size_t i = 0; i < count; i++) {
    const uint8_t *e = t->data + i * t->elem_size;
    uint32_t bits;
    float want;
    if (t->dtype == ST_F32) {
      bits = (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 | (uint32_t)e[3] << 24;
      memcpy(&want, &bits, 4);
    } else if (t->dtype == ST_BF16) {
      bits = ((uint32_t)e[0] | (uint32_t)e[1] << 8) << 16;
      memcpy(&want, &bits, 4);
    } else {
      want = (float)half_value((uint16_t)(e[0] | e[1] << 8));
    }
    if (isnan(want)) FUZZ_CHECK(isnan(out[i]), "NaN converts to NaN");
    else FUZZ_CHECK(memcmp(&want, &out[i], 4) == 0, "st_convert decodes exactly");
  }
  free(out);
}

static int by_begin(const void *a, const void *b) {
  const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static void check_table(const st_file *f, const uint8_t *data, size_t size) {
  uint64_t data_size = size - f->data_start;
  FUZZ_CHECK(f->data_start >= 10 && f->data_start <= size, "data area inside the file");
  const st_tensor **order = malloc((f->n_tensors + 1) * sizeof *order);
  FUZZ_CHECK(order != NULL, "malloc");
  size_t n_ranges = 0, budget = 1 << 16;
  for (size_t i = 0; i < f->n_tensors; i++) {
    const st_tensor *t = &f->tensors[i];
    FUZZ_CHECK(t->begin <= t->end && t->end <= data_size, "range inside the data area");
    FUZZ_CHECK(t->ndim <= ST_MAX_DIMS, "dimensions");
    uint64_t numel = 1;
    for (size_t d = 0; d < t->ndim; d++) numel *= t->shape[d];
    FUZZ_CHECK(numel == t->numel && t->end - t->begin == numel * t->elem_size, "bytes = shape x dtype");
    FUZZ_CHECK(t->data == data + f->data_start + t->begin, "data pointer into the buffer");
    if (i > 0) FUZZ_CHECK(strcmp(f->tensors[i - 1].name, t->name) < 0, "names sorted and unique");
    FUZZ_CHECK(st_find(f, t->name) == t, "st_find finds every tensor");
    if (t->end > t->begin) order[n_ranges++] = t;
    check_convert(t, budget);
    if (t->dtype != ST_UNSUPPORTED && t->numel <= budget) budget -= (size_t)t->numel;
  }
  qsort(order, n_ranges, sizeof *order, by_begin);
  for (size_t i = 1; i < n_ranges; i++) FUZZ_CHECK(order[i]->begin >= order[i - 1]->end, "no overlaps");
  free(order);
  for (size_t i = 0; i < f->n_meta; i++) {
    FUZZ_CHECK(st_meta_get(f, f->meta[i].key) == f->meta[i].value, "metadata keys unique");
    FUZZ_CHECK(f->meta[i].key != NULL && f->meta[i].value != NULL, "metadata strings");
  }
  FUZZ_CHECK(st_find(f, "\x01 not a tensor") == NULL, "st_find of a missing name");
}

/* The loader's way of reading JSON: typed pulls, recursing into objects and arrays. Returns
 * whether the value was read; the depth limit is json_skip_value's. */
static bool pull_value(json_cursor *c, int depth) {
  if (depth > JSON_MAX_DEPTH) return json_error(c, "nesting too deep");
  if (json_accept(c, '{')) {
    if (json_accept(c, '}')) return true;
    do {
      char *key;
      if (!json_string(c, &key, 1 << 20)) return false;
      trm_release(key);
      if (!json_expect(c, ':') || !pull_value(c, depth + 1)) return false;
    } while (json_accept(c, ','));
    return json_expect(c, '}');
  }
  if (json_accept(c, '[')) {
    if (json_accept(c, ']')) return true;
    do {
      if (!pull_value(c, depth + 1)) return false;
    } while (json_accept(c, ','));
    return json_expect(c, ']');
  }
  if (c->p < c->end && *c->p == '"') {
    char *s;
    if (!json_string(c, &s, 1 << 20)) return false;
    FUZZ_CHECK(strlen(s) <= (size_t)(c->p - c->start), "decoded string no longer than its source");
    trm_release(s);
    return true;
  }
  if (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    uint64_t v;
    return json_uint64(c, &v);
  }
  return json_skip_value(c);
}

static void check_json(const char *text, size_t len) {
  json_cursor c;
  json_init(&c, text, len);
  bool skipped = json_skip_value(&c);
  FUZZ_CHECK(c.p >= c.start && c.p <= c.end, "cursor inside the text");
  if (!skipped) FUZZ_CHECK(c.err[0] != '\0', "a failure has a message");
  else (void)json_at_end(&c);

  json_init(&c, text, len);
  bool pulled = pull_value(&c, 1);
  FUZZ_CHECK(c.p >= c.start && c.p <= c.end, "cursor inside the text");
  if (!pulled) FUZZ_CHECK(c.err[0] != '\0', "a failure has a message");
  /* the typed readers accept a subset of what skipping accepts */
  if (pulled) FUZZ_CHECK(skipped, "pulled only what json_skip_value accepts");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!data) data = (const uint8_t *)"";
  st_file f;
  trm_status st = st_parse(data, size, size, &f);
  FUZZ_CHECK(st == TRM_OK || st == TRM_E_FORMAT || st == TRM_E_UNSUPPORTED || st == TRM_E_NOMEM, "st_parse status");
  if (st == TRM_OK) {
    check_table(&f, data, size);
  } else {
    FUZZ_CHECK(f.tensors == NULL && f.meta == NULL && f.n_tensors == 0, "a failed parse leaves nothing behind");
    FUZZ_CHECK(trm_last_error()[0] != '\0', "a failed parse says why");
  }

  /* the header alone, as trm_model_load reads it, must give the same verdict */
  uint64_t header_len = 0;
  if (size >= 8 && st_header_length(data, size, &header_len) == TRM_OK) {
    st_file head_only;
    trm_status st2 = st_parse(data, (size_t)(8 + header_len), size, &head_only);
    FUZZ_CHECK(st2 == st, "the header alone parses as the whole file does");
    if (st2 == TRM_OK) {
      FUZZ_CHECK(head_only.n_tensors == f.n_tensors && head_only.n_meta == f.n_meta, "same table");
      for (size_t i = 0; i < head_only.n_tensors; i++)
        FUZZ_CHECK(head_only.tensors[i].data == NULL && head_only.tensors[i].begin == f.tensors[i].begin,
                   "no data pointers without the data");
      st_free(&head_only);
    }
    check_json((const char *)data + 8, (size_t)header_len);
  } else if (size >= 8) {
    FUZZ_CHECK(st != TRM_OK, "a bad length field fails the parse");
    check_json((const char *)data + 8, size - 8);
  } else {
    check_json((const char *)data, size);
  }
  if (st == TRM_OK) st_free(&f);
  return 0;
}
