/* NumPy .npy files of integers, as the reference data sets hold them (TRM-SPEC.md section 8).
 * For the tools only (trm, tests); not part of libtrm's public API.
 *
 * Reading accepts format versions 1.0-3.0, little-endian or byte-order-free ('|') integer
 * dtypes of 1, 2, 4 or 8 bytes, C order, up to NPY_MAX_DIMS dimensions; anything else (floats,
 * big-endian, Fortran order, object arrays, a truncated or oversized file) is refused with a
 * one-line message naming the file and the problem. Values are widened to int64. */
#ifndef TRM_TOOLS_NPY_H
#define TRM_TOOLS_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef enum {
  NPY_INT8, NPY_UINT8, NPY_INT16, NPY_UINT16, NPY_INT32, NPY_UINT32, NPY_INT64, NPY_UINT64
} npy_dtype;

typedef struct {
  npy_dtype dtype;              /* the dtype stored in the file */
  int ndim;                     /* 0 for a scalar */
  int64_t shape[NPY_MAX_DIMS];
  int64_t count;                /* product of shape (1 for a scalar) */
  int64_t *data;                /* count values, widened; owned, release with npy_free */
} npy_array;

/* Reads PATH. Returns 0 and fills *OUT, or -1 with a message "PATH: problem" in ERR (ERR_LEN
 * bytes, always terminated) and *OUT zeroed. A uint64 value above INT64_MAX is refused. */
int npy_read(const char *path, npy_array *out, char *err, size_t err_len);

/* Parses an in-memory .npy image (NAME is used in messages); same contract as npy_read. */
int npy_parse(const void *bytes, size_t len, const char *name, npy_array *out, char *err,
              size_t err_len);

/* Writes COUNT = product(SHAPE) values as DTYPE (version 1.0, little-endian, C order).
 * Returns 0, or -1 with a message in ERR if a value does not fit DTYPE or the write fails.
 * The file is written as PATH.tmp, synced and renamed over PATH once complete, so PATH never
 * holds a partly written array: after a failure (or an interrupted run) it is as it was. */
int npy_write(const char *path, npy_dtype dtype, int ndim, const int64_t *shape,
              const int64_t *data, char *err, size_t err_len);

void npy_free(npy_array *array);

/* "int32" etc. */
const char *npy_dtype_name(npy_dtype dtype);

#endif
