/* Unit tests of the tools' .npy reader and writer (tools/common/npy.c).
 *
 *   test_npy FIXTURES_DIR
 *
 * FIXTURES_DIR holds files numpy wrote (tests/npy/make_fixtures.py): every one listed in
 * good.txt must read back with the expected dtype, shape and values, and the writer must
 * reproduce np.save's bytes exactly; every one in bad.txt must be refused. Besides: round trips
 * of every dtype and shape, the writer's range checks, hand-made malformed headers, every
 * truncation of valid files, and random byte corruption (refused or read, never a crash). */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tools/common/npy.h"

static const char *fixtures;
static char tmpdir[256];

static const int sizes[] = {1, 1, 2, 2, 4, 4, 8, 8};
static const bool is_signed[] = {true, false, true, false, true, false, true, false};

/* the formula of make_fixtures.py */
static int64_t formula(npy_dtype t, int64_t i) {
  uint64_t u = (uint64_t)i * UINT64_C(0x9E3779B97F4A7C15) + 0x1234567;
  int bits = sizes[t] * 8;
  if (bits < 64) u &= (UINT64_C(1) << bits) - 1;
  if (t == NPY_UINT64) u &= ~(UINT64_C(1) << 63);
  if (is_signed[t] && bits < 64 && (u >> (bits - 1)))
    return (int64_t)u - (int64_t)(UINT64_C(1) << bits);
  return (int64_t)u;
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(fp);
  *len = (size_t)n;
  return buf;
}

static void spit(const char *path, const void *bytes, size_t len) {
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fwrite(bytes, 1, len, fp), len);
  ck_assert_int_eq(fclose(fp), 0);
}

static npy_dtype dtype_by_name(const char *name) {
  for (int t = NPY_INT8; t <= NPY_UINT64; t++)
    if (strcmp(npy_dtype_name((npy_dtype)t), name) == 0) return (npy_dtype)t;
  ck_abort_msg("unknown dtype %s", name);
  return NPY_INT8;
}

