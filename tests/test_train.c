/* The trainer (Check): a tiny model learns a copy task, checkpoints resume bitwise exactly,
 * thread counts give identical weights, saved models load and give the trainer's logits,
 * augmentations keep puzzles valid, argument errors, and allocation-failure injection. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/train.h"
#include "trm.h"

/* ---- helpers ---- */

static const char *tiny_config =
    "# a tiny attention model for a copy task\n"
    "hidden_size = 32\n"
    "num_heads = 2\n"
    "L_layers = 1\n"
    "H_cycles = 2\n"
    "L_cycles = 1\n"
    "seq_len = 8\n"
    "vocab_size = 6\n"
    "expansion = 2\n"
    "halt_max_steps = 2\n"
    "lr = 3e-3\n"
    "warmup_steps = 5\n"
    "weight_decay = 0.01\n"
    "batch = 16\n"
    "augment = none\n"
    "seed = 7\n";

static char tmp_dir[256];

static void make_tmp(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/test_train_XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    exit(1);
  }
}

static void tmp_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmp_dir, name); }

/* n copy-task samples: random tokens 1..5, labels equal to the inputs */
static void copy_data(size_t n, uint64_t seed, int32_t *inputs, int32_t *labels) {
  uint64_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n * 8; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    inputs[i] = 1 + (int32_t)((s >> 33) % 5);
    labels[i] = inputs[i];
  }
}

static trm_trainer *tiny_trainer(const char *extra) {
  char text[2048];
  snprintf(text, sizeof text, "%s%s", tiny_config, extra ? extra : "");
  trm_trainer *t = NULL;
  ck_assert_msg(trm_trainer_create(text, &t) == TRM_OK, "%s", trm_last_error());
  return t;
}

static void feed(trm_trainer *t, size_t n, uint64_t seed) {
  int32_t *in = malloc(n * 8 * sizeof *in), *lab = malloc(n * 8 * sizeof *lab);
  copy_data(n, seed, in, lab);
  ck_assert_msg(trm_trainer_set_data(t, in, lab, NULL, n, -100) == TRM_OK, "%s", trm_last_error());
  free(in);
  free(lab);
}

static uint8_t *model_file(const trm_trainer *t, trm_weights which, size_t *size) {
  uint8_t *bytes;
  ck_assert_int_eq(trm_tr_model_bytes(t, which == TRM_WEIGHTS_EMA, &bytes, size), TRM_OK);
  uint8_t *copy = malloc(*size);
  memcpy(copy, bytes, *size);
  trm_release(bytes);
  return copy;
}

static void run_steps(trm_trainer *t, int n) {
  for (int i = 0; i < n; i++) ck_assert_msg(trm_trainer_step(t, NULL) == TRM_OK, "%s", trm_last_error());
}

/* ---- learning ---- */

