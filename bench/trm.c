/* bench/trm: seconds per supervision step of a whole model through the public API.
 *
 *   trm MODEL --batch B --threads T [--steps N]   median seconds per step over N steps
 *   trm MODEL --memory                              peak resident memory of load + a batch-16 session
 *
 * bench/run-trm.sh runs this beside the PyTorch peer and prints the ratios. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "trm.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int die(const char *what, trm_status st) {
  fprintf(stderr, "bench/trm: %s: %s: %s\n", what, trm_status_string(st), trm_last_error());
  return 1;
}

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL (--batch B --threads T [--steps N] | --memory)\n", argv[0]);
    return 2;
  }
  size_t batch = 1;
  int threads = 1, steps = 5, memory = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = (size_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--memory")) memory = 1;
    else return die("arguments", TRM_E_INVALID);
  }
  long rss_start = peak_rss_kib();
  trm_model *m;
  trm_status st = trm_model_load(argv[1], &m);
  if (st != TRM_OK) return die("load", st);
  int64_t seq_len, S, D, params;
  trm_model_info(m, "seq_len", &seq_len);
  trm_model_info(m, "state_len", &S);
  trm_model_info(m, "hidden_size", &D);
  trm_model_info(m, "param_count", &params);
  if (memory) batch = 16;
  trm_session *s;
  if ((st = trm_session_create(m, batch, &s)) != TRM_OK) return die("session", st);
  if ((st = trm_session_set_option(s, TRM_OPT_THREADS, threads)) != TRM_OK) return die("threads", st);
  if ((st = trm_session_set_option(s, TRM_OPT_MAX_STEPS, steps + 2)) != TRM_OK) return die("max steps", st);
  int32_t *tokens = malloc(sizeof *tokens * (size_t)seq_len);
  for (int64_t i = 0; i < seq_len; i++) tokens[i] = (int32_t)(1 + i % 9);
  for (size_t b = 0; b < batch; b++)
    if ((st = trm_session_set_input(s, b, tokens, (size_t)seq_len, 0)) != TRM_OK) return die("input", st);

  if (memory) {
    trm_refine(s, NULL); /* touch all the work memory */
    double weights_mb = (double)params * 4 / 1e6, state_mb = 3.0 * 16 * (double)(S * D) * 4 / 1e6;
    double rss_mb = (double)(peak_rss_kib() - rss_start) * 1024 / 1e6;
    printf("memory: peak RSS growth %.1f MB; weights %.1f MB (float32) + session state (x, y, z of 16 slots) "
           "%.1f MB = %.1f MB; overhead %.0f%%\n",
           rss_mb, weights_mb, state_mb, weights_mb + state_mb, 100 * (rss_mb / (weights_mb + state_mb) - 1));
  } else {
    trm_refine(s, NULL); /* warm-up */
    double *t = malloc(sizeof *t * (size_t)steps);
    for (int i = 0; i < steps; i++) {
      double t0 = now();
      if ((st = trm_refine(s, NULL)) != TRM_OK) return die("refine", st);
      t[i] = now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    printf("libtrm batch %zu threads %d: %.4f s/step (median of %d)\n", batch, threads, t[steps / 2], steps);
    free(t);
  }
  free(tokens);
  trm_session_free(s);
  trm_model_free(m);
  return 0;
}
