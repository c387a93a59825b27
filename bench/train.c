/* Training speed of the internal engine (lib/train): N supervision steps of a configuration on
 * random Sudoku-shaped batches (tokens as `trm data sudoku` writes them: 1 = blank, 2..10 the
 * digits; labels the digits), each step the engine's forward/backward (trm_tr_step) plus the
 * optimiser update of every dense weight (AdamATan2 as the reference, or AdamW) and signSGD on
 * the batch's puzzle-embedding rows. Prints the median step time after warm-up as samples/s.
 *
 *   bench/train [--preset anchor|sudoku-mlp|sudoku-att] [--batch B] [--steps N] [--warmup W]
 *               [--threads T] [--optim atan2|adamw] [--hidden D] [--H-cycles H] [--L-cycles L]
 *
 * anchor: the CPU-training configuration of docs ANCHORS.md (hidden 128, mlp_t, 2 layers,
 * H 2 x L 3, batch 64); sudoku-mlp / sudoku-att: the paper's Sudoku models (hidden 512, H 3 x L 6).
 * The last line reads "libtrm PRESET batch B threads T: X samples/s (median step S s of N; C CPU s)". */
#define _POSIX_C_SOURCE 200809L
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads): with a busy machine the wall clock also counts
 * the time the threads waited for a core; this does not (pool workers spinning count as busy). */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Labels are digits 2..10; about half the cells are given (token = label), the rest blank (1). */
static void random_batch(size_t n_cells, int32_t *tokens, int32_t *labels) {
  for (size_t i = 0; i < n_cells; i++) {
    uint64_t r = next_u64();
    labels[i] = 2 + (int32_t)(r % 9);
    tokens[i] = (r >> 32) & 1 ? labels[i] : 1;
  }
}

static void usage(void) {
  fprintf(stderr, "usage: train [--preset anchor|sudoku-mlp|sudoku-att] [--batch B] [--steps N] [--warmup W]\n"
                  "             [--threads T] [--optim atan2|adamw] [--hidden D] [--H-cycles H] [--L-cycles L]\n");
  exit(2);
}