/* a refused read: -1, zeroed output, one line starting with "NAME: " */
static void assert_refused(int rc, const npy_array *a, const char *err, const char *name) {
  ck_assert_int_eq(rc, -1);
  ck_assert_ptr_null(a->data);
  ck_assert_int_eq(a->count, 0);
  size_t n = strlen(name);
  ck_assert_msg(strncmp(err, name, n) == 0 && err[n] == ':' && err[n + 1] == ' ', "message '%s'", err);
  ck_assert_msg(strlen(err) > n + 2, "empty problem in '%s'", err);
  ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_numpy_files_read) {
  char path[1024], line[512];
  snprintf(path, sizeof path, "%s/good.txt", fixtures);
  FILE *list = fopen(path, "r");
  ck_assert_msg(list != NULL, "no %s (run tests/npy/make_fixtures.py)", path);
  int files = 0;
  while (fgets(line, sizeof line, list)) {
    char name[128], dtype[16], saved_by[8];
    int ndim, used;
    ck_assert_int_eq(sscanf(line, "%127s %15s %7s %d%n", name, dtype, saved_by, &ndim, &used), 4);
    int64_t shape[NPY_MAX_DIMS], count = 1;
    const char *p = line + used;
    for (int d = 0; d < ndim; d++) {
      long long v;
      int more;
      ck_assert_int_eq(sscanf(p, "%lld%n", &v, &more), 1);
      p += more;
      shape[d] = v;
      count *= v;
    }
    npy_dtype t = dtype_by_name(dtype);
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    npy_array a;
    char err[512];
    ck_assert_msg(npy_read(path, &a, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(a.dtype, t);
    ck_assert_int_eq(a.ndim, ndim);
    ck_assert_int_eq(a.count, count);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(a.shape[d], shape[d]);
    for (int64_t i = 0; i < count; i++) ck_assert_int_eq(a.data[i], formula(t, i));

    size_t len;
    unsigned char *bytes = slurp(path, &len);
    ck_assert_ptr_nonnull(bytes);
    npy_array b;
    ck_assert_msg(npy_parse(bytes, len, name, &b, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(b.count, a.count);
    ck_assert(count == 0 || memcmp(a.data, b.data, (size_t)count * sizeof(int64_t)) == 0);

    if (strcmp(saved_by, "save") == 0) {  /* our writer: np.save's bytes exactly */
      char mine[512];
      snprintf(mine, sizeof mine, "%s/mine.npy", tmpdir);
      ck_assert_msg(npy_write(mine, t, ndim, shape, a.data, err, sizeof err) == 0, "%s", err);
      size_t mine_len;
      unsigned char *mine_bytes = slurp(mine, &mine_len);
      ck_assert_ptr_nonnull(mine_bytes);
      ck_assert_msg(mine_len == len && memcmp(mine_bytes, bytes, len) == 0, "%s: bytes differ from np.save", name);
      free(mine_bytes);
    }
    free(bytes);
    npy_free(&a);
    npy_free(&b);
    files++;
  }
  fclose(list);
  ck_assert_int_ge(files, 70);
}
END_TEST

START_TEST(test_numpy_files_refused) {
  char path[1024], line[512];
  snprintf(path, sizeof path, "%s/bad.txt", fixtures);
  FILE *list = fopen(path, "r");
  ck_assert_msg(list != NULL, "no %s", path);
  int files = 0;
  while (fgets(line, sizeof line, list)) {
    char name[128], word[64];
    ck_assert_int_eq(sscanf(line, "%127s %63s", name, word), 2);
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    npy_array a;
    char err[512];
    assert_refused(npy_read(path, &a, err, sizeof err), &a, err, path);
    ck_assert_msg(strstr(err, word) != NULL, "%s: message '%s' lacks '%s'", name, err, word);
    files++;
  }
  fclose(list);
  ck_assert_int_ge(files, 10);
}
END_TEST

START_TEST(test_round_trip) {
  static const int64_t shapes[][NPY_MAX_DIMS + 1] = {
    /* ndim, dims */
    {0}, {1, 0}, {1, 1}, {1, 300}, {2, 3, 5}, {2, 0, 4}, {3, 2, 3, 4}, {8, 1, 2, 1, 2, 1, 2, 1, 2},
  };
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/rt.npy", tmpdir);
  for (int t = NPY_INT8; t <= NPY_UINT64; t++) {
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      int ndim = (int)shapes[s][0];
      const int64_t *shape = &shapes[s][1];
      int64_t count = 1;
      for (int d = 0; d < ndim; d++) count *= shape[d];
      int64_t *values = malloc((size_t)(count ? count : 1) * sizeof(int64_t));
      ck_assert_ptr_nonnull(values);
      for (int64_t i = 0; i < count; i++) values[i] = formula((npy_dtype)t, i);
      /* the extremes of the dtype */
      if (count >= 2) {
        int bits = sizes[t] * 8;
        values[0] = is_signed[t] ? (bits == 64 ? INT64_MIN : -((int64_t)1 << (bits - 1))) : 0;
        values[1] = is_signed[t] || bits == 64 ? (bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1)
                                               : (int64_t)((UINT64_C(1) << bits) - 1);
      }
      ck_assert_msg(npy_write(path, (npy_dtype)t, ndim, shape, values, err, sizeof err) == 0, "%s", err);
      npy_array a;
      ck_assert_msg(npy_read(path, &a, err, sizeof err) == 0, "%s", err);
      ck_assert_int_eq(a.dtype, t);
      ck_assert_int_eq(a.ndim, ndim);
      ck_assert_int_eq(a.count, count);
      for (int d = 0; d < ndim; d++) ck_assert_int_eq(a.shape[d], shape[d]);
      for (int64_t i = 0; i < count; i++) ck_assert_int_eq(a.data[i], values[i]);
      npy_free(&a);
      ck_assert_ptr_null(a.data);
      free(values);
    }
  }
}
END_TEST

START_TEST(test_writer_range) {
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/range.npy", tmpdir);
  static const struct {
    npy_dtype t;
    int64_t v;
  } bad[] = {
    {NPY_INT8, 128}, {NPY_INT8, -129}, {NPY_UINT8, 256}, {NPY_UINT8, -1}, {NPY_INT16, 32768},
    {NPY_UINT16, 65536}, {NPY_INT32, INT64_C(2147483648)}, {NPY_INT32, INT64_C(-2147483649)},
    {NPY_UINT32, INT64_C(4294967296)}, {NPY_UINT32, -1}, {NPY_UINT64, -1},
  };
  int64_t shape[1] = {2};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    unlink(path);
    int64_t values[2] = {0, bad[k].v};
    ck_assert_int_eq(npy_write(path, bad[k].t, 1, shape, values, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "does not fit") != NULL, "%s", err);
    ck_assert_int_ne(access(path, F_OK), 0);  /* nothing left behind */
  }
  int64_t values[1] = {0}, shape9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-1};
  ck_assert_int_eq(npy_write(path, NPY_INT32, 9, shape9, values, err, sizeof err), -1);
  ck_assert_int_eq(npy_write(path, NPY_INT32, 1, neg, values, err, sizeof err), -1);
  ck_assert_int_eq(npy_write("/nonexistent-dir/x.npy", NPY_INT32, 0, NULL, values, err, sizeof err), -1);
  ck_assert_msg(strncmp(err, "/nonexistent-dir/x.npy: ", 24) == 0, "%s", err);
}
END_TEST

/* A .npy image with HEADER (padded like numpy) and DATA_LEN bytes of data after it. */
static size_t build(unsigned char *out, int major, const char *header, size_t data_len) {
  size_t prefix = major == 1 ? 10 : 12;
  size_t hlen = strlen(header);
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (unsigned char)major;
  out[7] = 0;
  out[8] = (unsigned char)(hlen & 0xff);
  out[9] = (unsigned char)(hlen >> 8);
  if (major != 1) {
    out[10] = (unsigned char)(hlen >> 16);
    out[11] = (unsigned char)(hlen >> 24);
  }
  memcpy(out + prefix, header, hlen);
  for (size_t i = 0; i < data_len; i++) out[prefix + hlen + i] = (unsigned char)(i * 37 + 1);
  return prefix + hlen + data_len;
}

START_TEST(test_malformed_headers) {
  static const struct {
    const char *header;
    size_t data_len;
    const char *word;  /* expected in the message */
  } cases[] = {
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", 8, "floating"},
    {"{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }\n", 8, "big-endian"},
    {"{'descr': '<i4', 'fortran_order': True, 'shape': (2, 2), }\n", 16, "Fortran"},
    {"{'descr': '<i4', 'fortran_order': True, 'shape': (2,), }\n", 8, "Fortran"},
    {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n", 16, "object"},
    {"{'descr': '<i3', 'fortran_order': False, 'shape': (2,), }\n", 6, "size"},
    {"{'descr': '|i4', 'fortran_order': False, 'shape': (2,), }\n", 8, "little-endian"},
    {"{'descr': '=i4', 'fortran_order': False, 'shape': (2,), }\n", 8, "little-endian"},
    {"{'descr': 'i4', 'fortran_order': False, 'shape': (2,), }\n", 8, "byte-order"},
    {"{'descr': '<i4', 'shape': (2,), }\n", 8, "lacks"},
    {"{'descr': '<i4', 'fortran_order': False, }\n", 8, "lacks"},
    {"{'fortran_order': False, 'shape': (2,), }\n", 8, "lacks"},
    {"{'descr': '<i4', 'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n", 8, "duplicate"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }\n", 8, "unexpected key"},
    {"{'descr': '<i4', 'fortran_order': false, 'shape': (2,), }\n", 8, "True or False"},
    {"{'descr': '<i4', 'fortran_order': 0, 'shape': (2,), }\n", 8, "True or False"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2), }\n", 8, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': [2], }\n", 8, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (-2,), }\n", 8, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,,), }\n", 8, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (,), }\n", 0, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (02,), }\n", 8, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2 2), }\n", 8, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2.0,), }\n", 8, "shape"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }\n", 4, "dimensions"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 0, "too large"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", 0, "too large"},
    {"{'descr': '<i8', 'fortran_order': False, 'shape': (2305843009213693952,), }\n", 0, "too large"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n", 7, "truncated data"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n", 9, "trailing"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), } x\n", 8, "after the header"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }}\n", 8, "after the header"},
    {"{'descr': '<i4' 'fortran_order': False, 'shape': (2,), }\n", 8, "malformed"},
    {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,)\n", 8, "malformed"},
    {"{'descr': \"<i4\\x\", 'fortran_order': False, 'shape': (2,), }\n", 8, "descr"},
    {"{descr: '<i4', 'fortran_order': False, 'shape': (2,), }\n", 8, "malformed"},
    {"['descr', '<i4']\n", 8, "not a dict"},
    {"", 0, "not a dict"},
  };
  unsigned char buf[1024];
  char err[512];
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    size_t len = build(buf, 1, cases[k].header, cases[k].data_len);
    npy_array a;
    assert_refused(npy_parse(buf, len, "mem", &a, err, sizeof err), &a, err, "mem");
    ck_assert_msg(strstr(err, cases[k].word) != NULL, "case %zu: '%s' lacks '%s'", k, err, cases[k].word);
  }
  /* the well-formed variants of the same header are read: spacing, double quotes, no trailing
   * comma, format 2.0 and 3.0, a 1-byte dtype with '<' */
  static const char *ok[] = {
    "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
    "{ 'shape' : ( 2 , ) , 'descr':'<i4','fortran_order':False}",
    "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (2,)}   \n",
    "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2)}\n",
  };
  for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++)
    for (int major = 1; major <= 3; major++) {
      size_t len = build(buf, major, ok[k], 8);
      npy_array a;
      ck_assert_msg(npy_parse(buf, len, "mem", &a, err, sizeof err) == 0, "ok %zu v%d: %s", k, major, err);
      ck_assert_int_eq(a.count, 2);
      ck_assert_int_eq(a.data[0], 1 | 38 << 8 | 75 << 16 | 112 << 24);
      npy_free(&a);
    }
  size_t len = build(buf, 1, "{'descr': '<u1', 'fortran_order': False, 'shape': (), }\n", 1);
  npy_array a;
  ck_assert_msg(npy_parse(buf, len, "mem", &a, err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(a.ndim, 0);
  ck_assert_int_eq(a.count, 1);
  npy_free(&a);

  /* prefix problems */
  len = build(buf, 1, ok[0], 8);
  unsigned char bad[1024];
  static const struct {
    int at;
    unsigned char byte;
    const char *word;
  } prefix[] = {{0, 0x92, "magic"}, {3, 'n', "magic"}, {6, 4, "version"}, {6, 0, "version"}, {7, 1, "version"},
                {9, 0x01, "truncated"}};
  for (size_t k = 0; k < sizeof prefix / sizeof prefix[0]; k++) {
    memcpy(bad, buf, len);
    bad[prefix[k].at] = prefix[k].byte;
    assert_refused(npy_parse(bad, len, "mem", &a, err, sizeof err), &a, err, "mem");
    ck_assert_msg(strstr(err, prefix[k].word) != NULL, "prefix %zu: '%s'", k, err);
  }
  /* a header length beyond the limit, in a version 2.0 file that really holds it */
  size_t big = 20000;
  unsigned char *huge = malloc(12 + big + 8);
  ck_assert_ptr_nonnull(huge);
  char *hdr = malloc(big + 1);
  ck_assert_ptr_nonnull(hdr);
  snprintf(hdr, big + 1, "%s", ok[0]);
  memset(hdr + strlen(ok[0]) - 1, ' ', big - strlen(ok[0]) + 1);
  hdr[big - 1] = '\n';
  hdr[big] = '\0';
  len = build(huge, 2, hdr, 8);
  assert_refused(npy_parse(huge, len, "mem", &a, err, sizeof err), &a, err, "mem");
  ck_assert_msg(strstr(err, "too large") != NULL, "%s", err);
  free(hdr);
  free(huge);
}
END_TEST

/* every prefix of a valid file is refused, in memory and on disk; so is one byte more */
START_TEST(test_truncations) {
  static const npy_dtype types[] = {NPY_UINT8, NPY_INT32, NPY_INT64};
  char path[512], cut[512], err[512];
  snprintf(path, sizeof path, "%s/whole.npy", tmpdir);
  snprintf(cut, sizeof cut, "%s/cut.npy", tmpdir);
  for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
    int64_t shape[2] = {3, 5}, values[15];
    for (int i = 0; i < 15; i++) values[i] = i * 3;
    ck_assert_int_eq(npy_write(path, types[k], 2, shape, values, err, sizeof err), 0);
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    ck_assert_ptr_nonnull(bytes);
    for (size_t n = 0; n < len; n++) {
      npy_array a;
      assert_refused(npy_parse(bytes, n, "mem", &a, err, sizeof err), &a, err, "mem");
      spit(cut, bytes, n);
      assert_refused(npy_read(cut, &a, err, sizeof err), &a, err, cut);
    }
    unsigned char *longer = malloc(len + 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, bytes, len);
    longer[len] = 0;
    npy_array a;
    assert_refused(npy_parse(longer, len + 1, "mem", &a, err, sizeof err), &a, err, "mem");
    spit(cut, longer, len + 1);
    assert_refused(npy_read(cut, &a, err, sizeof err), &a, err, cut);
    ck_assert_msg(strstr(err, "trailing") != NULL, "%s", err);
    ck_assert_int_eq(npy_parse(bytes, len, "mem", &a, err, sizeof err), 0);
    npy_free(&a);
    free(longer);
    free(bytes);
  }
  npy_array a;
  snprintf(cut, sizeof cut, "%s/missing.npy", tmpdir);
  assert_refused(npy_read(cut, &a, err, sizeof err), &a, err, cut);
  assert_refused(npy_read(tmpdir, &a, err, sizeof err), &a, err, tmpdir);  /* a directory */
}
END_TEST

