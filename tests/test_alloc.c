/* Allocation-failure injection (Check): through trm_set_allocator, the test fails the k-th
 * allocation for every k of model loading (file and memory) and session creation, and checks
 * that each failing call returns TRM_E_NOMEM, leaves its out-parameter untouched and gives back
 * every block it took. Also the allocator hook's own contract: argument checks, blocks freed by
 * the functions that made them, alignment, and that trm_refine() never allocates. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_builder.h"
#include "trm.h"

/* ---- a counting allocator that can fail its k-th call ---- */

typedef struct counting {
  long calls;       /* allocations asked for since the last reset */
  long fail_at;     /* 1-based call to fail; 0: none */
  long outstanding; /* blocks handed out and not yet freed */
  long freed;
} counting;

static void *counting_malloc(void *user, size_t size) {
  counting *c = user;
  if (++c->calls == c->fail_at) return NULL;
  void *p = malloc(size);
  if (p) c->outstanding++;
  return p;
}

static void *counting_aligned(void *user, size_t alignment, size_t size) {
  counting *c = user;
  if (++c->calls == c->fail_at) return NULL;
  void *p = aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  if (p) c->outstanding++;
  return p;
}

static void counting_free(void *user, void *ptr) {
  counting *c = user;
  ck_assert_ptr_nonnull(ptr);
  c->outstanding--;
  c->freed++;
  free(ptr);
}

static void install(counting *c, long fail_at, int aligned) {
  c->calls = 0;
  c->fail_at = fail_at;
  trm_allocator a = {sizeof a, counting_malloc, aligned ? counting_aligned : NULL, counting_free, c};
  ck_assert_int_eq(trm_set_allocator(&a), TRM_OK);
}

static void uninstall(void) { ck_assert_int_eq(trm_set_allocator(NULL), TRM_OK); }

/* ---- models ---- */

static unsigned char *model_bytes(int variant, size_t *size) {
  mb_config cfg;
  mb_default_config(&cfg);
  if (variant == 1) {
    cfg.mlp_t = true;
    cfg.pos_encodings = "none";
  } else if (variant == 2) {
    cfg.pos_encodings = "learned";
    cfg.puzzle_emb_ndim = 0;
  }
  mb_model *mb = mb_build(&cfg);
  unsigned char *bytes = mb_serialize(mb, size);
  mb_free(mb);
  return bytes;
}

/* Fails allocation k = 1, 2, ... of LOAD until it succeeds; returns how many allocations a
 * successful load made. */
typedef trm_status (*load_fn)(const void *ctx, trm_model **out);

typedef struct image {
  const unsigned char *bytes;
  size_t size;
} image;

static trm_status load_from_memory(const void *ctx, trm_model **out) {
  const image *im = ctx;
  return trm_model_load_memory(im->bytes, im->size, out);
}

static trm_status load_from_file(const void *ctx, trm_model **out) { return trm_model_load(ctx, out); }

static long fail_every_allocation_of_load(load_fn load, const void *ctx, int aligned) {
  counting c = {0};
  for (long k = 1;; k++) {
    trm_model *sentinel = (trm_model *)(uintptr_t)0x1234;
    trm_model *m = sentinel;
    install(&c, k, aligned);
    trm_status st = load(ctx, &m);
    uninstall();
    if (st == TRM_OK) {
      ck_assert_msg(c.calls == k - 1, "load succeeded but made %ld allocations with #%ld failing", c.calls, k);
      trm_model_free(m);
      ck_assert_int_eq(c.outstanding, 0);
      return k - 1;
    }
    ck_assert_msg(st == TRM_E_NOMEM, "allocation %ld failing: status %d (%s), expected TRM_E_NOMEM", k, st,
                  trm_last_error());
    ck_assert_msg(m == sentinel, "allocation %ld failing: out-parameter changed", k);
    ck_assert_msg(c.outstanding == 0, "allocation %ld failing: %ld blocks leaked", k, c.outstanding);
    ck_assert_msg(strlen(trm_last_error()) > 0, "allocation %ld failing: no message", k);
    ck_assert_msg(k < 100000, "load never succeeds");
  }
}