static long parse_count(const char *flag, const char *s, long lo) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < lo) {
    fprintf(stderr, "train: %s needs an integer >= %ld, got '%s'\n", flag, lo, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *preset = "anchor", *optim = "atan2";
  long batch = -1, steps = 5, warmup = 1, threads = 0, hidden = 0, H_cycles = 0, L_cycles = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(a, "--preset")) preset = v;
    else if (!strcmp(a, "--optim")) optim = v;
    else if (!strcmp(a, "--batch")) batch = parse_count(a, v, 1);
    else if (!strcmp(a, "--steps")) steps = parse_count(a, v, 1);
    else if (!strcmp(a, "--warmup")) warmup = parse_count(a, v, 0);
    else if (!strcmp(a, "--threads")) threads = parse_count(a, v, 0);
    else if (!strcmp(a, "--hidden")) hidden = parse_count(a, v, 1);
    else if (!strcmp(a, "--H-cycles")) H_cycles = parse_count(a, v, 1);
    else if (!strcmp(a, "--L-cycles")) L_cycles = parse_count(a, v, 1);
    else usage();
  }
  bool adamw = !strcmp(optim, "adamw");
  if (!adamw && strcmp(optim, "atan2")) usage();

  /* Sudoku: 81 cells, vocabulary 11, a 16-row puzzle-embedding prefix of one identifier */
  trm_config c = {.num_heads = 8, .L_layers = 2, .seq_len = 81, .vocab_size = 11, .num_puzzle_identifiers = 1,
                  .puzzle_len = 16, .expansion = 4.0, .rms_norm_eps = 1e-5, .rope_theta = 10000.0};
  if (!strcmp(preset, "anchor")) {
    c.hidden_size = 128;
    c.num_heads = 2;
    c.H_cycles = 2;
    c.L_cycles = 3;
    c.mlp_t = true;
    if (batch < 0) batch = 64;
  } else if (!strcmp(preset, "sudoku-mlp") || !strcmp(preset, "sudoku-att")) {
    c.hidden_size = 512;
    c.H_cycles = 3;
    c.L_cycles = 6;
    c.mlp_t = !strcmp(preset, "sudoku-mlp");
    c.pos_encodings = c.mlp_t ? TRM_POS_NONE : TRM_POS_ROPE;
    if (batch < 0) batch = 8;
  } else {
    usage();
  }
  if (hidden) c.hidden_size = hidden;
  if (H_cycles) c.H_cycles = H_cycles;
  if (L_cycles) c.L_cycles = L_cycles;
  c.puzzle_emb_ndim = c.hidden_size;

  trm_tr_params p;
  trm_tr_ctx ctx;
  trm_tr_work w;
  trm_status st = trm_tr_config_resolve(&c);
  if (st == TRM_OK) st = trm_tr_params_alloc(&c, &p);
  if (st != TRM_OK) {
    fprintf(stderr, "train: %s\n", trm_last_error());
    return 1;
  }
  trm_tr_params_init_random(&p, 1);
  if ((st = trm_tr_ctx_init(&ctx, (size_t)threads)) != TRM_OK ||
      (st = trm_tr_work_init(&ctx, &p, (size_t)batch, &w)) != TRM_OK) {
    fprintf(stderr, "train: %s\n", trm_last_error());
    return 1;
  }
  size_t B = (size_t)batch, S = (size_t)c.state_len, D = (size_t)c.hidden_size, seq = (size_t)c.seq_len;
  float *grad = calloc(p.floats, sizeof(float)), *m1 = calloc(p.floats, sizeof(float));
  float *m2 = calloc(p.floats, sizeof(float)), *y = calloc(B * S * D, sizeof(float));
  float *z = calloc(B * S * D, sizeof(float));
  int32_t *tokens = calloc(B * seq, sizeof(int32_t)), *labels = calloc(B * seq, sizeof(int32_t));
  int32_t *ids = calloc(B, sizeof(int32_t));
  double *times = calloc((size_t)steps, sizeof(double)), *cpu_times = calloc((size_t)steps, sizeof(double));
  trm_tr_dense g;
  if (!grad || !m1 || !m2 || !y || !z || !tokens || !labels || !ids || !times || !cpu_times ||
      trm_tr_dense_view(&p, grad, &g) != TRM_OK) {
    fprintf(stderr, "train: out of memory\n");
    return 1;
  }
  for (size_t b = 0; b < B; b++) trm_tr_carry_reset(&p, y, z, b);
  printf("libtrm %s: hidden %lld, %s, %lld layers, H %lld x L %lld, seq %zu + %lld, inter %lld, inter_t %lld, "
         "%zu dense weights, kernel %s, %zu threads, %s\n",
         preset, (long long)c.hidden_size, c.mlp_t ? "mlp_t" : "attention", (long long)c.L_layers,
         (long long)c.H_cycles, (long long)c.L_cycles, seq, (long long)c.puzzle_len, (long long)c.inter,
         (long long)c.inter_t, p.floats, ctx.kernel->name, ctx.workers, adamw ? "AdamW" : "AdamATan2");

  const double lr = 1e-4, wd = 0.1, b1 = 0.9, b2 = 0.95;
  for (long it = 0; it < warmup + steps; it++) {
    random_batch(B * seq, tokens, labels);
    trm_tr_batch batch_in = {.B = B, .tokens = tokens, .labels = labels, .puzzle_ids = ids, .ignore_label = -100,
                             .loss_scale = 1.0 / (double)B};
    trm_tr_loss loss;
    double t0 = now(), c0 = cpu_now();
    memset(grad, 0, p.floats * sizeof *grad);
    st = trm_tr_step(&ctx, &p, &w, &batch_in, y, z, &g, NULL, &loss);
    if (st != TRM_OK) {
      fprintf(stderr, "train: step: %s\n", trm_last_error());
      return 1;
    }
    if (adamw)
      trm_tr_adamw(p.w.data, grad, m1, m2, p.floats, it + 1, lr, b1, b2, wd, 1e-8);
    else
      trm_tr_adam_atan2(p.w.data, grad, m1, m2, p.floats, it + 1, lr, b1, b2, wd);
    if (p.puzzle_emb)
      trm_tr_signsgd_rows(p.puzzle_emb, (size_t)c.num_puzzle_identifiers, (size_t)c.puzzle_emb_ndim, ids, w.dpuzzle,
                          B, lr, wd);
    trm_tr_weights_changed(&w);
    double t = now() - t0, cpu = cpu_now() - c0;
    if (it >= warmup) {
      times[it - warmup] = t;
      cpu_times[it - warmup] = cpu;
    }
    fprintf(stderr, "  step %ld: %.3f s (%.3f s CPU), loss %.4f\n", it + 1, t, cpu, loss.total / (double)B);
  }
  qsort(times, (size_t)steps, sizeof *times, cmp_double);
  qsort(cpu_times, (size_t)steps, sizeof *cpu_times, cmp_double);
  double median = times[steps / 2], cpu_median = cpu_times[steps / 2];
  printf("libtrm %s batch %zu threads %zu: %.2f samples/s (median step %.4f s of %ld; %.4f CPU s)\n", preset, B,
         ctx.workers, (double)B / median, median, steps, cpu_median);

  trm_tr_dense_view_free(&g);
  free(grad);
  free(m1);
  free(m2);
  free(y);
  free(z);
  free(tokens);
  free(labels);
  free(ids);
  free(times);
  free(cpu_times);
  trm_tr_work_free(&w);
  trm_tr_ctx_free(&ctx);
  trm_tr_params_free(&p);
  return 0;
}
