/* Unit tests (Check) for the session API: options, inputs, accessors, trm_refine()'s bookkeeping,
 * halting, slot reuse, threads, the output heads, and an independent double-precision
 * implementation of TRM-SPEC.md (embedding and the tiny network f) to compare the library with. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_builder.h"
#include "trm.h"

/* ---- fixtures ---- */

typedef struct fx {
  mb_model *mb;
  trm_model *m;
  int64_t S, D, seq, V, P, H, L, n_ids;
  size_t state; /* S * D */
} fx;

static void fx_from_builder(fx *f, mb_model *mb) {
  memset(f, 0, sizeof *f);
  f->mb = mb;
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  trm_status st = trm_model_load_memory(buf, size, &f->m);
  free(buf);
  ck_assert_msg(st == TRM_OK, "load: %s", trm_last_error());
  f->S = mb->S;
  f->D = mb->cfg.hidden_size;
  f->seq = mb->cfg.seq_len;
  f->V = mb->cfg.vocab_size;
  f->P = mb->P;
  f->H = mb->cfg.H_cycles;
  f->L = mb->cfg.L_cycles;
  f->n_ids = mb->cfg.num_puzzle_identifiers;
  f->state = (size_t)(f->S * f->D);
}

static void fx_init(fx *f, const mb_config *c) { fx_from_builder(f, mb_build(c)); }

static void fx_default(fx *f) {
  mb_config c;
  mb_default_config(&c);
  fx_init(f, &c);
}

static void fx_free(fx *f) {
  trm_model_free(f->m);
  mb_free(f->mb);
}

/* Puzzle number k: tokens (i * 7 + 3k + 1) mod vocab. */
static void puzzle_tokens(const fx *f, int k, int32_t *tokens) {
  for (int64_t i = 0; i < f->seq; i++) tokens[i] = (int32_t)((i * 7 + 3 * k + 1) % f->V);
}

static void set_puzzle(const fx *f, trm_session *s, size_t slot, int k) {
  int32_t tokens[64];
  ck_assert_int_le(f->seq, 64);
  puzzle_tokens(f, k, tokens);
  trm_status st = trm_session_set_input(s, slot, tokens, (size_t)f->seq, (int32_t)(k % f->n_ids));
  ck_assert_msg(st == TRM_OK, "set_input: %s", trm_last_error());
}

static trm_session *new_session(const fx *f, size_t batch) {
  trm_session *s = NULL;
  ck_assert_int_eq(trm_session_create(f->m, batch, &s), TRM_OK);
  ck_assert_ptr_nonnull(s);
  return s;
}

static void set_opt(trm_session *s, trm_option opt, int64_t v) {
  trm_status st = trm_session_set_option(s, opt, v);
  ck_assert_msg(st == TRM_OK, "set_option(%d, %lld): %s", (int)opt, (long long)v, trm_last_error());
}

static float *latent(const fx *f, const trm_session *s, size_t slot, trm_latent which) {
  float *out = malloc(f->state * sizeof *out);
  ck_assert_ptr_nonnull(out);
  ck_assert_int_eq(trm_session_latent(s, slot, which, out, f->state), TRM_OK);
  return out;
}

static void assert_bitwise(const float *a, const float *b, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(memcmp(&a[i], &b[i], sizeof a[i]) == 0, "%s: element %zu differs: %.9g vs %.9g", what, i,
                  (double)a[i], (double)b[i]);
}

/* The slot's y and z equal those of another session's slot, bit for bit. */
static void assert_same_state(const fx *f, const trm_session *a, size_t sa, const trm_session *b, size_t sb) {
  float *ya = latent(f, a, sa, TRM_LATENT_Y), *yb = latent(f, b, sb, TRM_LATENT_Y);
  float *za = latent(f, a, sa, TRM_LATENT_Z), *zb = latent(f, b, sb, TRM_LATENT_Z);
  assert_bitwise(ya, yb, f->state, "y");
  assert_bitwise(za, zb, f->state, "z");
  free(ya);
  free(yb);
  free(za);
  free(zb);
}

/* A fresh one-slot session that ran puzzle k for `steps` steps. */
static trm_session *fresh_run(const fx *f, int k, int steps) {
  trm_session *s = new_session(f, 1);
  set_puzzle(f, s, 0, k);
  for (int i = 0; i < steps; i++) ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  return s;
}

static trm_slot_state slot_state(const trm_session *s, size_t slot, int64_t *steps) {
  trm_slot_state st = (trm_slot_state)-1;
  int64_t n = -1;
  ck_assert_int_eq(trm_session_slot_state(s, slot, &st, &n), TRM_OK);
  if (steps) *steps = n;
  return st;
}

static trm_status refine(trm_session *s, trm_event *ev) {
  memset(ev, 0xCD, sizeof *ev);
  ev->size = sizeof *ev;
  return trm_refine(s, ev);
}

/* ---- status, version, errors ---- */

START_TEST(test_status_strings) {
  struct {
    trm_status s;
    const char *prefix;
  } all[] = {
      {TRM_OK, "TRM_OK"},           {TRM_HALTED, "TRM_HALTED"},         {TRM_E_INVALID, "TRM_E_INVALID"},
      {TRM_E_NOMEM, "TRM_E_NOMEM"}, {TRM_E_IO, "TRM_E_IO"},             {TRM_E_FORMAT, "TRM_E_FORMAT"},
      {TRM_E_UNSUPPORTED, "TRM_E_UNSUPPORTED"}, {TRM_E_STATE, "TRM_E_STATE"},
  };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    const char *str = trm_status_string(all[i].s);
    ck_assert_ptr_nonnull(str);
    ck_assert_msg(strncmp(str, all[i].prefix, strlen(all[i].prefix)) == 0, "'%s' does not start with %s", str,
                  all[i].prefix);
    ck_assert_uint_gt(strlen(str), strlen(all[i].prefix)); /* it also says what it means */
    for (size_t j = 0; j < i; j++) ck_assert_str_ne(str, trm_status_string(all[j].s));
  }
  ck_assert_str_eq(trm_status_string((trm_status)42), "unknown status");
  ck_assert_str_eq(trm_status_string((trm_status)-7), "unknown status");
  ck_assert_str_eq(trm_status_string((trm_status)-1000), "unknown status");
  ck_assert_str_eq(trm_status_string((trm_status)2), "unknown status");
}
END_TEST

START_TEST(test_version) {
  ck_assert_str_eq(trm_version_string(), "0.1.0");
  char buf[32];
  snprintf(buf, sizeof buf, "%d.%d.%d", TRM_VERSION_MAJOR, TRM_VERSION_MINOR, TRM_VERSION_PATCH);
  ck_assert_str_eq(trm_version_string(), buf);
}
END_TEST

typedef struct thread_probe {
  char initial[64];
  char after[256];
} thread_probe;

static void *probe_thread(void *arg) {
  thread_probe *p = arg;
  snprintf(p->initial, sizeof p->initial, "%s", trm_last_error());
  trm_session *s = NULL;
  trm_session_create(NULL, 1, &s);
  snprintf(p->after, sizeof p->after, "%s", trm_last_error());
  return NULL;
}

START_TEST(test_last_error_per_thread) {
  trm_event ev = TRM_EVENT_INIT;
  ck_assert_int_eq(trm_refine(NULL, &ev), TRM_E_INVALID);
  char mine[256];
  snprintf(mine, sizeof mine, "%s", trm_last_error());
  ck_assert_uint_gt(strlen(mine), 0);
  thread_probe p;
  memset(&p, 0, sizeof p);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, probe_thread, &p), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_str_eq(p.initial, ""); /* nothing failed on that thread yet */
  ck_assert_uint_gt(strlen(p.after), 0);
  ck_assert_str_ne(p.after, mine);
  ck_assert_str_eq(trm_last_error(), mine); /* this thread's message is its own */

  /* successful calls leave the message as it was */
  fx f;
  fx_default(&f);
  ck_assert_int_eq(trm_refine(NULL, NULL), TRM_E_INVALID);
  snprintf(mine, sizeof mine, "%s", trm_last_error());
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  ck_assert_str_eq(trm_last_error(), mine);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

/* ---- sessions and options ---- */

static max_align_t sentinel_object;
#define SESSION_SENTINEL ((trm_session *)(void *)&sentinel_object)