START_TEST(test_load_memory_every_failure) {
  for (int variant = 0; variant < 3; variant++) {
    size_t size;
    unsigned char *bytes = model_bytes(variant, &size);
    image ctx = {bytes, size};
    long n = fail_every_allocation_of_load(load_from_memory, &ctx, _i);
    ck_assert_msg(n > 5, "variant %d: only %ld allocations counted: the hook is not used", variant, n);
    free(bytes);
  }
}
END_TEST

START_TEST(test_load_file_every_failure) {
  for (int variant = 0; variant < 3; variant++) {
    size_t size;
    unsigned char *bytes = model_bytes(variant, &size);
    char *path = mb_write_temp(bytes, size);
    long n = fail_every_allocation_of_load(load_from_file, path, _i);
    ck_assert_msg(n > 5, "variant %d: only %ld allocations counted", variant, n);
    unlink(path);
    free(path);
    free(bytes);
  }
}
END_TEST

START_TEST(test_session_create_every_failure) {
  size_t size;
  unsigned char *bytes = model_bytes(_i % 3, &size);
  trm_model *m;
  ck_assert_int_eq(trm_model_load_memory(bytes, size, &m), TRM_OK);
  free(bytes);
  size_t batch = 1 + (size_t)(_i % 3);
  int64_t threads = 1 + _i / 3; /* 1..2: the pool's allocations too */
  counting c = {0};
  for (long k = 1;; k++) {
    trm_session *sentinel = (trm_session *)(uintptr_t)0x1234;
    trm_session *s = sentinel;
    install(&c, k, 1);
    trm_status st = trm_session_create(m, batch, &s);
    if (st == TRM_OK) st = trm_session_set_option(s, TRM_OPT_THREADS, threads);
    uninstall();
    if (st == TRM_OK) {
      ck_assert(c.calls == k - 1);
      ck_assert_msg(k > 2, "session creation made %ld allocations: the hook is not used", k - 1);
      trm_session_free(s);
      ck_assert_int_eq(c.outstanding, 0);
      break;
    }
    ck_assert_msg(st == TRM_E_NOMEM, "allocation %ld failing: status %d (%s)", k, st, trm_last_error());
    if (s != sentinel) {
      /* the option failed: the session itself exists and must still work */
      trm_session_free(s);
    }
    ck_assert_msg(c.outstanding == 0, "allocation %ld failing: %ld blocks leaked", k, c.outstanding);
    ck_assert(k < 100000);
  }
  trm_model_free(m);
}
END_TEST

