/* A minimal reader for the .npy files the conformance test uses: little-endian float32 or
 * int32, C order. Test support only; not part of the library. */
#ifndef TRM_TEST_NPY_H
#define TRM_TEST_NPY_H

#include <stddef.h>

typedef struct npy_array {
  char dtype;         /* 'f' float32, 'i' int32 */
  size_t ndim;
  size_t shape[8];
  size_t count;       /* product of shape */
  void *data;         /* count elements; free() it */
} npy_array;

/* Returns 0 on success; on failure prints a message naming the file and returns -1. */
int npy_read(const char *path, npy_array *out);

#endif