START_TEST(test_session_create_invalid) {
  fx f;
  fx_default(&f);
  trm_session *s = SESSION_SENTINEL;
  ck_assert_int_eq(trm_session_create(NULL, 1, &s), TRM_E_INVALID);
  ck_assert(s == SESSION_SENTINEL);
  ck_assert_int_eq(trm_session_create(f.m, 0, &s), TRM_E_INVALID);
  ck_assert(s == SESSION_SENTINEL);
  ck_assert_ptr_nonnull(strstr(trm_last_error(), "batch"));
  ck_assert_int_eq(trm_session_create(f.m, 1, NULL), TRM_E_INVALID);
  trm_status st = trm_session_create(f.m, SIZE_MAX, &s);
  ck_assert_msg(st == TRM_E_NOMEM || st == TRM_E_INVALID, "batch SIZE_MAX: %s", trm_status_string(st));
  ck_assert(s == SESSION_SENTINEL);
  trm_session_free(NULL);

  s = new_session(&f, 3);
  for (size_t k = 0; k < 3; k++) {
    int64_t steps;
    ck_assert_int_eq(slot_state(s, k, &steps), TRM_SLOT_EMPTY);
    ck_assert_int_eq(steps, 0);
  }
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_options_invalid) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CYCLE);
  set_opt(s, TRM_OPT_MAX_STEPS, 3);
  set_opt(s, TRM_OPT_HALT, TRM_HALT_Q);
  set_opt(s, TRM_OPT_THREADS, 2);
  struct {
    trm_option opt;
    int64_t value;
  } bad[] = {
      {TRM_OPT_YIELD, 3},      {TRM_OPT_YIELD, -1},       {TRM_OPT_YIELD, INT64_MAX},
      {TRM_OPT_HALT, 2},       {TRM_OPT_HALT, -1},        {TRM_OPT_MAX_STEPS, 0},
      {TRM_OPT_MAX_STEPS, -5}, {TRM_OPT_MAX_STEPS, INT64_MIN}, {TRM_OPT_THREADS, -1},
      {TRM_OPT_THREADS, INT64_MIN}, {TRM_OPT_THREADS, INT64_MAX}, {(trm_option)0, 1},
      {(trm_option)99, 1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    trm_status st = trm_session_set_option(s, bad[i].opt, bad[i].value);
    ck_assert_msg(st == TRM_E_INVALID, "option %d = %lld: %s", (int)bad[i].opt, (long long)bad[i].value,
                  trm_status_string(st));
    ck_assert_uint_gt(strlen(trm_last_error()), 0);
  }
  ck_assert_int_eq(trm_session_set_option(NULL, TRM_OPT_YIELD, 0), TRM_E_INVALID);
  /* nothing changed */
  int64_t v;
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_YIELD, &v), TRM_OK);
  ck_assert_int_eq(v, TRM_YIELD_CYCLE);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_MAX_STEPS, &v), TRM_OK);
  ck_assert_int_eq(v, 3);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_HALT, &v), TRM_OK);
  ck_assert_int_eq(v, TRM_HALT_Q);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_THREADS, &v), TRM_OK);
  ck_assert_int_eq(v, 2);
  /* get_option's own argument checks */
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_YIELD, NULL), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_get_option(NULL, TRM_OPT_YIELD, &v), TRM_E_INVALID);
  v = 77;
  ck_assert_int_eq(trm_session_get_option(s, (trm_option)0, &v), TRM_E_INVALID);
  ck_assert_int_eq(v, 77);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_options_round_trip) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 2);
  int64_t v;
  /* defaults */
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_YIELD, &v), TRM_OK);
  ck_assert_int_eq(v, TRM_YIELD_STEP);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_MAX_STEPS, &v), TRM_OK);
  ck_assert_int_eq(v, f.mb->cfg.halt_max_steps);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_HALT, &v), TRM_OK);
  ck_assert_int_eq(v, TRM_HALT_FIXED);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_THREADS, &v), TRM_OK);
  ck_assert_int_eq(v, 1);
  for (int64_t y = TRM_YIELD_CALL; y <= TRM_YIELD_STEP; y++) {
    set_opt(s, TRM_OPT_YIELD, y);
    ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_YIELD, &v), TRM_OK);
    ck_assert_int_eq(v, y);
  }
  const int64_t steps[] = {1, 2, 17, 1000000};
  for (size_t i = 0; i < 4; i++) {
    set_opt(s, TRM_OPT_MAX_STEPS, steps[i]);
    ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_MAX_STEPS, &v), TRM_OK);
    ck_assert_int_eq(v, steps[i]);
  }
  set_opt(s, TRM_OPT_HALT, TRM_HALT_Q);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_HALT, &v), TRM_OK);
  ck_assert_int_eq(v, TRM_HALT_Q);
  set_opt(s, TRM_OPT_HALT, TRM_HALT_FIXED);
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_HALT, &v), TRM_OK);
  ck_assert_int_eq(v, TRM_HALT_FIXED);
  const int64_t threads[] = {3, 1, 2, 2, 1};
  for (size_t i = 0; i < 5; i++) {
    set_opt(s, TRM_OPT_THREADS, threads[i]);
    ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_THREADS, &v), TRM_OK);
    ck_assert_int_eq(v, threads[i]);
  }
  set_opt(s, TRM_OPT_THREADS, 0); /* resolved: one per CPU */
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_THREADS, &v), TRM_OK);
  ck_assert_int_ge(v, 1);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

/* ---- inputs ---- */

START_TEST(test_set_input_invalid) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 2);
  set_puzzle(&f, s, 0, 1);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  float *y0 = latent(&f, s, 0, TRM_LATENT_Y), *z0 = latent(&f, s, 0, TRM_LATENT_Z);

  int32_t good[64], tokens[64];
  puzzle_tokens(&f, 2, good);
  size_t seq = (size_t)f.seq;
  for (size_t slot = 0; slot < 2; slot++) {
    ck_assert_int_eq(trm_session_set_input(s, slot, NULL, seq, 0), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_set_input(s, slot, good, seq - 1, 0), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_set_input(s, slot, good, seq + 1, 0), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_set_input(s, slot, good, 0, 0), TRM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(trm_last_error(), "seq_len"));
    const int32_t bad_tokens[] = {-1, (int32_t)f.V, INT32_MIN, INT32_MAX};
    for (size_t b = 0; b < 4; b++) {
      for (size_t pos = 0; pos < seq; pos += seq - 1) { /* the first and the last position */
        memcpy(tokens, good, seq * sizeof *tokens);
        tokens[pos] = bad_tokens[b];
        ck_assert_int_eq(trm_session_set_input(s, slot, tokens, seq, 0), TRM_E_INVALID);
      }
    }
    const int32_t bad_ids[] = {-1, (int32_t)f.n_ids, INT32_MAX};
    for (size_t b = 0; b < 3; b++) {
      ck_assert_int_eq(trm_session_set_input(s, slot, good, seq, bad_ids[b]), TRM_E_INVALID);
      ck_assert_ptr_nonnull(strstr(trm_last_error(), "puzzle_id"));
    }
  }
  ck_assert_int_eq(trm_session_set_input(s, 2, good, seq, 0), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_set_input(s, SIZE_MAX, good, seq, 0), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_set_input(NULL, 0, good, seq, 0), TRM_E_INVALID);

  /* nothing changed: slot 0 keeps its state and step count, slot 1 stays empty */
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 1);
  ck_assert_int_eq(slot_state(s, 1, &steps), TRM_SLOT_EMPTY);
  float *y1 = latent(&f, s, 0, TRM_LATENT_Y), *z1 = latent(&f, s, 0, TRM_LATENT_Z);
  assert_bitwise(y0, y1, f.state, "y after refused inputs");
  assert_bitwise(z0, z1, f.state, "z after refused inputs");
  /* and it runs on as if nothing happened */
  trm_session *ref = fresh_run(&f, 1, 2);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  assert_same_state(&f, s, 0, ref, 0);
  /* the largest valid ids are fine */
  for (size_t i = 0; i < seq; i++) tokens[i] = (int32_t)f.V - 1;
  ck_assert_int_eq(trm_session_set_input(s, 1, tokens, seq, (int32_t)f.n_ids - 1), TRM_OK);
  free(y0);
  free(z0);
  free(y1);
  free(z1);
  trm_session_free(ref);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_set_input_resets) {
  /* a new input resets y to H_init and z to L_init on every row, and the step count to 0 */
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  set_puzzle(&f, s, 0, 1);
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 0);
  float *y = latent(&f, s, 0, TRM_LATENT_Y), *z = latent(&f, s, 0, TRM_LATENT_Z);
  mb_tensor *hi = mb_find(f.mb, "H_init"), *li = mb_find(f.mb, "L_init");
  for (int64_t r = 0; r < f.S; r++) {
    for (int64_t d = 0; d < f.D; d++) {
      float h = mb_get(hi, (size_t)d), l = mb_get(li, (size_t)d);
      ck_assert(memcmp(&y[r * f.D + d], &h, sizeof h) == 0);
      ck_assert(memcmp(&z[r * f.D + d], &l, sizeof l) == 0);
    }
  }
  free(y);
  free(z);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_puzzle_id_without_puzzle_emb) {
  /* trm.h: puzzle_id "must be 0 for models without puzzle embeddings" */
  mb_config c;
  mb_default_config(&c);
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 1;
  mb_model *mb = mb_build(&c);
  mb_set_meta(mb, "num_puzzle_identifiers", NULL);
  fx f;
  fx_from_builder(&f, mb);
  trm_session *s = new_session(&f, 1);
  int32_t tokens[64];
  puzzle_tokens(&f, 0, tokens);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)f.seq, 0), TRM_OK);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)f.seq, 1), TRM_E_INVALID);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_puzzle_id_without_puzzle_emb_meta) {
  /* A file without a puzzle table may still say how many puzzle identifiers its data set has
   * (num_puzzle_identifiers metadata, here 2): trm.h promises ids in [0, num_puzzle_identifiers),
   * which such models ignore. Id 1 is accepted, id 2 refused, and the info reports 2. */
  mb_config c;
  mb_default_config(&c);
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 2;
  fx f;
  fx_init(&f, &c);
  trm_session *s = new_session(&f, 1);
  int32_t tokens[64];
  puzzle_tokens(&f, 0, tokens);
  int64_t ids = 0;
  ck_assert_int_eq(trm_model_info(f.m, "num_puzzle_identifiers", &ids), TRM_OK);
  ck_assert_int_eq(ids, 2);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)f.seq, 0), TRM_OK);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)f.seq, 1), TRM_OK);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)f.seq, 2), TRM_E_INVALID);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

/* ---- accessors ---- */