START_TEST(test_learns_copy) {
  trm_trainer *t = tiny_trainer("ema = 0.9\n");
  feed(t, 512, 1);
  double first = 0, last = 0, last_acc = 0;
  int steps = 300;
  for (int i = 0; i < steps; i++) {
    trm_train_metrics m = TRM_TRAIN_METRICS_INIT;
    ck_assert_int_eq(trm_trainer_step(t, &m), TRM_OK);
    ck_assert_int_eq(m.step, i + 1);
    ck_assert(isfinite(m.loss));
    if (i < 10) first += m.loss / 10;
    if (i >= steps - 10) last += m.loss / 10, last_acc += m.token_accuracy / 10;
  }
  ck_assert_msg(last < 0.25 * first, "loss %g -> %g", first, last);
  ck_assert_msg(last_acc > 0.95, "token accuracy %g", last_acc);

  /* held-out samples through the inference library, from the saved EMA model */
  char path[300];
  tmp_path(path, sizeof path, "copy.safetensors");
  ck_assert_int_eq(trm_trainer_save_model(t, path, TRM_WEIGHTS_EMA), TRM_OK);
  trm_model *model = NULL;
  ck_assert_msg(trm_model_load(path, &model) == TRM_OK, "%s", trm_last_error());
  int64_t v;
  ck_assert_int_eq(trm_model_info(model, "hidden_size", &v), TRM_OK);
  ck_assert_int_eq(v, 32);
  ck_assert_int_eq(trm_model_info(model, "halt_max_steps", &v), TRM_OK);
  ck_assert_int_eq(v, 2);
  trm_session *s = NULL;
  ck_assert_int_eq(trm_session_create(model, 64, &s), TRM_OK);
  int32_t in[64 * 8], lab[64 * 8];
  copy_data(64, 999, in, lab);
  for (size_t b = 0; b < 64; b++) ck_assert_int_eq(trm_session_set_input(s, b, in + b * 8, 8, 0), TRM_OK);
  while (trm_refine(s, NULL) == TRM_OK) {
  }
  int exact = 0;
  for (size_t b = 0; b < 64; b++) {
    int32_t out[8];
    ck_assert_int_eq(trm_session_answer(s, b, out, NULL, 8), TRM_OK);
    exact += memcmp(out, lab + b * 8, sizeof out) == 0;
  }
  ck_assert_msg(exact >= 58, "held-out exact %d / 64", exact);
  trm_session_free(s);
  trm_model_free(model);
  unlink(path);
  trm_trainer_free(t);
}
END_TEST

/* ---- exactness ---- */

START_TEST(test_checkpoint_resumes_bitwise) {
  char path[300];
  tmp_path(path, sizeof path, "run.ckpt");
  /* exploration often, so the halting draws matter; EMA on */
  const char *extra = "halt_exploration_prob = 0.5\nema = 0.99\nhalt_max_steps = 6\n";
  trm_trainer *a = tiny_trainer(extra);
  feed(a, 40, 3); /* 40 samples, batch 16: several epochs pass */
  run_steps(a, 7);
  ck_assert_int_eq(trm_trainer_save_checkpoint(a, path), TRM_OK);
  run_steps(a, 9);

  trm_trainer *b = NULL;
  ck_assert_msg(trm_trainer_load_checkpoint(path, &b) == TRM_OK, "%s", trm_last_error());
  int64_t step;
  ck_assert_int_eq(trm_trainer_info(b, "step", &step), TRM_OK);
  ck_assert_int_eq(step, 7);
  feed(b, 40, 3);
  run_steps(b, 9);
  size_t na, nb;
  for (int which = 0; which < 2; which++) {
    uint8_t *fa = model_file(a, (trm_weights)which, &na), *fb = model_file(b, (trm_weights)which, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(fa, fb, na) == 0, "weights differ after resuming (%s)", which ? "raw" : "ema");
    free(fa);
    free(fb);
  }
  ck_assert_int_eq(memcmp(a->m, b->m, a->p.floats * 4), 0);
  ck_assert_int_eq(memcmp(a->v, b->v, a->p.floats * 4), 0);
  ck_assert_uint_eq(a->drawn, b->drawn);

  /* other data: allowed, the data order restarts */
  trm_trainer *c = NULL;
  ck_assert_int_eq(trm_trainer_load_checkpoint(path, &c), TRM_OK);
  feed(c, 40, 4);
  ck_assert_uint_eq(c->drawn, 0);
  run_steps(c, 2);
  trm_trainer_free(c);
  trm_trainer_free(a);
  trm_trainer_free(b);
  unlink(path);
}
END_TEST

