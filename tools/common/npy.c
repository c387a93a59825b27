/* NumPy .npy reader and writer for integer arrays (see npy.h). The header is a Python dict
 * literal; it is parsed strictly rather than evaluated: exactly the keys 'descr',
 * 'fortran_order' and 'shape', each once, with the literal forms numpy writes. */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, fsync */

#include "npy.h"
#include "whole_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* numpy itself refuses headers above 10000 bytes unless told otherwise; ours are ~128 */
#define NPY_MAX_HEADER 10000
#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* numpy aligns the data to 64 bytes and leaves room for shape[0] to grow to 21 digits */
#define NPY_ALIGN 64
#define NPY_GROWTH_DIGITS 21

static const struct {
  const char *name;
  char kind;  /* 'i' or 'u' */
  int size;
} dtype_info[] = {
  [NPY_INT8] = {"int8", 'i', 1},   [NPY_UINT8] = {"uint8", 'u', 1},
  [NPY_INT16] = {"int16", 'i', 2}, [NPY_UINT16] = {"uint16", 'u', 2},
  [NPY_INT32] = {"int32", 'i', 4}, [NPY_UINT32] = {"uint32", 'u', 4},
  [NPY_INT64] = {"int64", 'i', 8}, [NPY_UINT64] = {"uint64", 'u', 8},
};

const char *npy_dtype_name(npy_dtype dtype) {
  if ((unsigned)dtype > NPY_UINT64) return "unknown";
  return dtype_info[dtype].name;
}

static int failf(char *err, size_t err_len, const char *name, const char *fmt, ...) {
  if (err && err_len) {
    int n = snprintf(err, err_len, "%s: ", name);
    if (n >= 0 && (size_t)n < err_len) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -1;
}

/* ---- header ---- */

typedef struct {
  const char *p, *end;
} cursor;

static void skip_space(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static bool accept(cursor *c, char ch) {
  skip_space(c);
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return true;
  }
  return false;
}

/* A Python string literal in single or double quotes without escapes; copied into OUT. */
static bool parse_string(cursor *c, char *out, size_t out_len) {
  skip_space(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
  char quote = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != quote) {
    if (*c->p == '\\' || *c->p == '\n' || n + 1 >= out_len) return false;
    out[n++] = *c->p++;
  }
  if (c->p >= c->end) return false;
  c->p++;
  out[n] = '\0';
  return true;
}

static bool parse_word(cursor *c, const char *word) {
  skip_space(c);
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
  const char *after = c->p + n;
  if (after < c->end && (after[0] == '_' || (after[0] >= 'a' && after[0] <= 'z') ||
                         (after[0] >= 'A' && after[0] <= 'Z') || (after[0] >= '0' && after[0] <= '9')))
    return false;
  c->p = after;
  return true;
}

/* 'descr' value -> dtype, or a message saying why it is not one we take */
static const char *parse_descr(const char *descr, npy_dtype *out) {
  size_t len = strlen(descr);
  if (len < 2) return "unsupported dtype";
  char order = descr[0], kind = descr[1];
  const char *digits = descr + 2;
  if (order != '<' && order != '>' && order != '|' && order != '=')
    return "unsupported dtype (no byte-order character)";
  if (kind == 'f' || kind == 'c' || kind == 'e')
    return "floating-point dtype (only integer arrays are read)";
  if (kind == 'O') return "object array (refused)";
  if (kind == 'b' || kind == '?') return "boolean dtype (only integer arrays are read)";
  if (kind != 'i' && kind != 'u') return "unsupported dtype (only integer arrays are read)";
  int size = 0;
  if (strcmp(digits, "1") == 0) size = 1;
  else if (strcmp(digits, "2") == 0) size = 2;
  else if (strcmp(digits, "4") == 0) size = 4;
  else if (strcmp(digits, "8") == 0) size = 8;
  else return "unsupported integer size";
  if (size > 1 && order == '>') return "big-endian dtype (only little-endian is read)";
  if (size > 1 && order != '<') return "dtype without explicit little-endian byte order";
  for (int t = NPY_INT8; t <= NPY_UINT64; t++)
    if (dtype_info[t].kind == kind && dtype_info[t].size == size) {
      *out = (npy_dtype)t;
      return NULL;
    }
  return "unsupported dtype";
}

/* '(' [int (',' int)* [',']] ')' with the Python rule that a 1-tuple needs its comma */
static const char *parse_shape(cursor *c, npy_array *out) {
  if (!accept(c, '(')) return "shape is not a tuple";
  int ndim = 0;
  bool trailing_comma = false;
  while (!accept(c, ')')) {
    if (ndim > 0 && !trailing_comma) return "malformed shape tuple";
    skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return "malformed shape tuple";
    if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9')
      return "malformed shape tuple";
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      int d = *c->p++ - '0';
      if (v > (INT64_MAX - d) / 10) return "shape dimension too large";
      v = v * 10 + d;
    }
    if (ndim == NPY_MAX_DIMS) return "too many dimensions";
    out->shape[ndim++] = v;
    trailing_comma = accept(c, ',');
  }
  if (ndim == 1 && !trailing_comma) return "malformed shape tuple";
  out->ndim = ndim;
  return NULL;
}

