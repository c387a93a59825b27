/* Fuzz target: the tools' .npy reader (tools/common/npy.c). npy_parse must either fill the
 * array consistently (count = product of shape, values widened from the file's bytes) or fail
 * with a one-line message and a zeroed array. What it reads must survive a round trip through
 * npy_write and npy_read unchanged. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

#include <unistd.h>

#include "../../tools/common/npy.h"

static int is_zeroed(const npy_array *a) {
  static const npy_array zero;
  return memcmp(a, &zero, sizeof zero) == 0;
}

static void round_trip(const npy_array *a) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_npy.%ld.npy", (long)getpid());
  char err[256];
  if (npy_write(path, a->dtype, a->ndim, a->shape, a->data, err, sizeof err) != 0) {
    /* only a file system problem may stop it: every value came from this dtype */
    FUZZ_CHECK(strstr(err, "fit") == NULL, err);
    return;
  }
  npy_array back;
  int rc = npy_read(path, &back, err, sizeof err);
  unlink(path);
  FUZZ_CHECK(rc == 0, err);
  FUZZ_CHECK(back.dtype == a->dtype && back.ndim == a->ndim && back.count == a->count, "round trip: header");
  for (int d = 0; d < a->ndim; d++) FUZZ_CHECK(back.shape[d] == a->shape[d], "round trip: shape");
  for (int64_t i = 0; i < a->count; i++) FUZZ_CHECK(back.data[i] == a->data[i], "round trip: values");
  npy_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  npy_array a;
  memset(&a, 0xA5, sizeof a);
  char err[128];
  memset(err, 'x', sizeof err);
  int rc = npy_parse(data ? data : (const uint8_t *)"", size, "fuzz.npy", &a, err, sizeof err);
  FUZZ_CHECK(rc == 0 || rc == -1, "npy_parse returns 0 or -1");
  if (rc != 0) {
    FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "the message is terminated");
    FUZZ_CHECK(strncmp(err, "fuzz.npy: ", 10) == 0 && strlen(err) > 10, "the message names the file and the problem");
    FUZZ_CHECK(strchr(err, '\n') == NULL, "the message is one line");
    FUZZ_CHECK(is_zeroed(&a), "a failed parse zeroes the array");
    return 0;
  }
  FUZZ_CHECK(a.dtype >= NPY_INT8 && a.dtype <= NPY_UINT64, "dtype");
  FUZZ_CHECK(a.ndim >= 0 && a.ndim <= NPY_MAX_DIMS, "ndim");
  int64_t count = 1;
  for (int d = 0; d < a.ndim; d++) {
    FUZZ_CHECK(a.shape[d] >= 0, "shape");
    count *= a.shape[d];
  }
  FUZZ_CHECK(count == a.count, "count = product of shape");
  /* the values are the last count elements of the file (the data follows the header) */
  static const int elem_size[] = {1, 1, 2, 2, 4, 4, 8, 8};
  size_t esize = (size_t)elem_size[a.dtype];
  FUZZ_CHECK((uint64_t)a.count <= size / esize, "the file holds every value");
  FUZZ_CHECK(a.count == 0 || a.data != NULL, "values present");
  const uint8_t *raw = data + (size - (size_t)a.count * esize);
  for (int64_t i = 0; i < a.count; i++) {
    const uint8_t *e = raw + (size_t)i * esize;
    uint64_t bits = 0;
    for (size_t k = esize; k-- > 0;) bits = bits << 8 | e[k];
    int64_t want;
    if (a.dtype == NPY_INT8 || a.dtype == NPY_INT16 || a.dtype == NPY_INT32 || a.dtype == NPY_INT64) {
      uint64_t sign = (uint64_t)1 << (8 * esize - 1);
      if (bits & sign) bits |= ~((sign << 1) - 1); /* sign-extend to 64 bits (a no-op for 8 bytes) */
      memcpy(&want, &bits, sizeof want);
    } else {
      FUZZ_CHECK(bits <= (uint64_t)INT64_MAX, "uint64 above INT64_MAX is refused");
      want = (int64_t)bits;
    }
    FUZZ_CHECK(a.data[i] == want, "value widened from the file's bytes");
  }
  if (a.count <= 4096) round_trip(&a);
  npy_free(&a);
  return 0;
}