START_TEST(test_threads_identical) {
  trm_trainer *t1 = tiny_trainer("threads = 1\n"), *t3 = tiny_trainer("threads = 3\n");
  feed(t1, 64, 5);
  feed(t3, 64, 5);
  run_steps(t1, 6);
  run_steps(t3, 3);
  ck_assert_int_eq(trm_trainer_set_option(t3, TRM_TRAIN_THREADS, 2), TRM_OK); /* changes mid-run too */
  run_steps(t3, 3);
  size_t n1, n3;
  uint8_t *f1 = model_file(t1, TRM_WEIGHTS_RAW, &n1), *f3 = model_file(t3, TRM_WEIGHTS_RAW, &n3);
  ck_assert_uint_eq(n1, n3);
  ck_assert_msg(memcmp(f1, f3, n1) == 0, "thread counts give different weights");
  free(f1);
  free(f3);
  trm_trainer_free(t1);
  trm_trainer_free(t3);
}
END_TEST

/* The trainer's forward pass (its first supervision step on a sample) against trm_refine on
 * the saved model, for an attention and a token-MLP model with puzzle embeddings. */
START_TEST(test_saved_model_logits) {
  const char *configs[2] = {
      "hidden_size = 32\nnum_heads = 2\nL_layers = 2\nH_cycles = 2\nL_cycles = 2\nseq_len = 8\nvocab_size = 6\n"
      "puzzle_emb_ndim = 16\nnum_puzzle_identifiers = 3\nbatch = 4\nseed = 3\nlr = 1e-2\nwarmup_steps = 0\n",
      "hidden_size = 32\nmlp_t = true\nL_layers = 2\nH_cycles = 2\nL_cycles = 3\nseq_len = 8\nvocab_size = 6\n"
      "puzzle_emb_ndim = 32\nnum_puzzle_identifiers = 3\nbatch = 4\nseed = 4\nlr = 1e-2\nwarmup_steps = 0\n"
      "pos_encodings = learned\n"};
  for (int k = 0; k < 2; k++) {
    trm_trainer *t = NULL;
    ck_assert_msg(trm_trainer_create(configs[k], &t) == TRM_OK, "%s", trm_last_error());
    int32_t in[16 * 8], lab[16 * 8], ids[16];
    copy_data(16, 11, in, lab);
    for (int i = 0; i < 16; i++) ids[i] = i % 3;
    ck_assert_int_eq(trm_trainer_set_data(t, in, lab, ids, 16, -100), TRM_OK);
    run_steps(t, 5); /* weights and puzzle rows away from their initial values */
    char path[300];
    tmp_path(path, sizeof path, "fwd.safetensors");
    ck_assert_int_eq(trm_trainer_save_model(t, path, TRM_WEIGHTS_RAW), TRM_OK);
    trm_trainer_free(t);

    /* a trainer on that model, one sample in one slot: its first step's logits */
    trm_trainer *u = NULL;
    ck_assert_msg(trm_trainer_create_from_model(path, "batch = 1\naugment = none\n", &u) == TRM_OK, "%s",
                  trm_last_error());
    ck_assert_int_eq(trm_trainer_set_data(u, in + 8, lab + 8, ids + 1, 1, -100), TRM_OK);
    run_steps(u, 1);
    trm_model *m = NULL;
    ck_assert_int_eq(trm_model_load(path, &m), TRM_OK);
    trm_session *s = NULL;
    ck_assert_int_eq(trm_session_create(m, 1, &s), TRM_OK);
    ck_assert_int_eq(trm_session_set_input(s, 0, in + 8, 8, ids[1]), TRM_OK);
    ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
    float logits[8 * 6];
    ck_assert_int_eq(trm_session_logits(s, 0, logits, 8 * 6), TRM_OK);
    double worst = 0, scale = 0;
    for (int i = 0; i < 48; i++) {
      worst = fmax(worst, fabs((double)logits[i] - u->work.logits[i]));
      scale = fmax(scale, fabs((double)logits[i]));
    }
    ck_assert_msg(worst <= 1e-5 * fmax(scale, 1.0), "model %d: logits differ by %g (scale %g)", k, worst, scale);
    float qh;
    ck_assert_int_eq(trm_session_q(s, 0, &qh, NULL), TRM_OK);
    ck_assert_msg(fabs(qh - u->work.q[0]) <= 1e-5 * fmax(fabs(qh), 1.0), "q_halt %g vs %g", qh, u->work.q[0]);
    trm_session_free(s);
    trm_model_free(m);
    trm_trainer_free(u);
    unlink(path);
  }
}
END_TEST