/* Parses the header text (without the magic and length) into OUT's dtype and shape. */
static const char *parse_header(const char *text, size_t len, npy_array *out, bool *fortran) {
  cursor c = {text, text + len};
  bool have_descr = false, have_order = false, have_shape = false;
  if (!accept(&c, '{')) return "header is not a dict";
  while (!accept(&c, '}')) {
    char key[32], value[32];
    if (!parse_string(&c, key, sizeof key)) return "malformed header dict";
    if (!accept(&c, ':')) return "malformed header dict";
    if (strcmp(key, "descr") == 0) {
      if (have_descr) return "duplicate key 'descr'";
      have_descr = true;
      if (!parse_string(&c, value, sizeof value)) return "'descr' is not a simple dtype string";
      const char *why = parse_descr(value, &out->dtype);
      if (why) return why;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (have_order) return "duplicate key 'fortran_order'";
      have_order = true;
      if (parse_word(&c, "True")) *fortran = true;
      else if (parse_word(&c, "False")) *fortran = false;
      else return "'fortran_order' is not True or False";
    } else if (strcmp(key, "shape") == 0) {
      if (have_shape) return "duplicate key 'shape'";
      have_shape = true;
      const char *why = parse_shape(&c, out);
      if (why) return why;
    } else {
      return "unexpected key in header";
    }
    if (!accept(&c, ',')) {
      if (!accept(&c, '}')) return "malformed header dict";
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape) return "header lacks 'descr', 'fortran_order' or 'shape'";
  while (c.p < c.end && (*c.p == ' ' || *c.p == '\t' || *c.p == '\n' || *c.p == '\r')) c.p++;
  if (c.p != c.end) return "unexpected text after the header dict";
  return NULL;
}

/* Reads the fixed prefix; returns the header's offset (10 or 12) and its length, or a reason. */
static const char *parse_prefix(const unsigned char *pre, size_t have, size_t *offset, size_t *hlen) {
  if (have < 8 || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) return "not a .npy file (bad magic)";
  if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0) return "unsupported .npy format version";
  *offset = pre[6] == 1 ? 10 : 12;
  if (have < *offset) return "truncated header";
  if (pre[6] == 1) *hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
  else *hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  if (*hlen > NPY_MAX_HEADER) return "header too large";
  return NULL;
}

/* After the header: checks the shape's product and fills count. */
static const char *finish_header(npy_array *out, bool fortran, uint64_t *bytes) {
  if (fortran) return "Fortran-order array (only C order is read)";
  int64_t count = 1;
  for (int i = 0; i < out->ndim; i++) {
    if (out->shape[i] != 0 && count > INT64_MAX / out->shape[i]) return "shape too large";
    count *= out->shape[i];
  }
  uint64_t size = (uint64_t)dtype_info[out->dtype].size;
  if ((uint64_t)count > SIZE_MAX / 8 || (uint64_t)count > UINT64_MAX / size) return "shape too large";
  out->count = count;
  *bytes = (uint64_t)count * size;
  return NULL;
}

/* Widens COUNT little-endian values at SRC into DST; SRC may lie inside DST's storage ahead of
 * the write position (see read_data). Returns false if a uint64 exceeds INT64_MAX. */