/* random corruption of the header and prefix: either refused or read consistently */
START_TEST(test_corruption) {
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/c.npy", tmpdir);
  int64_t shape[2] = {2, 3}, values[6] = {1, 2, 3, 4, 5, 6};
  ck_assert_int_eq(npy_write(path, NPY_INT16, 2, shape, values, err, sizeof err), 0);
  size_t len;
  unsigned char *bytes = slurp(path, &len);
  ck_assert_ptr_nonnull(bytes);
  unsigned char *work = malloc(len);
  ck_assert_ptr_nonnull(work);
  uint64_t state = 12345;
  int accepted = 0;
  for (int trial = 0; trial < 200000; trial++) {
    memcpy(work, bytes, len);
    int flips = 1 + (int)(state % 3);
    for (int f = 0; f < flips; f++) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      size_t at = (size_t)(state >> 33) % (len - 12);  /* prefix and header, not the data */
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      work[at] = (unsigned char)(state >> 56);
    }
    npy_array a;
    if (npy_parse(work, len, "mem", &a, err, sizeof err) == 0) {
      int64_t count = 1;
      for (int d = 0; d < a.ndim; d++) count *= a.shape[d];
      ck_assert_int_eq(count, a.count);
      accepted++;
      npy_free(&a);
    } else {
      assert_refused(-1, &a, err, "mem");
    }
  }
  ck_assert_int_gt(accepted, 0);  /* flips inside the padding are harmless */
  free(work);
  free(bytes);
}
END_TEST