START_TEST(test_accessors_empty_slot) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 2);
  set_puzzle(&f, s, 0, 0);
  float *buf = calloc(f.state + 64, sizeof *buf);
  int32_t tok[64];
  float conf[64], qh = 1, qc = 2;
  ck_assert_ptr_nonnull(buf);
  const size_t empty = 1;
  ck_assert_int_eq(trm_session_logits(s, empty, buf, (size_t)(f.seq * f.V)), TRM_E_STATE);
  ck_assert_int_eq(trm_session_answer(s, empty, tok, conf, (size_t)f.seq), TRM_E_STATE);
  ck_assert_int_eq(trm_session_q(s, empty, &qh, &qc), TRM_E_STATE);
  ck_assert(qh == 1 && qc == 2);
  ck_assert_int_eq(trm_session_latent(s, empty, TRM_LATENT_Y, buf, f.state), TRM_E_STATE);
  ck_assert_int_eq(trm_session_latent(s, empty, TRM_LATENT_Z, buf, f.state), TRM_E_STATE);
  ck_assert_int_eq(trm_session_set_latent(s, empty, TRM_LATENT_Y, buf, f.state), TRM_E_STATE);
  ck_assert_int_eq(trm_session_set_latent(s, empty, TRM_LATENT_Z, buf, f.state), TRM_E_STATE);
  ck_assert_int_eq(slot_state(s, empty, NULL), TRM_SLOT_EMPTY);
  /* out of range slots and NULL sessions */
  const size_t bad_slots[] = {2, 1000, SIZE_MAX};
  for (size_t i = 0; i < 3; i++) {
    size_t k = bad_slots[i];
    ck_assert_int_eq(trm_session_logits(s, k, buf, (size_t)(f.seq * f.V)), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_answer(s, k, tok, conf, (size_t)f.seq), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_q(s, k, &qh, &qc), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_latent(s, k, TRM_LATENT_Y, buf, f.state), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_set_latent(s, k, TRM_LATENT_Y, buf, f.state), TRM_E_INVALID);
    ck_assert_int_eq(trm_session_slot_state(s, k, NULL, NULL), TRM_E_INVALID);
  }
  ck_assert_int_eq(trm_session_logits(NULL, 0, buf, (size_t)(f.seq * f.V)), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_answer(NULL, 0, tok, conf, (size_t)f.seq), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_q(NULL, 0, &qh, &qc), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_latent(NULL, 0, TRM_LATENT_Y, buf, f.state), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_set_latent(NULL, 0, TRM_LATENT_Y, buf, f.state), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_slot_state(NULL, 0, NULL, NULL), TRM_E_INVALID);
  /* the filled slot answers */
  ck_assert_int_eq(trm_session_q(s, 0, &qh, &qc), TRM_OK);
  ck_assert_int_eq(trm_session_q(s, 0, NULL, NULL), TRM_OK);
  ck_assert_int_eq(trm_session_answer(s, 0, NULL, NULL, (size_t)f.seq), TRM_OK);
  ck_assert_int_eq(trm_session_slot_state(s, 0, NULL, NULL), TRM_OK);
  free(buf);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_accessors_small_buffers) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  size_t nl = (size_t)(f.seq * f.V);
  float *buf = calloc(f.state + nl + 16, sizeof *buf);
  ck_assert_ptr_nonnull(buf);
  int32_t tok[64];
  float conf[64];
  ck_assert_int_eq(trm_session_logits(s, 0, buf, nl - 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_logits(s, 0, buf, 0), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_logits(s, 0, NULL, nl), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_logits(s, 0, buf, nl), TRM_OK);
  ck_assert_int_eq(trm_session_logits(s, 0, buf, nl + 5), TRM_OK);
  ck_assert_int_eq(trm_session_answer(s, 0, tok, conf, (size_t)f.seq - 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_answer(s, 0, tok, conf, 0), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_answer(s, 0, tok, conf, (size_t)f.seq), TRM_OK);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Y, buf, f.state - 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Z, buf, 0), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Y, NULL, f.state), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_latent(s, 0, (trm_latent)2, buf, f.state), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_latent(s, 0, (trm_latent)-1, buf, f.state), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Y, buf, f.state + 3), TRM_OK);

  /* set_latent needs exactly S*D floats; refused calls change nothing */
  float *y = latent(&f, s, 0, TRM_LATENT_Y);
  for (size_t i = 0; i < f.state + 16; i++) buf[i] = 0.25f;
  ck_assert_int_eq(trm_session_set_latent(s, 0, TRM_LATENT_Y, buf, f.state - 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_set_latent(s, 0, TRM_LATENT_Y, buf, f.state + 1), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_set_latent(s, 0, TRM_LATENT_Y, buf, 0), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_set_latent(s, 0, TRM_LATENT_Y, NULL, f.state), TRM_E_INVALID);
  ck_assert_int_eq(trm_session_set_latent(s, 0, (trm_latent)2, buf, f.state), TRM_E_INVALID);
  float *y2 = latent(&f, s, 0, TRM_LATENT_Y);
  assert_bitwise(y, y2, f.state, "y after refused set_latent");
  free(y);
  free(y2);
  free(buf);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_set_latent_nonfinite) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0);
  float *y = latent(&f, s, 0, TRM_LATENT_Y), *z = latent(&f, s, 0, TRM_LATENT_Z);
  float *in = malloc(f.state * sizeof *in);
  ck_assert_ptr_nonnull(in);
  const float bad[] = {NAN, INFINITY, -INFINITY};
  const size_t where[] = {0, f.state / 2, f.state - 1};
  for (size_t b = 0; b < 3; b++) {
    for (size_t w = 0; w < 3; w++) {
      for (size_t i = 0; i < f.state; i++) in[i] = 0.5f;
      in[where[w]] = bad[b];
      ck_assert_int_eq(trm_session_set_latent(s, 0, TRM_LATENT_Y, in, f.state), TRM_E_INVALID);
      ck_assert_int_eq(trm_session_set_latent(s, 0, TRM_LATENT_Z, in, f.state), TRM_E_INVALID);
    }
  }
  float *y2 = latent(&f, s, 0, TRM_LATENT_Y), *z2 = latent(&f, s, 0, TRM_LATENT_Z);
  assert_bitwise(y, y2, f.state, "y");
  assert_bitwise(z, z2, f.state, "z");
  /* finite extremes are accepted */
  for (size_t i = 0; i < f.state; i++) in[i] = (i % 2) ? -3.0e38f : 1e-45f;
  ck_assert_int_eq(trm_session_set_latent(s, 0, TRM_LATENT_Z, in, f.state), TRM_OK);
  free(y);
  free(z);
  free(y2);
  free(z2);
  free(in);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

/* ---- trm_refine: arguments and bookkeeping ---- */

START_TEST(test_refine_event_size) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0);
  float *y0 = latent(&f, s, 0, TRM_LATENT_Y);
  trm_event ev = TRM_EVENT_INIT;
  ev.size = sizeof ev - 1;
  ck_assert_int_eq(trm_refine(s, &ev), TRM_E_INVALID);
  ev.size = 0;
  ck_assert_int_eq(trm_refine(s, &ev), TRM_E_INVALID);
  ev.size = sizeof(size_t);
  ck_assert_int_eq(trm_refine(s, &ev), TRM_E_INVALID);
  ck_assert_int_eq(trm_refine(NULL, NULL), TRM_E_INVALID);
  /* nothing ran */
  float *y1 = latent(&f, s, 0, TRM_LATENT_Y);
  assert_bitwise(y0, y1, f.state, "y after refused refine");
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 0);
  ev.size = sizeof ev;
  ck_assert_int_eq(trm_refine(s, &ev), TRM_OK);
  ck_assert_int_eq(ev.calls, f.H * (f.L + 1));
  ck_assert_int_eq(ev.step, 1);

  /* a caller built against a later, larger trm_event: the fields past ours are left alone */
  struct {
    trm_event ev;
    unsigned char later[40];
  } big;
  memset(&big, 0xAB, sizeof big);
  big.ev.size = sizeof big;
  ck_assert_int_eq(trm_refine(s, &big.ev), TRM_OK);
  ck_assert_uint_eq(big.ev.size, sizeof big);
  ck_assert_int_eq(big.ev.kind, TRM_EVENT_STEP);
  ck_assert_int_eq(big.ev.step, 2);
  for (size_t i = 0; i < sizeof big.later; i++) ck_assert_uint_eq(big.later[i], 0xAB);
  /* NULL events are fine */
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 3);
  free(y0);
  free(y1);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_refine_no_inputs) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 3);
  for (int yield = TRM_YIELD_CALL; yield <= TRM_YIELD_STEP; yield++) {
    set_opt(s, TRM_OPT_YIELD, yield);
    trm_event ev;
    ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
    ck_assert_uint_eq(ev.size, sizeof ev);
    ck_assert_int_eq(ev.kind, TRM_EVENT_NONE);
    ck_assert_int_eq(ev.step, 0);
    ck_assert_int_eq(ev.calls, 0);
    ck_assert_uint_eq(ev.active, 0);
    ck_assert_uint_eq(ev.halted, 0);
  }
  ck_assert_int_eq(trm_refine(s, NULL), TRM_HALTED);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

/* With yield CALL: every call's event, for H and L cycles, over two steps. */
static void check_call_sequence(int64_t H, int64_t L) {
  mb_config c;
  mb_default_config(&c);
  c.H_cycles = H;
  c.L_cycles = L;
  c.L_layers = 1;
  fx f;
  fx_init(&f, &c);
  trm_session *s = new_session(&f, 1);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CALL);
  set_puzzle(&f, s, 0, 0);
  int64_t calls = 0;
  for (int64_t step = 1; step <= 2; step++) {
    for (int64_t cycle = 1; cycle <= H; cycle++) {
      for (int64_t call = 1; call <= L + 1; call++) {
        trm_event ev;
        ck_assert_int_eq(refine(s, &ev), TRM_OK);
        calls++;
        trm_event_kind want = call <= L ? TRM_EVENT_LATENT : cycle < H ? TRM_EVENT_ANSWER : TRM_EVENT_STEP;
        ck_assert_msg(ev.kind == want, "H %lld L %lld: step %lld cycle %lld call %lld: kind %d, want %d",
                      (long long)H, (long long)L, (long long)step, (long long)cycle, (long long)call, (int)ev.kind,
                      (int)want);
        ck_assert_int_eq(ev.step, step);
        ck_assert_int_eq(ev.cycle, cycle);
        ck_assert_int_eq(ev.call, call);
        ck_assert_int_eq(ev.calls, calls);
        ck_assert_uint_eq(ev.active, 1);
        ck_assert_uint_eq(ev.halted, 0);
        ck_assert_uint_eq(ev.size, sizeof ev);
        int64_t steps;
        ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
        ck_assert_int_eq(steps, want == TRM_EVENT_STEP ? step : step - 1);
      }
    }
  }
  trm_session_free(s);
  fx_free(&f);
}