/* ---- augmentations ---- */

static bool valid_sudoku(const int32_t *g) { /* tokens 2..10 */
  for (int i = 0; i < 9; i++) {
    int row = 0, col = 0, box = 0;
    for (int j = 0; j < 9; j++) {
      row |= 1 << (g[i * 9 + j] - 2);
      col |= 1 << (g[j * 9 + i] - 2);
      box |= 1 << (g[((i / 3) * 3 + j / 3) * 9 + (i % 3) * 3 + j % 3] - 2);
    }
    if (row != 511 || col != 511 || box != 511) return false;
  }
  return true;
}

START_TEST(test_augmentations) {
  int32_t sol[81];
  for (int r = 0; r < 9; r++) /* a valid grid by the shifted-rows construction */
    for (int c = 0; c < 9; c++) sol[r * 9 + c] = 2 + (r * 3 + r / 3 + c) % 9;
  ck_assert(valid_sudoku(sol));
  int changed = 0;
  for (uint64_t k = 0; k < 200; k++) {
    int32_t in[81], lab[81];
    memcpy(lab, sol, sizeof lab);
    for (int i = 0; i < 81; i++) in[i] = (i * 7 + (int)k) % 3 == 0 ? 1 : sol[i]; /* blanks */
    trm_tr_augment_sudoku(in, lab, trm_tr_random(1, 2, k, 0));
    ck_assert(valid_sudoku(lab));
    for (int i = 0; i < 81; i++) ck_assert(in[i] == 1 || in[i] == lab[i]);
    changed += memcmp(lab, sol, sizeof lab) != 0;
  }
  ck_assert_int_ge(changed, 195);
  /* dihedral: each of the 8 transforms is a permutation of cells applied alike to both arrays,
   * and they are 8 different ones */
  int32_t grids[8][36];
  for (unsigned k = 0; k < 8; k++) {
    int32_t a[36], b[36], scratch[36];
    for (int i = 0; i < 36; i++) a[i] = i, b[i] = 100 + i;
    trm_tr_augment_dihedral(a, b, 6, k, scratch);
    int seen[36] = {0};
    for (int i = 0; i < 36; i++) {
      ck_assert_int_eq(b[i], a[i] + 100);
      seen[a[i]]++;
    }
    for (int i = 0; i < 36; i++) ck_assert_int_eq(seen[i], 1);
    memcpy(grids[k], a, sizeof a);
    for (unsigned j = 0; j < k; j++) ck_assert(memcmp(grids[j], grids[k], sizeof a) != 0);
  }
}
END_TEST

/* ---- errors ---- */

