#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *path, const char *why) {
  fprintf(stderr, "%s: %s\n", path, why);
  return -1;
}

int npy_read(const char *path, npy_array *out) {
  memset(out, 0, sizeof *out);
  FILE *fp = fopen(path, "rb");
  if (!fp) return fail(path, "cannot open");
  unsigned char pre[10];
  if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) {
    fclose(fp);
    return fail(path, "not a version 1 .npy file");
  }
  size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
  char header[65536];
  if (hlen >= sizeof header || fread(header, 1, hlen, fp) != hlen) {
    fclose(fp);
    return fail(path, "bad header");
  }
  header[hlen] = '\0';
  if (strstr(header, "'descr': '<f4'")) out->dtype = 'f';
  else if (strstr(header, "'descr': '<i4'")) out->dtype = 'i';
  else {
    fclose(fp);
    return fail(path, "dtype is not <f4 or <i4");
  }
  if (!strstr(header, "'fortran_order': False")) {
    fclose(fp);
    return fail(path, "not C order");
  }
  const char *p = strstr(header, "'shape': (");
  if (!p) {
    fclose(fp);
    return fail(path, "no shape");
  }
  p += strlen("'shape': (");
  out->count = 1;
  while (*p && *p != ')') {
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p || out->ndim == 8) {
      fclose(fp);
      return fail(path, "bad shape");
    }
    out->shape[out->ndim++] = (size_t)v;
    out->count *= (size_t)v;
    p = end;
    while (*p == ',' || *p == ' ') p++;
  }
  out->data = malloc(out->count * 4 + 1);
  if (!out->data || fread(out->data, 4, out->count, fp) != out->count) {
    fclose(fp);
    free(out->data);
    out->data = NULL;
    return fail(path, "truncated data");
  }
  fclose(fp);
  return 0;
}