/* A failed TRM_OPT_THREADS change keeps the session as it was: still usable, same results. */
START_TEST(test_threads_option_failure_keeps_session) {
  size_t size;
  unsigned char *bytes = model_bytes(0, &size);
  trm_model *m;
  ck_assert_int_eq(trm_model_load_memory(bytes, size, &m), TRM_OK);
  free(bytes);
  int64_t seq, S, D;
  ck_assert_int_eq(trm_model_info(m, "seq_len", &seq), TRM_OK);
  ck_assert_int_eq(trm_model_info(m, "state_len", &S), TRM_OK);
  ck_assert_int_eq(trm_model_info(m, "hidden_size", &D), TRM_OK);
  int32_t tokens[64];
  for (int64_t i = 0; i < seq; i++) tokens[i] = (int32_t)(1 + i % 3);

  float *want = malloc(sizeof(float) * (size_t)(S * D)), *got = malloc(sizeof(float) * (size_t)(S * D));
  trm_session *s;
  ck_assert_int_eq(trm_session_create(m, 1, &s), TRM_OK);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)seq, 0), TRM_OK);
  trm_event ev = TRM_EVENT_INIT;
  ck_assert_int_eq(trm_refine(s, &ev), TRM_OK);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Y, want, (size_t)(S * D)), TRM_OK);
  trm_session_free(s);

  counting c = {0};
  ck_assert_int_eq(trm_session_create(m, 1, &s), TRM_OK);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)seq, 0), TRM_OK);
  install(&c, 1, 1);
  ck_assert_int_eq(trm_session_set_option(s, TRM_OPT_THREADS, 2), TRM_E_NOMEM);
  uninstall();
  int64_t threads;
  ck_assert_int_eq(trm_session_get_option(s, TRM_OPT_THREADS, &threads), TRM_OK);
  ck_assert_int_eq(threads, 1);
  ck_assert_int_eq(trm_refine(s, &ev), TRM_OK);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Y, got, (size_t)(S * D)), TRM_OK);
  ck_assert_mem_eq(want, got, sizeof(float) * (size_t)(S * D));
  trm_session_free(s);
  ck_assert_int_eq(c.outstanding, 0);
  free(want);
  free(got);
  trm_model_free(m);
}
END_TEST

/* Running a session allocates nothing: every buffer exists from creation on. */
START_TEST(test_refine_does_not_allocate) {
  size_t size;
  unsigned char *bytes = model_bytes(_i, &size);
  trm_model *m;
  ck_assert_int_eq(trm_model_load_memory(bytes, size, &m), TRM_OK);
  free(bytes);
  int64_t seq;
  ck_assert_int_eq(trm_model_info(m, "seq_len", &seq), TRM_OK);
  trm_session *s;
  ck_assert_int_eq(trm_session_create(m, 3, &s), TRM_OK);
  ck_assert_int_eq(trm_session_set_option(s, TRM_OPT_THREADS, 2), TRM_OK);
  int32_t tokens[64];
  for (int64_t i = 0; i < seq; i++) tokens[i] = (int32_t)(1 + i % 4);
  for (size_t slot = 0; slot < 3; slot++) ck_assert_int_eq(trm_session_set_input(s, slot, tokens, (size_t)seq, 0), TRM_OK);

  counting c = {0};
  install(&c, 0, 1);
  trm_event ev = TRM_EVENT_INIT;
  ck_assert_int_eq(trm_session_set_option(s, TRM_OPT_YIELD, TRM_YIELD_CALL), TRM_OK);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(trm_refine(s, &ev), TRM_OK);
  float logits[4096];
  int32_t answer[64];
  float conf[64];
  ck_assert_int_eq(trm_session_answer(s, 0, answer, conf, (size_t)seq), TRM_OK);
  ck_assert_int_eq(trm_session_logits(s, 1, logits, sizeof logits / sizeof logits[0]), TRM_OK);
  uninstall();
  ck_assert_msg(c.calls == 0, "running the session made %ld allocations", c.calls);
  trm_session_free(s);
  trm_model_free(m);
}
END_TEST

START_TEST(test_set_allocator_invalid) {
  counting c = {0};
  trm_allocator a = {sizeof a, counting_malloc, NULL, counting_free, &c};
  a.size = sizeof a - 1;
  ck_assert_int_eq(trm_set_allocator(&a), TRM_E_INVALID);
  ck_assert_ptr_nonnull(strstr(trm_last_error(), "size"));
  a.size = sizeof a;
  a.malloc_fn = NULL;
  ck_assert_int_eq(trm_set_allocator(&a), TRM_E_INVALID);
  a.malloc_fn = counting_malloc;
  a.free_fn = NULL;
  ck_assert_int_eq(trm_set_allocator(&a), TRM_E_INVALID);
  /* a refused allocator was not installed: loading uses the C library, c sees nothing */
  size_t size;
  unsigned char *bytes = model_bytes(0, &size);
  trm_model *m;
  ck_assert_int_eq(trm_model_load_memory(bytes, size, &m), TRM_OK);
  trm_model_free(m);
  free(bytes);
  ck_assert_int_eq(c.calls, 0);
  ck_assert_int_eq(trm_set_allocator(NULL), TRM_OK);
}
END_TEST