START_TEST(test_errors) {
  trm_trainer *t = NULL;
  ck_assert_int_eq(trm_trainer_create(NULL, &t), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_create(tiny_config, NULL), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_create("hidden_size = 8\nseq_len = 4\n", &t), TRM_E_INVALID); /* no vocab */
  ck_assert_int_eq(trm_trainer_create("hidden_size = 8\nseq_len = 4\nvocab_size = 3\nbogus = 1\n", &t), TRM_E_INVALID);
  ck_assert_ptr_nonnull(strstr(trm_last_error(), "bogus"));
  ck_assert_int_eq(trm_trainer_create("hidden_size = x\nseq_len = 4\nvocab_size = 3\nmlp_t = true\n", &t), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_create("hidden_size = 8\nseq_len = 4\nvocab_size = 3\nmlp_t = true\nlr = -1\n", &t),
                   TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_create("hidden_size 8\n", &t), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_create("hidden_size = 8\nseq_len = 4\nvocab_size = 3\nnum_heads = 3\n", &t), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_create("hidden_size = 8\nseq_len = 5\nvocab_size = 3\nmlp_t = true\naugment = sudoku\n", &t),
                   TRM_E_INVALID);
  ck_assert_ptr_null(t);
  ck_assert_int_eq(trm_trainer_create_from_model("/nonexistent/model", NULL, &t), TRM_E_IO);
  ck_assert_int_eq(trm_trainer_load_checkpoint("/nonexistent/ckpt", &t), TRM_E_IO);
  ck_assert_ptr_null(t);

  t = tiny_trainer(NULL);
  char path[300];
  tmp_path(path, sizeof path, "m.safetensors");
  ck_assert_int_eq(trm_trainer_save_model(t, path, TRM_WEIGHTS_EMA), TRM_OK);
  trm_trainer *u = NULL;
  ck_assert_int_eq(trm_trainer_create_from_model(path, "hidden_size = 4\n", &u), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_load_checkpoint(path, &u), TRM_E_FORMAT); /* a model is not a checkpoint */
  ck_assert_ptr_null(u);
  unlink(path);

  double v;
  ck_assert_int_eq(trm_trainer_set_option(NULL, TRM_TRAIN_LR, 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_option(t, (trm_train_option)99, 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_LR, NAN), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_BATCH, 0), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_BATCH, 2.5), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_BETA2, 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_AUGMENT, TRM_AUGMENT_SUDOKU), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_BATCH, 4), TRM_OK);
  ck_assert_int_eq(trm_trainer_get_option(t, TRM_TRAIN_BATCH, &v), TRM_OK);
  ck_assert(v == 4);
  ck_assert_int_eq(trm_trainer_get_option(t, TRM_TRAIN_BATCH, NULL), TRM_E_INVALID);
  int64_t iv;
  ck_assert_int_eq(trm_trainer_info(t, "nope", &iv), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_info(t, "seq_len", &iv), TRM_OK);
  ck_assert_int_eq(iv, 8);

  ck_assert_int_eq(trm_trainer_step(t, NULL), TRM_E_STATE); /* no data */
  int32_t in[16], lab[16];
  copy_data(2, 1, in, lab);
  ck_assert_int_eq(trm_trainer_set_data(t, NULL, lab, NULL, 2, -100), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_data(t, in, lab, NULL, 0, -100), TRM_E_INVALID);
  in[3] = 6;
  ck_assert_int_eq(trm_trainer_set_data(t, in, lab, NULL, 2, -100), TRM_E_INVALID);
  in[3] = 1;
  lab[5] = -1;
  ck_assert_int_eq(trm_trainer_set_data(t, in, lab, NULL, 2, -100), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_set_data(t, in, lab, NULL, 2, -1), TRM_OK); /* -1 is now the ignore label */
  int32_t bad_ids[2] = {0, 1}; /* one puzzle identifier */
  ck_assert_int_eq(trm_trainer_set_data(t, in, lab, bad_ids, 2, -1), TRM_E_INVALID);
  trm_train_metrics small = {.size = 1};
  ck_assert_int_eq(trm_trainer_step(t, &small), TRM_E_INVALID);
  trm_train_metrics prefix = {.size = offsetof(trm_train_metrics, lr)}; /* an older, shorter struct */
  ck_assert_int_eq(trm_trainer_step(t, &prefix), TRM_OK);
  ck_assert_int_eq(prefix.step, 1);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_BATCH, 8), TRM_E_STATE);
  ck_assert_int_eq(trm_trainer_set_option(t, TRM_TRAIN_LR, 1e-3), TRM_OK);
  ck_assert_int_eq(trm_trainer_save_model(t, NULL, TRM_WEIGHTS_EMA), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_save_model(t, "/nonexistent/dir/m", TRM_WEIGHTS_EMA), TRM_E_IO);
  ck_assert_int_eq(trm_trainer_save_model(t, path, (trm_weights)5), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_save_checkpoint(t, "/nonexistent/dir/c"), TRM_E_IO);
  trm_model *m = NULL;
  ck_assert_int_eq(trm_trainer_model(t, TRM_WEIGHTS_RAW, NULL), TRM_E_INVALID);
  ck_assert_int_eq(trm_trainer_model(t, TRM_WEIGHTS_RAW, &m), TRM_OK);
  trm_model_free(m);

  /* a damaged checkpoint is refused, not trusted */
  tmp_path(path, sizeof path, "bad.ckpt");
  ck_assert_int_eq(trm_trainer_save_checkpoint(t, path), TRM_OK);
  FILE *fp = fopen(path, "r+b");
  ck_assert_ptr_nonnull(fp);
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  ck_assert_int_eq(ftruncate(fileno(fp), size - 4), 0);
  fclose(fp);
  ck_assert_int_eq(trm_trainer_load_checkpoint(path, &u), TRM_E_FORMAT);
  ck_assert_ptr_null(u);
  unlink(path);
  trm_trainer_free(t);
  trm_trainer_free(NULL);
}
END_TEST