static bool widen(npy_dtype dtype, const unsigned char *src, int64_t *dst, int64_t count) {
  int size = dtype_info[dtype].size;
  bool is_signed = dtype_info[dtype].kind == 'i';
  for (int64_t i = 0; i < count; i++) {
    const unsigned char *b = src + i * size;
    uint64_t u = 0;
    for (int k = 0; k < size; k++) u |= (uint64_t)b[k] << (8 * k);
    int64_t v;
    if (is_signed && size < 8 && (u >> (8 * size - 1)) & 1) {
      v = (int64_t)(u | ~((UINT64_C(1) << (8 * size)) - 1));
    } else if (!is_signed && size == 8 && u > (uint64_t)INT64_MAX) {
      return false;
    } else {
      v = (int64_t)u;
    }
    dst[i] = v;
  }
  return true;
}

static int64_t *alloc_values(int64_t count) {
  return malloc(count > 0 ? (size_t)count * sizeof(int64_t) : 1);
}

int npy_parse(const void *bytes, size_t len, const char *name, npy_array *out, char *err,
              size_t err_len) {
  memset(out, 0, sizeof *out);
  if (err && err_len) err[0] = '\0';
  const unsigned char *buf = bytes;
  size_t offset, hlen;
  const char *why = parse_prefix(buf, len, &offset, &hlen);
  if (why) return failf(err, err_len, name, "%s", why);
  if (len - offset < hlen) return failf(err, err_len, name, "truncated header");
  npy_array parsed;
  memset(&parsed, 0, sizeof parsed);
  bool fortran = false;
  uint64_t data_bytes = 0;
  why = parse_header((const char *)buf + offset, hlen, &parsed, &fortran);
  if (!why) why = finish_header(&parsed, fortran, &data_bytes);
  if (why) return failf(err, err_len, name, "%s", why);
  size_t avail = len - offset - hlen;
  if (avail < data_bytes) return failf(err, err_len, name, "truncated data");
  if (avail > data_bytes) return failf(err, err_len, name, "trailing data after the array");
  parsed.data = alloc_values(parsed.count);
  if (!parsed.data) return failf(err, err_len, name, "out of memory");
  if (!widen(parsed.dtype, buf + offset + hlen, parsed.data, parsed.count)) {
    free(parsed.data);
    return failf(err, err_len, name, "uint64 value above INT64_MAX");
  }
  *out = parsed;
  return 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  if (err && err_len) err[0] = '\0';
  FILE *fp = fopen(path, "rb");
  if (!fp) return failf(err, err_len, path, "cannot open: %s", strerror(errno));
  unsigned char pre[12];
  size_t got = fread(pre, 1, sizeof pre, fp);
  size_t offset, hlen;
  const char *why = parse_prefix(pre, got, &offset, &hlen);
  char *header = NULL;
  npy_array parsed;
  memset(&parsed, 0, sizeof parsed);
  bool fortran = false;
  uint64_t data_bytes = 0;
  if (!why && fseek(fp, (long)offset, SEEK_SET) != 0) why = "cannot seek";
  if (!why && !(header = malloc(hlen + 1))) why = "out of memory";
  if (!why && fread(header, 1, hlen, fp) != hlen) why = "truncated header";
  if (!why) why = parse_header(header, hlen, &parsed, &fortran);
  if (!why) why = finish_header(&parsed, fortran, &data_bytes);
  free(header);
  /* a regular file's size tells at once whether the data the header promises is there, before
   * allocating for it: a small file must not claim gigabytes and fail as "out of memory" */
  struct stat info;
  if (!why && fstat(fileno(fp), &info) == 0 && S_ISREG(info.st_mode)) {
    uint64_t have = (uint64_t)info.st_size > offset + hlen ? (uint64_t)info.st_size - offset - hlen : 0;
    if (have < data_bytes) why = "truncated data";
    else if (have > data_bytes) why = "trailing data after the array";
  }
  if (!why && !(parsed.data = alloc_values(parsed.count))) why = "out of memory";
  if (!why) {
    /* read the raw bytes into the tail of the value buffer and widen forward in place: value i
     * is written at 8i, which never passes the raw bytes of values not yet read */
    size_t raw_at = (size_t)parsed.count * 8 - (size_t)data_bytes;
    unsigned char *raw = (unsigned char *)parsed.data + raw_at;
    unsigned char extra;
    if (fread(raw, 1, (size_t)data_bytes, fp) != data_bytes) why = "truncated data";
    else if (fread(&extra, 1, 1, fp) != 0) why = "trailing data after the array";
    else if (ferror(fp)) why = "read error";
    else if (!widen(parsed.dtype, raw, parsed.data, parsed.count)) why = "uint64 value above INT64_MAX";
  }
  if (!why && ferror(fp)) why = "read error";
  fclose(fp);
  if (why) {
    free(parsed.data);
    return failf(err, err_len, path, "%s", why);
  }
  *out = parsed;
  return 0;
}