START_TEST(test_yield_call_sequence) {
  /* H = 2, L = 2: latent(1,1) latent(1,2) answer(1,3) latent(2,1) latent(2,2) step(2,3), then step 2 */
  check_call_sequence(2, 2);
  check_call_sequence(3, 1);
  check_call_sequence(1, 3);
  check_call_sequence(1, 1);
}
END_TEST

START_TEST(test_yield_call_sequence_literal) {
  fx f;
  fx_default(&f); /* H 2, L 2 */
  trm_session *s = new_session(&f, 1);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CALL);
  set_puzzle(&f, s, 0, 0);
  const struct {
    trm_event_kind kind;
    int64_t step;
    int32_t cycle, call;
  } want[] = {
      {TRM_EVENT_LATENT, 1, 1, 1}, {TRM_EVENT_LATENT, 1, 1, 2}, {TRM_EVENT_ANSWER, 1, 1, 3},
      {TRM_EVENT_LATENT, 1, 2, 1}, {TRM_EVENT_LATENT, 1, 2, 2}, {TRM_EVENT_STEP, 1, 2, 3},
      {TRM_EVENT_LATENT, 2, 1, 1},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    trm_event ev;
    ck_assert_int_eq(refine(s, &ev), TRM_OK);
    ck_assert_int_eq(ev.kind, want[i].kind);
    ck_assert_int_eq(ev.step, want[i].step);
    ck_assert_int_eq(ev.cycle, want[i].cycle);
    ck_assert_int_eq(ev.call, want[i].call);
    ck_assert_int_eq(ev.calls, (int64_t)i + 1);
  }
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_yield_cycle_and_step) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CYCLE);
  set_puzzle(&f, s, 0, 0);
  trm_event ev;
  int64_t per_cycle = f.L + 1;
  for (int64_t step = 1; step <= 2; step++) {
    for (int64_t cycle = 1; cycle <= f.H; cycle++) {
      ck_assert_int_eq(refine(s, &ev), TRM_OK);
      ck_assert_int_eq(ev.kind, cycle < f.H ? TRM_EVENT_ANSWER : TRM_EVENT_STEP);
      ck_assert_int_eq(ev.step, step);
      ck_assert_int_eq(ev.cycle, cycle);
      ck_assert_int_eq(ev.call, f.L + 1);
      ck_assert_int_eq(ev.calls, ((step - 1) * f.H + cycle) * per_cycle);
    }
  }
  trm_session_free(s);

  s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0); /* the default unit: a step */
  for (int64_t step = 1; step <= f.mb->cfg.halt_max_steps; step++) {
    ck_assert_int_eq(refine(s, &ev), TRM_OK);
    ck_assert_int_eq(ev.kind, TRM_EVENT_STEP);
    ck_assert_int_eq(ev.step, step);
    ck_assert_int_eq(ev.cycle, f.H);
    ck_assert_int_eq(ev.call, f.L + 1);
    ck_assert_int_eq(ev.calls, step * f.H * per_cycle);
  }
  ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
  ck_assert_int_eq(ev.kind, TRM_EVENT_NONE);
  ck_assert_int_eq(ev.calls, f.mb->cfg.halt_max_steps * f.H * per_cycle);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_yield_units_same_state) {
  /* whatever the unit, the state after whole steps is bitwise the same */
  fx f;
  fx_default(&f);
  trm_session *s[3];
  for (int y = 0; y < 3; y++) {
    s[y] = new_session(&f, 2);
    set_opt(s[y], TRM_OPT_YIELD, y);
    set_puzzle(&f, s[y], 0, 3);
    set_puzzle(&f, s[y], 1, 4);
  }
  for (int step = 1; step <= 2; step++) {
    for (int y = 0; y < 3; y++) {
      trm_event ev;
      do ck_assert_int_eq(refine(s[y], &ev), TRM_OK);
      while (ev.kind != TRM_EVENT_STEP);
      ck_assert_int_eq(ev.step, step);
    }
    for (int y = 1; y < 3; y++) {
      assert_same_state(&f, s[0], 0, s[y], 0);
      assert_same_state(&f, s[0], 1, s[y], 1);
    }
  }
  /* and switching the unit in the middle of a step changes nothing either */
  trm_session *mix = new_session(&f, 2);
  set_puzzle(&f, mix, 0, 3);
  set_puzzle(&f, mix, 1, 4);
  set_opt(mix, TRM_OPT_YIELD, TRM_YIELD_CALL);
  ck_assert_int_eq(trm_refine(mix, NULL), TRM_OK);
  set_opt(mix, TRM_OPT_YIELD, TRM_YIELD_CYCLE);
  ck_assert_int_eq(trm_refine(mix, NULL), TRM_OK); /* finishes cycle 1 */
  set_opt(mix, TRM_OPT_YIELD, TRM_YIELD_STEP);
  trm_event ev;
  ck_assert_int_eq(refine(mix, &ev), TRM_OK); /* finishes step 1 */
  ck_assert_int_eq(ev.kind, TRM_EVENT_STEP);
  ck_assert_int_eq(ev.step, 1);
  ck_assert_int_eq(refine(mix, &ev), TRM_OK);
  ck_assert_int_eq(ev.step, 2);
  assert_same_state(&f, s[0], 0, mix, 0);
  assert_same_state(&f, s[0], 1, mix, 1);
  trm_session_free(mix);
  for (int y = 0; y < 3; y++) trm_session_free(s[y]);
  fx_free(&f);
}
END_TEST

START_TEST(test_calls_counter_batch) {
  /* calls count network calls once over all running slots */
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 4);
  for (size_t k = 0; k < 3; k++) set_puzzle(&f, s, k, (int)k);
  trm_event ev;
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_int_eq(ev.calls, f.H * (f.L + 1));
  ck_assert_uint_eq(ev.active, 3);
  ck_assert_uint_eq(ev.halted, 0);
  ck_assert_int_eq(slot_state(s, 3, NULL), TRM_SLOT_EMPTY);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

/* ---- halting ---- */

START_TEST(test_halt_fixed) {
  fx f;
  fx_default(&f);
  int64_t max = f.mb->cfg.halt_max_steps;
  trm_session *s = new_session(&f, 3);
  for (size_t k = 0; k < 3; k++) set_puzzle(&f, s, k, (int)k);
  trm_event ev;
  for (int64_t step = 1; step <= max; step++) {
    ck_assert_int_eq(refine(s, &ev), TRM_OK);
    ck_assert_int_eq(ev.step, step);
    ck_assert_uint_eq(ev.halted, step == max ? 3 : 0);
    ck_assert_uint_eq(ev.active, step == max ? 0 : 3);
    for (size_t k = 0; k < 3; k++) {
      int64_t steps;
      ck_assert_int_eq(slot_state(s, k, &steps), step == max ? TRM_SLOT_HALTED : TRM_SLOT_RUNNING);
      ck_assert_int_eq(steps, step);
    }
  }
  float *y = latent(&f, s, 1, TRM_LATENT_Y);
  ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
  ck_assert_int_eq(ev.kind, TRM_EVENT_NONE);
  ck_assert_uint_eq(ev.active, 0);
  ck_assert_uint_eq(ev.halted, 0);
  ck_assert_int_eq(ev.calls, max * f.H * (f.L + 1));
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CALL);
  ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
  /* outputs stay readable after halting, and unchanged */
  float *y2 = latent(&f, s, 1, TRM_LATENT_Y);
  assert_bitwise(y, y2, f.state, "halted y");
  int32_t tok[64];
  ck_assert_int_eq(trm_session_answer(s, 1, tok, NULL, (size_t)f.seq), TRM_OK);
  /* raising max_steps does not revive halted slots */
  set_opt(s, TRM_OPT_MAX_STEPS, max + 3);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_HALTED);
  ck_assert_int_eq(slot_state(s, 0, NULL), TRM_SLOT_HALTED);
  free(y);
  free(y2);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_halt_max_steps_option) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_opt(s, TRM_OPT_MAX_STEPS, 2);
  set_puzzle(&f, s, 0, 0);
  trm_event ev;
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_uint_eq(ev.halted, 0);
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_uint_eq(ev.halted, 1);
  ck_assert_uint_eq(ev.active, 0);
  ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
  trm_session_free(s);

  /* more steps than the model's default */
  s = new_session(&f, 1);
  set_opt(s, TRM_OPT_MAX_STEPS, 7);
  set_puzzle(&f, s, 0, 0);
  int n = 0;
  while (trm_refine(s, NULL) == TRM_OK) n++;
  ck_assert_int_eq(n, 7);
  trm_session_free(s);

  /* lowering it below what a slot has run halts the slot at the next step's start */
  s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  set_opt(s, TRM_OPT_MAX_STEPS, 2);
  ck_assert_int_eq(slot_state(s, 0, NULL), TRM_SLOT_RUNNING);
  float *y = latent(&f, s, 0, TRM_LATENT_Y);
  ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
  ck_assert_int_eq(ev.kind, TRM_EVENT_NONE);
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_HALTED);
  ck_assert_int_eq(steps, 3);
  float *y2 = latent(&f, s, 0, TRM_LATENT_Y);
  assert_bitwise(y, y2, f.state, "y of a slot halted by a lower max_steps");
  free(y);
  free(y2);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

/* A model whose halting head gives q = bias exactly: q_head.weight all zero. */
static void fx_q_bias(fx *f, float q_halt, float q_continue, bool no_act_continue) {
  mb_config c;
  mb_default_config(&c);
  mb_model *mb = mb_build(&c);
  mb_tensor *w = mb_find(mb, "q_head.weight"), *b = mb_find(mb, "q_head.bias");
  for (size_t i = 0; i < mb_numel(w); i++) mb_set(w, i, 0.0f);
  mb_set(b, 0, q_halt);
  mb_set(b, 1, q_continue);
  if (!no_act_continue) mb_set_meta(mb, "no_ACT_continue", "false");
  fx_from_builder(f, mb);
}