/* ---- allocation failures ---- */

typedef struct counting {
  long calls, fail_at, outstanding;
} counting;

static void *counting_malloc(void *user, size_t size) {
  counting *c = user;
  if (++c->calls == c->fail_at) return NULL;
  void *p = malloc(size);
  if (p) c->outstanding++;
  return p;
}

static void counting_free(void *user, void *ptr) {
  counting *c = user;
  c->outstanding--;
  free(ptr);
}

/* Creation, data and the first step (which allocates the slots and work memory) with the k-th
 * allocation failing, for every k: each failure is TRM_E_NOMEM and nothing leaks. */
START_TEST(test_allocation_failures) {
  int32_t in[32 * 8], lab[32 * 8];
  copy_data(32, 2, in, lab);
  long needed = 0;
  for (long k = 1;; k++) {
    counting c = {0, k, 0};
    trm_allocator a = {sizeof a, counting_malloc, NULL, counting_free, &c};
    ck_assert_int_eq(trm_set_allocator(&a), TRM_OK);
    trm_trainer *t = NULL;
    trm_status st = trm_trainer_create(tiny_config, &t);
    if (st == TRM_OK) st = trm_trainer_set_data(t, in, lab, NULL, 32, -100);
    if (st == TRM_OK) st = trm_trainer_step(t, NULL);
    if (st == TRM_OK) st = trm_trainer_step(t, NULL);
    trm_trainer_free(t);
    long calls = c.calls, outstanding = c.outstanding;
    ck_assert_int_eq(trm_set_allocator(NULL), TRM_OK);
    ck_assert_msg(outstanding == 0, "allocation %ld failing leaks %ld blocks", k, outstanding);
    if (st == TRM_OK) {
      ck_assert_int_lt(calls, k); /* no allocation was left to fail */
      needed = calls;
      break;
    }
    ck_assert_msg(st == TRM_E_NOMEM, "allocation %ld failing gave %s", k, trm_status_string(st));
    ck_assert_int_lt(k, 100000);
  }
  ck_assert_int_gt(needed, 10);
}
END_TEST

int main(void) {
  make_tmp();
  Suite *s = suite_create("train");
  TCase *tc = tcase_create("train");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_augmentations);
  tcase_add_test(tc, test_allocation_failures);
  tcase_add_test(tc, test_threads_identical);
  tcase_add_test(tc, test_checkpoint_resumes_bitwise);
  tcase_add_test(tc, test_saved_model_logits);
  tcase_add_test(tc, test_learns_copy);
  suite_add_tcase(s, tc);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  rmdir(tmp_dir);
  return failed ? 1 : 0;
}