void npy_free(npy_array *array) {
  if (!array) return;
  free(array->data);
  memset(array, 0, sizeof *array);
}

/* ---- writer ---- */

static bool fits(npy_dtype dtype, int64_t v) {
  switch (dtype) {
    case NPY_INT8: return v >= INT8_MIN && v <= INT8_MAX;
    case NPY_UINT8: return v >= 0 && v <= UINT8_MAX;
    case NPY_INT16: return v >= INT16_MIN && v <= INT16_MAX;
    case NPY_UINT16: return v >= 0 && v <= UINT16_MAX;
    case NPY_INT32: return v >= INT32_MIN && v <= INT32_MAX;
    case NPY_UINT32: return v >= 0 && v <= (int64_t)UINT32_MAX;
    case NPY_INT64: return true;
    case NPY_UINT64: return v >= 0;
  }
  return false;
}

int npy_write(const char *path, npy_dtype dtype, int ndim, const int64_t *shape,
              const int64_t *data, char *err, size_t err_len) {
  if (err && err_len) err[0] = '\0';
  if ((unsigned)dtype > NPY_UINT64) return failf(err, err_len, path, "unknown dtype");
  if (ndim < 0 || ndim > NPY_MAX_DIMS) return failf(err, err_len, path, "bad number of dimensions");
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || (shape[i] != 0 && count > INT64_MAX / shape[i]))
      return failf(err, err_len, path, "bad shape");
    count *= shape[i];
  }
  for (int64_t i = 0; i < count; i++)
    if (!fits(dtype, data[i]))
      return failf(err, err_len, path, "value %lld at index %lld does not fit %s", (long long)data[i],
                   (long long)i, dtype_info[dtype].name);

  /* the header exactly as numpy.save writes it, so files compare byte for byte */
  char header[512];
  int size = dtype_info[dtype].size;
  int n = snprintf(header, sizeof header, "{'descr': '%c%c%d', 'fortran_order': False, 'shape': (",
                   size == 1 ? '|' : '<', dtype_info[dtype].kind, size);
  for (int i = 0; i < ndim; i++)
    n += snprintf(header + n, sizeof header - (size_t)n, i ? ", %lld" : "%lld", (long long)shape[i]);
  n += snprintf(header + n, sizeof header - (size_t)n, "%s), }", ndim == 1 ? "," : "");
  if (ndim > 0) {
    int digits = snprintf(NULL, 0, "%lld", (long long)shape[0]);
    for (int k = digits; k < NPY_GROWTH_DIGITS; k++) header[n++] = ' ';
  }
  size_t hlen = (size_t)n + 1;  /* with the final newline */
  size_t pad = NPY_ALIGN - (NPY_MAGIC_LEN + 4 + hlen) % NPY_ALIGN;
  memset(header + n, ' ', pad);
  n += (int)pad;
  header[n++] = '\n';

  /* PATH is never a partly written file, and a failure leaves its old contents */
  char *tmp;
  FILE *fp = whole_file_open(path, &tmp);
  if (!fp) return failf(err, err_len, path, "cannot create %s.tmp: %s", path, strerror(errno));
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff),
                           (unsigned char)(n >> 8)};
  bool ok = fwrite(pre, 1, sizeof pre, fp) == sizeof pre && fwrite(header, 1, (size_t)n, fp) == (size_t)n;
  unsigned char buf[8192];
  size_t used = 0;
  for (int64_t i = 0; ok && i < count; i++) {
    uint64_t u = (uint64_t)data[i];
    for (int k = 0; k < size; k++) buf[used++] = (unsigned char)(u >> (8 * k));
    if (used + 8 > sizeof buf) {
      ok = fwrite(buf, 1, used, fp) == used;
      used = 0;
    }
  }
  if (ok && used) ok = fwrite(buf, 1, used, fp) == used;
  int failed = whole_file_commit(fp, tmp, path, ok ? 0 : errno ? errno : EIO);
  if (failed) return failf(err, err_len, path, "write failed: %s", strerror(failed));
  return 0;
}
