/* Regression tests for the bugs fuzzing found in libtrm, one function each, on the inputs kept in
 * tests/fuzz/corpus/. Replaying the corpus (check-fuzz-corpus) under the sanitizers catches the
 * undefined behaviour itself; these check the fixed outcome, so they fail without sanitizers too.
 *   regressions CORPUS_DIR */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trm.h"

static int failures;

static unsigned char *read_file(const char *dir, const char *name, size_t *size) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    fprintf(stderr, "regressions: cannot open %s\n", path);
    exit(1);
  }
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
  if (!data || fread(data, 1, (size_t)n, fp) != (size_t)n) {
    fprintf(stderr, "regressions: cannot read %s\n", path);
    exit(1);
  }
  fclose(fp);
  *size = (size_t)n;
  return data;
}

/* lib/model.c swiglu_width: metadata expansion = 1e300 made reference_inter convert a double far
 * outside int64_t's range to an integer (undefined behaviour; on x86 the mismatch message then
 * named a garbage width). Now: a format error naming the limit. */
static void expansion_beyond_limit(const char *dir) {
  size_t size;
  unsigned char *file = read_file(dir, "load/huge_expansion.safetensors", &size);
  trm_model *m = NULL;
  trm_status st = trm_model_load_memory(file, size, &m);
  free(file);
  if (st != TRM_E_FORMAT || !strstr(trm_last_error(), "expansion 1e+300") ||
      !strstr(trm_last_error(), "above the limit")) {
    fprintf(stderr, "expansion_beyond_limit: got %s: '%s'\n", trm_status_string(st), trm_last_error());
    failures++;
  }
  trm_model_free(m);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s tests/fuzz/corpus\n", argv[0]);
    return 2;
  }
  expansion_beyond_limit(argv[1]);
  if (failures) return 1;
  printf("regressions: 1 fixed fuzzing finding stays fixed: ok\n");
  return 0;
}