/* Steps each of `batch` slots runs before halting, under the given halting rule. */
static int64_t steps_until_halt(const fx *f, trm_halt rule) {
  trm_session *s = new_session(f, 3);
  set_opt(s, TRM_OPT_HALT, rule);
  for (size_t k = 0; k < 3; k++) set_puzzle(f, s, k, (int)k);
  int64_t n = 0;
  trm_event ev;
  while (refine(s, &ev) == TRM_OK) {
    n++;
    ck_assert_int_le(n, 100);
  }
  int64_t steps0;
  ck_assert_int_eq(slot_state(s, 0, &steps0), TRM_SLOT_HALTED);
  for (size_t k = 1; k < 3; k++) {
    int64_t steps;
    ck_assert_int_eq(slot_state(s, k, &steps), TRM_SLOT_HALTED);
    ck_assert_int_eq(steps, steps0);
  }
  ck_assert_int_eq(steps0, n);
  trm_session_free(s);
  return n;
}

START_TEST(test_halt_q) {
  fx f;
  fx_q_bias(&f, 5.0f, 0.0f, true); /* q_halt = 5 > 0 */
  float qh, qc;
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 0);
  ck_assert_int_eq(trm_session_q(s, 0, &qh, &qc), TRM_OK);
  ck_assert(qh == 5.0f && qc == 0.0f);
  trm_session_free(s);
  ck_assert_int_eq(steps_until_halt(&f, TRM_HALT_Q), 1);
  ck_assert_int_eq(steps_until_halt(&f, TRM_HALT_FIXED), f.mb->cfg.halt_max_steps);
  /* the event of that step reports the halts */
  s = new_session(&f, 2);
  set_opt(s, TRM_OPT_HALT, TRM_HALT_Q);
  set_puzzle(&f, s, 0, 0);
  set_puzzle(&f, s, 1, 1);
  trm_event ev;
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_int_eq(ev.kind, TRM_EVENT_STEP);
  ck_assert_uint_eq(ev.halted, 2);
  ck_assert_uint_eq(ev.active, 0);
  ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
  trm_session_free(s);
  fx_free(&f);

  fx_q_bias(&f, -5.0f, 0.0f, true); /* never halts early */
  ck_assert_int_eq(steps_until_halt(&f, TRM_HALT_Q), f.mb->cfg.halt_max_steps);
  fx_free(&f);

  /* q_halt = -1 > q_continue = -2: halts only for models trained with no_ACT_continue = false */
  fx_q_bias(&f, -1.0f, -2.0f, false);
  ck_assert_int_eq(steps_until_halt(&f, TRM_HALT_Q), 1);
  fx_free(&f);
  fx_q_bias(&f, -1.0f, -2.0f, true);
  ck_assert_int_eq(steps_until_halt(&f, TRM_HALT_Q), f.mb->cfg.halt_max_steps);
  fx_free(&f);
  fx_q_bias(&f, 1.0f, 2.0f, false); /* q_halt > 0 but < q_continue */
  ck_assert_int_eq(steps_until_halt(&f, TRM_HALT_Q), f.mb->cfg.halt_max_steps);
  fx_free(&f);
}
END_TEST