/* A write that fails half way (here: the file-size limit, as a full disk would) reports it and
 * leaves what PATH held before untouched, with no temporary file behind. */
START_TEST(test_writer_failure_keeps_old_file) {
  char path[512], tmp[600], err[512];
  snprintf(path, sizeof path, "%s/keep.npy", tmpdir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  unlink(tmp);
  int64_t old_shape[1] = {3}, old_values[3] = {7, 8, 9};
  ck_assert_msg(npy_write(path, NPY_INT32, 1, old_shape, old_values, err, sizeof err) == 0, "%s", err);

  enum { COUNT = 1 << 16 };
  int64_t *values = calloc(COUNT, sizeof *values);
  ck_assert_ptr_nonnull(values);
  int64_t shape[1] = {COUNT};
  struct rlimit saved;
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit small = {16384, saved.rlim_max};
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
  int rc = npy_write(path, NPY_INT32, 1, shape, values, err, sizeof err);
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);
  free(values);
  ck_assert_int_eq(rc, -1);
  ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && strstr(err, "write failed") && strstr(err, strerror(EFBIG)),
                "%s", err);

  npy_array a;
  ck_assert_msg(npy_read(path, &a, err, sizeof err) == 0, "the old file is gone: %s", err);
  ck_assert_int_eq(a.count, 3);
  ck_assert_int_eq(a.data[2], 9);
  npy_free(&a);
  ck_assert_msg(access(tmp, F_OK) != 0, "%s left behind", tmp);
}
END_TEST

