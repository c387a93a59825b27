/* Runs a fuzz target's LLVMFuzzerTestOneInput once on each file named on the command line (a
 * directory stands for the files in it, in name order), without libFuzzer: `make
 * check-fuzz-corpus` replays the seed corpora and the crash regressions with the ordinary
 * compiler, and under the sanitizers and valgrind. Each input is passed in a buffer of exactly
 * its size, so that a read past its end is visible to AddressSanitizer and valgrind. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  struct stat info;
  if (fstat(fileno(fp), &info) != 0) {
    fprintf(stderr, "replay: cannot stat %s: %s\n", path, strerror(errno));
    fclose(fp);
    return -1;
  }
  size_t size = (size_t)info.st_size;
  uint8_t *data = malloc(size ? size : 1);
  if (!data || fread(data, 1, size, fp) != size) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    free(data);
    fclose(fp);
    return -1;
  }
  fclose(fp);
  LLVMFuzzerTestOneInput(size ? data : NULL, size);
  free(data);
  return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs every regular file of a directory; returns the count, or -1. */
static long run_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "replay: cannot open directory %s: %s\n", dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **grown = realloc(names, cap * sizeof *names);
      if (!grown) abort();
      names = grown;
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    names[n] = malloc(len);
    if (!names[n]) abort();
    snprintf(names[n], len, "%s/%s", dir, e->d_name);
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  long count = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat info;
    if (stat(names[i], &info) == 0 && S_ISREG(info.st_mode)) {
      if (run_file(names[i]) != 0) count = -1;
      else if (count >= 0) count++;
    }
    free(names[i]);
  }
  free(names);
  return count;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 2;
  }
  long total = 0;
  for (int i = 1; i < argc; i++) {
    struct stat info;
    if (stat(argv[i], &info) != 0) {
      fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
      return 1;
    }
    long n = S_ISDIR(info.st_mode) ? run_dir(argv[i]) : run_file(argv[i]) == 0 ? 1 : -1;
    if (n < 0) return 1;
    total += n;
  }
  const char *name = strrchr(argv[0], '/');
  printf("%s: %ld inputs replayed: ok\n", name ? name + 1 : argv[0], total);
  return 0;
}