/* Blocks go back to the functions that made them, whatever is installed when they are freed. */
START_TEST(test_blocks_freed_by_their_allocator) {
  size_t size;
  unsigned char *bytes = model_bytes(0, &size);
  counting first = {0}, second = {0};
  trm_model *m1, *m2, *m3;
  install(&first, 0, 0);
  ck_assert_int_eq(trm_model_load_memory(bytes, size, &m1), TRM_OK);
  install(&second, 0, 1);
  ck_assert_int_eq(trm_model_load_memory(bytes, size, &m2), TRM_OK);
  uninstall();
  ck_assert_int_eq(trm_model_load_memory(bytes, size, &m3), TRM_OK);
  ck_assert(first.outstanding > 0 && second.outstanding > 0);
  install(&second, 0, 1);
  trm_model_free(m1); /* made by first, freed while second is installed */
  trm_model_free(m3); /* made by the C library */
  ck_assert_int_eq(first.outstanding, 0);
  ck_assert(second.outstanding > 0);
  uninstall();
  trm_model_free(m2);
  ck_assert_int_eq(second.outstanding, 0);
  free(bytes);
}
END_TEST

/* An aligned_alloc_fn that ignores the alignment costs an error, not memory corruption. */
static struct {
  void *returned, *base;
} misaligned_blocks[16];

static void *misaligned_alloc(void *user, size_t alignment, size_t size) {
  (void)alignment;
  counting *c = user;
  c->calls++;
  unsigned char *base = malloc(size + 16);
  if (!base) return NULL;
  unsigned char *p = base + 8;
  if ((uintptr_t)p % 64 == 0) p += 4;
  for (size_t i = 0; i < 16; i++)
    if (!misaligned_blocks[i].returned) {
      misaligned_blocks[i].returned = p;
      misaligned_blocks[i].base = base;
      c->outstanding++;
      return p;
    }
  free(base);
  return NULL;
}

static void misaligned_free(void *user, void *ptr) {
  counting *c = user;
  for (size_t i = 0; i < 16; i++)
    if (misaligned_blocks[i].returned == ptr) {
      free(misaligned_blocks[i].base);
      misaligned_blocks[i].returned = NULL;
      c->outstanding--;
      return;
    }
  ck_abort_msg("freeing a block this allocator did not make");
}

START_TEST(test_misaligned_host_blocks_refused) {
  counting c = {0};
  trm_allocator a = {sizeof a, counting_malloc, misaligned_alloc, misaligned_free, &c};
  ck_assert_int_eq(trm_set_allocator(&a), TRM_OK);
  size_t size;
  unsigned char *bytes = model_bytes(0, &size);
  trm_model *m = NULL;
  trm_status st = trm_model_load_memory(bytes, size, &m);
  uninstall();
  ck_assert_int_eq(st, TRM_E_NOMEM);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(c.outstanding, 0);
  free(bytes);
}
END_TEST

static Suite *alloc_suite(void) {
  Suite *s = suite_create("alloc");
  TCase *tc = tcase_create("alloc");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, test_load_memory_every_failure, 0, 2);
  tcase_add_loop_test(tc, test_load_file_every_failure, 0, 2);
  tcase_add_loop_test(tc, test_session_create_every_failure, 0, 6);
  tcase_add_test(tc, test_threads_option_failure_keeps_session);
  tcase_add_loop_test(tc, test_refine_does_not_allocate, 0, 3);
  tcase_add_test(tc, test_set_allocator_invalid);
  tcase_add_test(tc, test_blocks_freed_by_their_allocator);
  tcase_add_test(tc, test_misaligned_host_blocks_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(alloc_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