START_TEST(test_slots_independent_refill) {
  fx f;
  fx_default(&f); /* halt_max_steps 4 */
  trm_session *s = new_session(&f, 2);
  trm_event ev;
  set_puzzle(&f, s, 0, 0);
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  set_puzzle(&f, s, 1, 1); /* joins two steps later */
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_uint_eq(ev.active, 2);
  ck_assert_int_eq(refine(s, &ev), TRM_OK); /* slot 0's 4th step, slot 1's 2nd */
  ck_assert_uint_eq(ev.halted, 1);
  ck_assert_uint_eq(ev.active, 1);
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_HALTED);
  ck_assert_int_eq(steps, 4);
  ck_assert_int_eq(slot_state(s, 1, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 2);
  trm_session *ref0 = fresh_run(&f, 0, 4);
  assert_same_state(&f, s, 0, ref0, 0);

  /* slot 0 gets a new puzzle while slot 1 runs on */
  set_puzzle(&f, s, 0, 2);
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 0);
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_uint_eq(ev.active, 2);
  ck_assert_int_eq(refine(s, &ev), TRM_OK); /* slot 1's 4th step */
  ck_assert_uint_eq(ev.halted, 1);
  ck_assert_uint_eq(ev.active, 1);
  ck_assert_int_eq(slot_state(s, 1, &steps), TRM_SLOT_HALTED);
  ck_assert_int_eq(steps, 4);
  trm_session *ref1 = fresh_run(&f, 1, 4), *ref2 = fresh_run(&f, 2, 2);
  assert_same_state(&f, s, 1, ref1, 0);
  assert_same_state(&f, s, 0, ref2, 0);
  /* slot 0 finishes alone */
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_uint_eq(ev.halted, 1);
  ck_assert_uint_eq(ev.active, 0);
  ck_assert_int_eq(refine(s, &ev), TRM_HALTED);
  trm_session_free(ref2);
  ref2 = fresh_run(&f, 2, 4);
  assert_same_state(&f, s, 0, ref2, 0);
  trm_session_free(ref0);
  trm_session_free(ref1);
  trm_session_free(ref2);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_halted_slots_cost_nothing) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 2);
  set_opt(s, TRM_OPT_MAX_STEPS, 1);
  set_puzzle(&f, s, 0, 0);
  trm_event ev;
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_int_eq(slot_state(s, 0, NULL), TRM_SLOT_HALTED);
  float *y = latent(&f, s, 0, TRM_LATENT_Y), *z = latent(&f, s, 0, TRM_LATENT_Z);
  set_opt(s, TRM_OPT_MAX_STEPS, 5);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CALL);
  set_puzzle(&f, s, 1, 1);
  int64_t calls_before = ev.calls;
  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq(refine(s, &ev), TRM_OK);
    ck_assert_uint_eq(ev.active, 1);
    float *y2 = latent(&f, s, 0, TRM_LATENT_Y), *z2 = latent(&f, s, 0, TRM_LATENT_Z);
    assert_bitwise(y, y2, f.state, "halted y");
    assert_bitwise(z, z2, f.state, "halted z");
    free(y2);
    free(z2);
    ck_assert_int_eq(ev.calls, calls_before + 1);
    calls_before = ev.calls;
  }
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_HALTED);
  ck_assert_int_eq(steps, 1);
  free(y);
  free(z);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_set_input_mid_step) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 2);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CALL);
  set_puzzle(&f, s, 0, 0);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  set_puzzle(&f, s, 1, 1); /* mid-step: joins at the next step */
  float *y1 = latent(&f, s, 1, TRM_LATENT_Y), *z1 = latent(&f, s, 1, TRM_LATENT_Z);
  trm_event ev;
  int n = 2;
  do {
    ck_assert_int_eq(refine(s, &ev), TRM_OK);
    ck_assert_uint_eq(ev.active, 2);
    n++;
    /* slot 1 sits out the rest of this step */
    float *y = latent(&f, s, 1, TRM_LATENT_Y), *z = latent(&f, s, 1, TRM_LATENT_Z);
    assert_bitwise(y1, y, f.state, "joining slot's y");
    assert_bitwise(z1, z, f.state, "joining slot's z");
    free(y);
    free(z);
  } while (ev.kind != TRM_EVENT_STEP);
  ck_assert_int_eq(n, f.H * (f.L + 1));
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 1);
  ck_assert_int_eq(slot_state(s, 1, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 0);
  /* the next step runs both */
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_STEP);
  ck_assert_int_eq(refine(s, &ev), TRM_OK);
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 2);
  ck_assert_int_eq(slot_state(s, 1, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 1);
  trm_session *r0 = fresh_run(&f, 0, 2), *r1 = fresh_run(&f, 1, 1);
  assert_same_state(&f, s, 0, r0, 0);
  assert_same_state(&f, s, 1, r1, 0);
  free(y1);
  free(z1);
  trm_session_free(r0);
  trm_session_free(r1);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_set_input_same_slot_mid_step) {
  /* the only slot of the step under way gets a new puzzle: its partial step is dropped and the
   * new puzzle runs whole steps from the start */
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CALL);
  set_puzzle(&f, s, 0, 0);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  set_puzzle(&f, s, 0, 1);
  trm_event ev;
  for (int64_t i = 0; i < f.H * (f.L + 1); i++) {
    ck_assert_int_eq(refine(s, &ev), TRM_OK);
    ck_assert_int_eq(ev.cycle, i / (f.L + 1) + 1);
    ck_assert_int_eq(ev.call, i % (f.L + 1) + 1);
  }
  ck_assert_int_eq(ev.kind, TRM_EVENT_STEP);
  int64_t steps;
  ck_assert_int_eq(slot_state(s, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 1);
  trm_session *r = fresh_run(&f, 1, 1);
  assert_same_state(&f, s, 0, r, 0);
  trm_session_free(r);
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_set_latent_then_refine) {
  /* a state written with set_latent continues exactly as the state it copies */
  fx f;
  fx_default(&f);
  trm_session *a = fresh_run(&f, 2, 1);
  float *y = latent(&f, a, 0, TRM_LATENT_Y), *z = latent(&f, a, 0, TRM_LATENT_Z);
  trm_session *b = new_session(&f, 2);
  set_puzzle(&f, b, 1, 2);
  ck_assert_int_eq(trm_session_set_latent(b, 1, TRM_LATENT_Y, y, f.state), TRM_OK);
  ck_assert_int_eq(trm_session_set_latent(b, 1, TRM_LATENT_Z, z, f.state), TRM_OK);
  int64_t steps;
  ck_assert_int_eq(slot_state(b, 1, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 0); /* the step count is kept */
  assert_same_state(&f, a, 0, b, 1);
  ck_assert_int_eq(trm_refine(a, NULL), TRM_OK);
  ck_assert_int_eq(trm_refine(b, NULL), TRM_OK);
  assert_same_state(&f, a, 0, b, 1);

  /* set_latent keeps the step count and the halting state of a running slot */
  ck_assert_int_eq(trm_session_set_latent(a, 0, TRM_LATENT_Y, y, f.state), TRM_OK);
  ck_assert_int_eq(slot_state(a, 0, &steps), TRM_SLOT_RUNNING);
  ck_assert_int_eq(steps, 2);
  free(y);
  free(z);
  trm_session_free(a);
  trm_session_free(b);
  fx_free(&f);
}
END_TEST

START_TEST(test_threads_identical) {
  fx f;
  fx_default(&f);
  const int64_t threads[] = {1, 2, 3, 0};
  trm_session *s[4];
  for (int t = 0; t < 4; t++) {
    s[t] = new_session(&f, 5);
    set_opt(s[t], TRM_OPT_THREADS, threads[t]);
    set_opt(s[t], TRM_OPT_MAX_STEPS, 10);
    for (size_t k = 0; k < 5; k++) set_puzzle(&f, s[t], k, (int)k + 1);
    for (int step = 0; step < 3; step++) ck_assert_int_eq(trm_refine(s[t], NULL), TRM_OK);
  }
  for (int t = 1; t < 4; t++)
    for (size_t k = 0; k < 5; k++) assert_same_state(&f, s[0], k, s[t], k);
  /* changing the thread count in the middle of a step, with an uneven batch */
  trm_session *m = new_session(&f, 5);
  set_opt(m, TRM_OPT_MAX_STEPS, 10);
  for (size_t k = 0; k < 5; k++) set_puzzle(&f, m, k, (int)k + 1);
  set_opt(m, TRM_OPT_YIELD, TRM_YIELD_CALL);
  ck_assert_int_eq(trm_refine(m, NULL), TRM_OK);
  set_opt(m, TRM_OPT_THREADS, 3);
  ck_assert_int_eq(trm_refine(m, NULL), TRM_OK);
  set_opt(m, TRM_OPT_THREADS, 2);
  set_opt(m, TRM_OPT_YIELD, TRM_YIELD_STEP);
  for (int step = 0; step < 3; step++) ck_assert_int_eq(trm_refine(m, NULL), TRM_OK);
  for (size_t k = 0; k < 5; k++) assert_same_state(&f, s[0], k, m, k);
  trm_session_free(m);
  for (int t = 0; t < 4; t++) trm_session_free(s[t]);
  fx_free(&f);
}
END_TEST

typedef struct shared_job {
  const fx *f;
  int puzzle;
  float *y;
  int ok;
} shared_job;

static void *shared_worker(void *arg) {
  shared_job *j = arg;
  const fx *f = j->f;
  trm_session *s = NULL;
  int32_t tokens[64];
  puzzle_tokens(f, j->puzzle, tokens);
  j->ok = trm_session_create(f->m, 2, &s) == TRM_OK &&
          trm_session_set_input(s, 1, tokens, (size_t)f->seq, (int32_t)(j->puzzle % f->n_ids)) == TRM_OK &&
          trm_refine(s, NULL) == TRM_OK && trm_refine(s, NULL) == TRM_OK &&
          trm_session_latent(s, 1, TRM_LATENT_Y, j->y, f->state) == TRM_OK;
  trm_session_free(s);
  return NULL;
}

START_TEST(test_model_shared_by_threads) {
  /* one model, sessions on several threads at once: each gets what it would get alone */
  fx f;
  fx_default(&f);
  enum { N = 4 };
  shared_job jobs[N];
  pthread_t threads[N];
  for (int i = 0; i < N; i++) {
    jobs[i].f = &f;
    jobs[i].puzzle = i % 2;
    jobs[i].y = malloc(f.state * sizeof(float));
    jobs[i].ok = 0;
    ck_assert_ptr_nonnull(jobs[i].y);
  }
  for (int i = 0; i < N; i++) ck_assert_int_eq(pthread_create(&threads[i], NULL, shared_worker, &jobs[i]), 0);
  for (int i = 0; i < N; i++) ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
  for (int i = 0; i < N; i++) {
    ck_assert(jobs[i].ok);
    trm_session *alone = fresh_run(&f, jobs[i].puzzle, 2);
    float *y = latent(&f, alone, 0, TRM_LATENT_Y);
    assert_bitwise(y, jobs[i].y, f.state, "y computed on a thread");
    free(y);
    free(jobs[i].y);
    trm_session_free(alone);
  }
  fx_free(&f);
}
END_TEST

/* ---- the output heads against hand computations ---- */

START_TEST(test_answer_matches_logits) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 2);
  set_puzzle(&f, s, 0, 0);
  set_puzzle(&f, s, 1, 5);
  for (int step = 0; step < 3; step++) {
    for (size_t k = 0; k < 2; k++) {
      size_t nl = (size_t)(f.seq * f.V);
      float *logits = malloc(nl * sizeof *logits);
      ck_assert_ptr_nonnull(logits);
      int32_t tok[64], tok2[64];
      float conf[64];
      ck_assert_int_eq(trm_session_logits(s, k, logits, nl), TRM_OK);
      ck_assert_int_eq(trm_session_answer(s, k, tok, conf, (size_t)f.seq), TRM_OK);
      ck_assert_int_eq(trm_session_answer(s, k, tok2, NULL, (size_t)f.seq), TRM_OK);
      for (int64_t i = 0; i < f.seq; i++) {
        const float *row = logits + i * f.V;
        int32_t best = 0;
        for (int32_t v = 1; v < f.V; v++)
          if (row[v] > row[best]) best = v;
        ck_assert_int_eq(tok[i], best);
        ck_assert_int_eq(tok2[i], best);
        double total = 0;
        for (int32_t v = 0; v < f.V; v++) total += exp((double)row[v] - (double)row[best]);
        double p = 1.0 / total;
        ck_assert_msg(conf[i] > 0.0f && conf[i] <= 1.0f, "confidence %g", (double)conf[i]);
        ck_assert_msg(fabs(conf[i] - p) <= 1e-5 * p, "confidence %.9g, softmax max %.9g", (double)conf[i], p);
        ck_assert(conf[i] >= 1.0 / (double)f.V - 1e-6);
      }
      free(logits);
    }
    ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  }
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_answer_ties) {
  /* ties pick the lowest id: with an all-zero lm_head every logit is 0 */
  mb_config c;
  mb_default_config(&c);
  mb_model *mb = mb_build(&c);
  mb_tensor *lm = mb_find(mb, "lm_head.weight");
  for (int64_t v = 0; v < c.vocab_size; v++)
    for (int64_t d = 0; d < c.hidden_size; d++) mb_set(lm, (size_t)(v * c.hidden_size + d), 0.0f);
  fx f;
  fx_from_builder(&f, mb);
  trm_session *s = fresh_run(&f, 0, 1);
  int32_t tok[64];
  float conf[64];
  ck_assert_int_eq(trm_session_answer(s, 0, tok, conf, (size_t)f.seq), TRM_OK);
  for (int64_t i = 0; i < f.seq; i++) {
    ck_assert_int_eq(tok[i], 0);
    ck_assert_float_eq_tol(conf[i], 1.0f / (float)f.V, 1e-6f);
  }
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

START_TEST(test_q_by_hand) {
  fx f;
  fx_default(&f);
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 1);
  mb_tensor *w = mb_find(f.mb, "q_head.weight"), *b = mb_find(f.mb, "q_head.bias");
  for (int step = 0; step < 3; step++) {
    float *y = latent(&f, s, 0, TRM_LATENT_Y);
    double q[2];
    for (int r = 0; r < 2; r++) {
      q[r] = mb_get(b, (size_t)r);
      for (int64_t d = 0; d < f.D; d++) q[r] += (double)y[d] * mb_get(w, (size_t)(r * f.D + d));
    }
    float qh, qc;
    ck_assert_int_eq(trm_session_q(s, 0, &qh, &qc), TRM_OK);
    ck_assert_msg(fabs(qh - q[0]) < 1e-5 && fabs(qc - q[1]) < 1e-5, "q (%g, %g), by hand (%g, %g)", (double)qh,
                  (double)qc, q[0], q[1]);
    free(y);
    ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  }
  trm_session_free(s);
  fx_free(&f);
}
END_TEST

static void check_logits_by_hand(const mb_config *c) {
  fx f;
  fx_init(&f, c);
  trm_session *s = new_session(&f, 1);
  set_puzzle(&f, s, 0, 1);
  mb_tensor *lm = mb_find(f.mb, "lm_head.weight");
  size_t nl = (size_t)(f.seq * f.V);
  float *logits = malloc(nl * sizeof *logits);
  ck_assert_ptr_nonnull(logits);
  for (int step = 0; step < 2; step++) {
    ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
    float *y = latent(&f, s, 0, TRM_LATENT_Y);
    ck_assert_int_eq(trm_session_logits(s, 0, logits, nl), TRM_OK);
    double want_max = 0;
    double *want = malloc(nl * sizeof *want);
    ck_assert_ptr_nonnull(want);
    for (int64_t i = 0; i < f.seq; i++) {
      for (int64_t v = 0; v < f.V; v++) {
        double sum = 0;
        for (int64_t d = 0; d < f.D; d++)
          sum += (double)y[(f.P + i) * f.D + d] * mb_get(lm, (size_t)(v * f.D + d));
        want[i * f.V + v] = sum;
        if (fabs(sum) > want_max) want_max = fabs(sum);
      }
    }
    for (size_t i = 0; i < nl; i++)
      ck_assert_msg(fabs(logits[i] - want[i]) <= 1e-4 * (want_max > 1 ? want_max : 1), "logit %zu: %g vs %g", i,
                    (double)logits[i], want[i]);
    free(want);
    free(y);
  }
  free(logits);
  trm_session_free(s);
  fx_free(&f);
}

START_TEST(test_logits_by_hand) {
  mb_config c;
  mb_default_config(&c);
  check_logits_by_hand(&c); /* P = 1 */
  c.puzzle_emb_ndim = 40;
  check_logits_by_hand(&c); /* P = 3 */
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 1;
  check_logits_by_hand(&c); /* P = 0 */
}
END_TEST

/* ---- an independent implementation of TRM-SPEC.md, in double precision ---- */

typedef struct ref_layer {
  double *qkv, *o, *tgu, *tdown, *gu, *down;
} ref_layer;

