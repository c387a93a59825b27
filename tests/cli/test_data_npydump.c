/* Prints .npy files as the tools' reader sees them, for tests/cli/test_data.py to compare with
 * numpy: per file one line "PATH DTYPE NDIM DIM... : V0 V1 ...". Exit 1 (message on stderr) if
 * a file is refused. */
#include <stdio.h>

#include "../../tools/common/npy.h"

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    npy_array a;
    char err[1024];
    if (npy_read(argv[i], &a, err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
    printf("%s %s %d", argv[i], npy_dtype_name(a.dtype), a.ndim);
    for (int d = 0; d < a.ndim; d++) printf(" %lld", (long long)a.shape[d]);
    printf(" :");
    for (int64_t k = 0; k < a.count; k++) printf(" %lld", (long long)a.data[k]);
    printf("\n");
    npy_free(&a);
  }
  return 0;
}