/* A small file whose header promises a huge array is truncated, found without allocating
 * what the header claims (which would fail as "out of memory" or take gigabytes). */
START_TEST(test_huge_shape_small_file) {
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/huge.npy", tmpdir);
  unsigned char buf[256];
  size_t len = build(buf, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000000,), }\n", 16);
  spit(path, buf, len);
  npy_array a;
  assert_refused(npy_read(path, &a, err, sizeof err), &a, err, path);
  ck_assert_msg(strstr(err, "truncated data") != NULL, "%s", err);
}
END_TEST

START_TEST(test_dtype_names) {
  ck_assert_str_eq(npy_dtype_name(NPY_INT8), "int8");
  ck_assert_str_eq(npy_dtype_name(NPY_UINT64), "uint64");
  ck_assert_str_eq(npy_dtype_name((npy_dtype)99), "unknown");
  npy_free(NULL);
}
END_TEST

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FIXTURES_DIR (written by tests/npy/make_fixtures.py)\n", argv[0]);
    return 2;
  }
  fixtures = argv[1];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", fixtures);
  if (mkdir(tmpdir, 0777) != 0 && access(tmpdir, F_OK) != 0) {
    perror(tmpdir);
    return 1;
  }
  Suite *s = suite_create("npy");
  TCase *tc = tcase_create("npy");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_numpy_files_read);
  tcase_add_test(tc, test_numpy_files_refused);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_writer_range);
  tcase_add_test(tc, test_malformed_headers);
  tcase_add_test(tc, test_truncations);
  tcase_add_test(tc, test_corruption);
  tcase_add_test(tc, test_dtype_names);
  tcase_add_test(tc, test_writer_failure_keeps_old_file);
  tcase_add_test(tc, test_huge_shape_small_file);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