typedef struct ref_net {
  int64_t D, NH, hd, S, P, seq, V, ndim, I, It, layers;
  bool mlp_t;
  int pos; /* 0 none, 1 rope, 2 learned */
  double eps, theta;
  double *embed, *puzzle, *pos_emb, *h_init, *l_init;
  ref_layer *layer;
} ref_net;

static double *tensor_doubles(mb_model *mb, const char *name) {
  mb_tensor *t = mb_find(mb, name);
  ck_assert_msg(t != NULL, "no tensor %s", name);
  size_t n = (size_t)mb_numel(t);
  double *d = malloc(n * sizeof *d);
  ck_assert_ptr_nonnull(d);
  for (size_t i = 0; i < n; i++) d[i] = mb_get(t, i);
  return d;
}

static void ref_init(ref_net *r, mb_model *mb) {
  memset(r, 0, sizeof *r);
  const mb_config *c = &mb->cfg;
  r->D = c->hidden_size;
  r->NH = c->num_heads;
  r->hd = r->D / r->NH;
  r->S = mb->S;
  r->P = mb->P;
  r->seq = c->seq_len;
  r->V = c->vocab_size;
  r->ndim = c->puzzle_emb_ndim;
  r->I = mb->inter;
  r->It = mb->inter_t;
  r->layers = c->L_layers;
  r->mlp_t = c->mlp_t;
  r->pos = !strcmp(c->pos_encodings, "rope") ? 1 : !strcmp(c->pos_encodings, "learned") ? 2 : 0;
  r->eps = mb_get_meta(mb, "rms_norm_eps") ? strtod(mb_get_meta(mb, "rms_norm_eps"), NULL) : 1e-5;
  r->theta = mb_get_meta(mb, "rope_theta") ? strtod(mb_get_meta(mb, "rope_theta"), NULL) : 10000.0;
  r->embed = tensor_doubles(mb, "embed_tokens.embedding_weight");
  if (r->ndim > 0) r->puzzle = tensor_doubles(mb, "puzzle_emb.weights");
  if (r->pos == 2) r->pos_emb = tensor_doubles(mb, "embed_pos.embedding_weight");
  r->h_init = tensor_doubles(mb, "H_init");
  r->l_init = tensor_doubles(mb, "L_init");
  r->layer = calloc((size_t)r->layers, sizeof *r->layer);
  ck_assert_ptr_nonnull(r->layer);
  for (int64_t i = 0; i < r->layers; i++) {
    char name[128];
    ref_layer *l = &r->layer[i];
#define T(field, suffix)                                                                                           \
  snprintf(name, sizeof name, "L_level.layers.%lld.%s", (long long)i, suffix);                                    \
  l->field = tensor_doubles(mb, name)
    if (r->mlp_t) {
      T(tgu, "mlp_t.gate_up_proj.weight");
      T(tdown, "mlp_t.down_proj.weight");
    } else {
      T(qkv, "self_attn.qkv_proj.weight");
      T(o, "self_attn.o_proj.weight");
    }
    T(gu, "mlp.gate_up_proj.weight");
    T(down, "mlp.down_proj.weight");
#undef T
  }
}

static void ref_free(ref_net *r) {
  for (int64_t i = 0; i < r->layers; i++) {
    ref_layer *l = &r->layer[i];
    free(l->qkv);
    free(l->o);
    free(l->tgu);
    free(l->tdown);
    free(l->gu);
    free(l->down);
  }
  free(r->layer);
  free(r->embed);
  free(r->puzzle);
  free(r->pos_emb);
  free(r->h_init);
  free(r->l_init);
}

/* Section 3: x = sqrt(D) * ([puzzle rows (zero-padded) ; token embeddings] (+ positions)). */
static void ref_embed(const ref_net *r, const int32_t *tokens, int32_t puzzle_id, double *x) {
  int64_t D = r->D, S = r->S;
  for (int64_t i = 0; i < S * D; i++) x[i] = 0.0;
  for (int64_t j = 0; j < r->ndim; j++) x[j] = r->puzzle[puzzle_id * r->ndim + j];
  for (int64_t i = 0; i < r->seq; i++)
    for (int64_t d = 0; d < D; d++) x[(r->P + i) * D + d] = r->embed[tokens[i] * D + d];
  if (r->pos == 2)
    for (int64_t i = 0; i < S * D; i++) x[i] = 0.707106781 * (x[i] + r->pos_emb[i]);
  for (int64_t i = 0; i < S * D; i++) x[i] *= sqrt((double)D);
}

static double silu(double a) { return a / (1.0 + exp(-a)); }

/* out[rows, n_out] = in[rows, n_in] W^T, W [n_out, n_in] */
static void linear(const double *in, int64_t rows, int64_t n_in, const double *W, int64_t n_out, double *out) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < n_out; o++) {
      double s = 0;
      for (int64_t k = 0; k < n_in; k++) s += in[r * n_in + k] * W[o * n_in + k];
      out[r * n_out + o] = s;
    }
}

static void rmsnorm_rows(double *h, int64_t rows, int64_t cols, double eps) {
  for (int64_t r = 0; r < rows; r++) {
    double ss = 0;
    for (int64_t j = 0; j < cols; j++) ss += h[r * cols + j] * h[r * cols + j];
    double scale = 1.0 / sqrt(ss / (double)cols + eps);
    for (int64_t j = 0; j < cols; j++) h[r * cols + j] *= scale;
  }
}

/* swiglu(v) for rows of v [rows, n]: down(silu(gate) * up), gate_up [2 inter, n], down [n_out, inter] */
static void swiglu(const double *v, int64_t rows, int64_t n, const double *gate_up, int64_t inter,
                   const double *down, int64_t n_out, double *out) {
  double *gu = malloc((size_t)(rows * 2 * inter) * sizeof *gu);
  double *act = malloc((size_t)(rows * inter) * sizeof *act);
  ck_assert(gu && act);
  linear(v, rows, n, gate_up, 2 * inter, gu);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < inter; j++)
      act[r * inter + j] = silu(gu[r * 2 * inter + j]) * gu[r * 2 * inter + inter + j];
  linear(act, rows, inter, down, n_out, out);
  free(gu);
  free(act);
}

static void ref_attention(const ref_net *r, const ref_layer *l, const double *h, double *out) {
  int64_t S = r->S, D = r->D, hd = r->hd, half = hd / 2;
  double *qkv = malloc((size_t)(S * 3 * D) * sizeof *qkv);
  double *heads = malloc((size_t)(S * D) * sizeof *heads);
  double *p = malloc((size_t)S * sizeof *p);
  ck_assert(qkv && heads && p);
  linear(h, S, D, l->qkv, 3 * D, qkv);
  if (r->pos == 1) {
    for (int64_t pos = 0; pos < S; pos++) {
      for (int64_t head = 0; head < 2 * r->NH; head++) { /* q heads then k heads */
        double *v = qkv + pos * 3 * D + head * hd;
        for (int64_t i = 0; i < half; i++) {
          double angle = (double)pos * pow(r->theta, -2.0 * (double)i / (double)hd);
          double a = v[i], b = v[i + half];
          v[i] = a * cos(angle) - b * sin(angle);
          v[i + half] = b * cos(angle) + a * sin(angle);
        }
      }
    }
  }
  for (int64_t head = 0; head < r->NH; head++) {
    for (int64_t i = 0; i < S; i++) {
      const double *q = qkv + i * 3 * D + head * hd;
      double mx = -INFINITY, total = 0;
      for (int64_t j = 0; j < S; j++) {
        const double *k = qkv + j * 3 * D + D + head * hd;
        double dot = 0;
        for (int64_t t = 0; t < hd; t++) dot += q[t] * k[t];
        p[j] = dot / sqrt((double)hd);
        if (p[j] > mx) mx = p[j];
      }
      for (int64_t j = 0; j < S; j++) {
        p[j] = exp(p[j] - mx);
        total += p[j];
      }
      for (int64_t t = 0; t < hd; t++) {
        double acc = 0;
        for (int64_t j = 0; j < S; j++) acc += p[j] / total * qkv[j * 3 * D + 2 * D + head * hd + t];
        heads[i * D + head * hd + t] = acc;
      }
    }
  }
  linear(heads, S, D, l->o, D, out);
  free(qkv);
  free(heads);
  free(p);
}

/* Section 4: f(h, inj), in place on h [S, D]. */
static void ref_f(const ref_net *r, double *h, const double *inj) {
  int64_t S = r->S, D = r->D;
  double *out = malloc((size_t)(S * D) * sizeof *out);
  double *ht = malloc((size_t)(S * D) * sizeof *ht);
  double *outt = malloc((size_t)(S * D) * sizeof *outt);
  ck_assert(out && ht && outt);
  for (int64_t i = 0; i < S * D; i++) h[i] += inj[i];
  for (int64_t li = 0; li < r->layers; li++) {
    const ref_layer *l = &r->layer[li];
    if (r->mlp_t) {
      for (int64_t s = 0; s < S; s++)
        for (int64_t d = 0; d < D; d++) ht[d * S + s] = h[s * D + d];
      swiglu(ht, D, S, l->tgu, r->It, l->tdown, S, outt); /* [D, S] */
      for (int64_t i = 0; i < S * D; i++) ht[i] += outt[i];
      rmsnorm_rows(ht, D, S, r->eps); /* over the S axis */
      for (int64_t s = 0; s < S; s++)
        for (int64_t d = 0; d < D; d++) h[s * D + d] = ht[d * S + s];
    } else {
      ref_attention(r, l, h, out);
      for (int64_t i = 0; i < S * D; i++) h[i] += out[i];
      rmsnorm_rows(h, S, D, r->eps);
    }
    swiglu(h, S, D, l->gu, r->I, l->down, D, out);
    for (int64_t i = 0; i < S * D; i++) h[i] += out[i];
    rmsnorm_rows(h, S, D, r->eps);
  }
  free(out);
  free(ht);
  free(outt);
}

static double max_abs_diff(const float *lib, const double *want, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)lib[i] - want[i]);
    if (!(d <= m)) m = d; /* NaN propagates */
  }
  return m;
}

/* Runs two supervision steps with yield CALL and checks every network call against ref_f, fed
 * with the library's state before the call. The first call starts from the builder's H_init,
 * L_init and a reference embedding, so it checks the whole chain from the file. */
static void check_against_reference(mb_config *c, const char *eps, const char *theta) {
  mb_model *mb = mb_build(c);
  if (eps) mb_set_meta(mb, "rms_norm_eps", eps);
  if (theta) mb_set_meta(mb, "rope_theta", theta);
  fx f;
  fx_from_builder(&f, mb);
  ref_net r;
  ref_init(&r, mb);
  size_t n = f.state;
  int32_t tokens[64];
  puzzle_tokens(&f, 3, tokens);
  int32_t pid = (int32_t)(3 % f.n_ids);
  double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
  double *inj = malloc(n * sizeof *inj);
  ck_assert(x && y && z && inj);
  ref_embed(&r, tokens, pid, x);
  for (int64_t s = 0; s < f.S; s++)
    for (int64_t d = 0; d < f.D; d++) {
      y[s * f.D + d] = r.h_init[d];
      z[s * f.D + d] = r.l_init[d];
    }

  trm_session *s = new_session(&f, 1);
  set_opt(s, TRM_OPT_YIELD, TRM_YIELD_CALL);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)f.seq, pid), TRM_OK);
  for (int call = 0; call < 2 * f.H * (f.L + 1); call++) {
    float *ly = latent(&f, s, 0, TRM_LATENT_Y), *lz = latent(&f, s, 0, TRM_LATENT_Z);
    if (call > 0) { /* continue from the library's state */
      for (size_t i = 0; i < n; i++) {
        y[i] = ly[i];
        z[i] = lz[i];
      }
    } else { /* the initial state is H_init / L_init exactly */
      ck_assert(max_abs_diff(ly, y, n) == 0.0);
      ck_assert(max_abs_diff(lz, z, n) == 0.0);
    }
    trm_event ev;
    ck_assert_int_eq(refine(s, &ev), TRM_OK);
    float *ny = latent(&f, s, 0, TRM_LATENT_Y), *nz = latent(&f, s, 0, TRM_LATENT_Z);
    if (ev.kind == TRM_EVENT_LATENT) { /* z = f(z, y + x) */
      for (size_t i = 0; i < n; i++) inj[i] = y[i] + x[i];
      ref_f(&r, z, inj);
      double err = max_abs_diff(nz, z, n);
      ck_assert_msg(err < 1e-4, "call %d (latent update): max |z - reference| = %g", call + 1, err);
      assert_bitwise(ly, ny, n, "y across a latent update");
    } else { /* y = f(y, z) */
      ref_f(&r, y, z);
      double err = max_abs_diff(ny, y, n);
      ck_assert_msg(err < 1e-4, "call %d (answer update): max |y - reference| = %g", call + 1, err);
      assert_bitwise(lz, nz, n, "z across an answer update");
    }
    free(ly);
    free(lz);
    free(ny);
    free(nz);
  }
  trm_session_free(s);
  free(x);
  free(y);
  free(z);
  free(inj);
  ref_free(&r);
  fx_free(&f);
}

START_TEST(test_reference_attention_rope) {
  mb_config c;
  mb_default_config(&c);
  c.weight_scale = 3.0; /* peaked attention, so position errors show */
  check_against_reference(&c, NULL, NULL);
}
END_TEST

START_TEST(test_reference_attention_rope_options) {
  /* rope_theta and rms_norm_eps from the metadata, 4 heads of 4, P = 2 with padding */
  mb_config c;
  mb_default_config(&c);
  c.weight_scale = 3.0;
  c.num_heads = 4;
  c.puzzle_emb_ndim = 24;
  c.L_layers = 1;
  check_against_reference(&c, "0.01", "50");
}
END_TEST

START_TEST(test_reference_attention_learned_padded) {
  mb_config c;
  mb_default_config(&c);
  c.weight_scale = 3.0;
  c.pos_encodings = "learned";
  c.puzzle_emb_ndim = 20; /* P = 2, the second row zero-padded after 4 values */
  c.num_puzzle_identifiers = 5;
  check_against_reference(&c, NULL, NULL);
}
END_TEST

START_TEST(test_reference_attention_none) {
  mb_config c;
  mb_default_config(&c);
  c.weight_scale = 3.0;
  c.pos_encodings = "none";
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 1;
  check_against_reference(&c, NULL, NULL);
}
END_TEST

START_TEST(test_reference_mlp_t) {
  mb_config c;
  mb_default_config(&c);
  c.weight_scale = 3.0;
  c.mlp_t = true;
  c.pos_encodings = "none";
  check_against_reference(&c, NULL, NULL);
}
END_TEST

START_TEST(test_reference_mlp_t_learned) {
  mb_config c;
  mb_default_config(&c);
  c.weight_scale = 3.0;
  c.mlp_t = true;
  c.pos_encodings = "learned";
  c.puzzle_emb_ndim = 20;
  c.H_cycles = 1;
  c.L_cycles = 3;
  check_against_reference(&c, NULL, NULL);
}
END_TEST

/* The token MLP goes through the channels in slices of 256: a width that leaves a partial slice */
START_TEST(test_reference_mlp_t_wide) {
  mb_config c;
  mb_default_config(&c);
  c.weight_scale = 3.0;
  c.mlp_t = true;
  c.pos_encodings = "none";
  c.hidden_size = 320;
  c.L_layers = 1;
  c.H_cycles = 1;
  c.L_cycles = 1;
  check_against_reference(&c, NULL, NULL);
}
END_TEST

/* A batch of one runs each state in place, a larger batch gathers several states into one
 * matrix of up to 128 rows: the two give bitwise the same result, for attention and the token
 * MLP, with all four states in one chunk (S = 7) and in two chunks of two (S = 61). */
START_TEST(test_batch_one_equals_gathered) {
  mb_config c;
  mb_default_config(&c);
  c.mlp_t = _i % 2;
  if (_i >= 2) c.seq_len = 60;
  mb_model *mb = mb_build(&c);
  fx f;
  fx_from_builder(&f, mb);
  trm_session *batch = new_session(&f, 4);
  for (size_t k = 0; k < 4; k++) set_puzzle(&f, batch, k, (int)k + 1);
  for (int step = 0; step < 2; step++) ck_assert_int_eq(trm_refine(batch, NULL), TRM_OK);
  for (size_t k = 0; k < 4; k++) {
    trm_session *one = fresh_run(&f, (int)k + 1, 2);
    assert_same_state(&f, batch, k, one, 0);
    trm_session_free(one);
  }
  trm_session_free(batch);
  fx_free(&f);
}
END_TEST

static Suite *api_suite(void) {
  Suite *s = suite_create("api");
  TCase *basic = tcase_create("basic");
  tcase_set_timeout(basic, 60);
  tcase_add_test(basic, test_status_strings);
  tcase_add_test(basic, test_version);
  tcase_add_test(basic, test_last_error_per_thread);
  tcase_add_test(basic, test_session_create_invalid);
  tcase_add_test(basic, test_options_invalid);
  tcase_add_test(basic, test_options_round_trip);
  tcase_add_test(basic, test_set_input_invalid);
  tcase_add_test(basic, test_set_input_resets);
  tcase_add_test(basic, test_puzzle_id_without_puzzle_emb);
  tcase_add_test(basic, test_puzzle_id_without_puzzle_emb_meta);
  tcase_add_test(basic, test_accessors_empty_slot);
  tcase_add_test(basic, test_accessors_small_buffers);
  tcase_add_test(basic, test_set_latent_nonfinite);
  suite_add_tcase(s, basic);

  TCase *refine_tc = tcase_create("refine");
  tcase_set_timeout(refine_tc, 60);
  tcase_add_test(refine_tc, test_refine_event_size);
  tcase_add_test(refine_tc, test_refine_no_inputs);
  tcase_add_test(refine_tc, test_yield_call_sequence);
  tcase_add_test(refine_tc, test_yield_call_sequence_literal);
  tcase_add_test(refine_tc, test_yield_cycle_and_step);
  tcase_add_test(refine_tc, test_yield_units_same_state);
  tcase_add_test(refine_tc, test_calls_counter_batch);
  tcase_add_test(refine_tc, test_halt_fixed);
  tcase_add_test(refine_tc, test_halt_max_steps_option);
  tcase_add_test(refine_tc, test_halt_q);
  tcase_add_test(refine_tc, test_slots_independent_refill);
  tcase_add_test(refine_tc, test_halted_slots_cost_nothing);
  tcase_add_test(refine_tc, test_set_input_mid_step);
  tcase_add_test(refine_tc, test_set_input_same_slot_mid_step);
  tcase_add_test(refine_tc, test_set_latent_then_refine);
  tcase_add_test(refine_tc, test_threads_identical);
  tcase_add_test(refine_tc, test_model_shared_by_threads);
  suite_add_tcase(s, refine_tc);

  TCase *heads = tcase_create("heads");
  tcase_set_timeout(heads, 60);
  tcase_add_test(heads, test_answer_matches_logits);
  tcase_add_test(heads, test_answer_ties);
  tcase_add_test(heads, test_q_by_hand);
  tcase_add_test(heads, test_logits_by_hand);
  suite_add_tcase(s, heads);

  TCase *ref = tcase_create("reference");
  tcase_set_timeout(ref, 60);
  tcase_add_test(ref, test_reference_attention_rope);
  tcase_add_test(ref, test_reference_attention_rope_options);
  tcase_add_test(ref, test_reference_attention_learned_padded);
  tcase_add_test(ref, test_reference_attention_none);
  tcase_add_test(ref, test_reference_mlp_t);
  tcase_add_test(ref, test_reference_mlp_t_learned);
  tcase_add_test(ref, test_reference_mlp_t_wide);
  tcase_add_loop_test(ref, test_batch_one_equals_gathered, 0, 4);
  suite_add_tcase(s, ref);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(api_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
