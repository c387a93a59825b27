/* Concurrency: one model shared by 8 threads, each with its own session (batch sizes 1 to 4,
 * TRM_OPT_THREADS 1 to 3, every yield unit), running supervision steps on different puzzles
 * and refilling its slots for a second round. After every step each slot's y, z and answer must
 * be bit-identical to a run of that puzzle alone, single-threaded, done first on the main thread
 * (trm.h: results are bitwise identical for every thread count; ARCHITECTURE.md: a state's result
 * does not depend on which other states share the call).
 * At the same time the threads read trm_model_info, and each makes calls that fail with a
 * message naming its own thread: trm_last_error() is per thread, so after the others have failed
 * too (a barrier makes sure they did) each must still read its own message, and an observer
 * thread that never fails must read "". Plain C (no Check): it runs as is under ThreadSanitizer
 * and valgrind (make check-threads, check-tsan, check-valgrind). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_builder.h"
#include "trm.h"

enum {
  N_WORKERS = 8,
  MAX_BATCH = 4,
  ROUNDS = 2,
  STEPS = 3,  /* supervision steps per round; also TRM_OPT_MAX_STEPS, so every slot halts after them */
  MAX_SEQ = 16
};

static atomic_int failures;

#define EXPECT(cond, ...)                                                                                          \
  do {                                                                                                             \
    if (!(cond)) {                                                                                                 \
      if (atomic_fetch_add(&failures, 1) < 20) {                                                                   \
        fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);                                                 \
        fprintf(stderr, __VA_ARGS__);                                                                              \
        fprintf(stderr, "\n");                                                                                     \
      }                                                                                                            \
    }                                                                                                              \
  } while (0)

#define CALL(call)                                                                                                 \
  do {                                                                                                             \
    trm_status st_ = (call);                                                                                       \
    if (st_ != TRM_OK) {                                                                                           \
      fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #call, trm_status_string(st_), trm_last_error()); \
      exit(1);                                                                                                     \
    }                                                                                                              \
  } while (0)

static const char *const info_keys[] = {"hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len",
                                        "vocab_size", "num_puzzle_identifiers", "puzzle_emb_len", "state_len",
                                        "inter_size", "param_count", "isa"};
enum { N_KEYS = sizeof info_keys / sizeof info_keys[0] };

static trm_model *model;
static int64_t seq, vocab, n_ids, state_floats;
static int64_t info_values[N_KEYS];

/* A puzzle: its tokens and id, and what a lone single-threaded run gives after each step. */
typedef struct puzzle {
  int32_t tokens[MAX_SEQ];
  int32_t id;
  float *y[STEPS], *z[STEPS];
  int32_t answer[STEPS][MAX_SEQ];
} puzzle;

/* puzzle index of (worker, round, slot) */
static int puzzle_index(int worker, int round, int slot) { return (worker * ROUNDS + round) * MAX_BATCH + slot; }
enum { N_PUZZLES = N_WORKERS * ROUNDS * MAX_BATCH };
static puzzle puzzles[N_PUZZLES];

static void make_puzzle(puzzle *p, int index) {
  mb_rng r;
  mb_rng_seed(&r, 0x9E3779B97F4A7C15ull * (uint64_t)(index + 1));
  for (int64_t i = 0; i < seq; i++) p->tokens[i] = (int32_t)mb_rng_below(&r, (uint64_t)vocab);
  p->id = (int32_t)mb_rng_below(&r, (uint64_t)n_ids);
}

/* The reference: the puzzle alone in a batch of one, one thread, whole steps. */
static void run_reference(puzzle *p) {
  trm_session *s;
  CALL(trm_session_create(model, 1, &s));
  CALL(trm_session_set_input(s, 0, p->tokens, (size_t)seq, p->id));
  for (int k = 0; k < STEPS; k++) {
    trm_event ev = TRM_EVENT_INIT;
    CALL(trm_refine(s, &ev));
    EXPECT(ev.kind == TRM_EVENT_STEP, "reference step %d", k);
    p->y[k] = malloc((size_t)state_floats * sizeof(float));
    p->z[k] = malloc((size_t)state_floats * sizeof(float));
    if (!p->y[k] || !p->z[k]) abort();
    CALL(trm_session_latent(s, 0, TRM_LATENT_Y, p->y[k], (size_t)state_floats));
    CALL(trm_session_latent(s, 0, TRM_LATENT_Z, p->z[k], (size_t)state_floats));
    CALL(trm_session_answer(s, 0, p->answer[k], NULL, (size_t)seq));
  }
  trm_session_free(s);
}

static pthread_barrier_t barrier;
static atomic_long comparisons;

typedef struct worker {
  int index;
  size_t batch;
  int64_t threads, yield;
} worker;

static void check_info(void) {
  for (size_t i = 0; i < N_KEYS; i++) {
    int64_t v = -1;
    EXPECT(trm_model_info(model, info_keys[i], &v) == TRM_OK && v == info_values[i], "%s", info_keys[i]);
  }
}

/* Fails a call with a message that names this thread: a slot number only it uses. */
static long own_slot(int index) { return 1000 + index; }

static void fail_own_call(trm_session *s, int index) {
  int32_t tokens[MAX_SEQ] = {0};
  EXPECT(trm_session_set_input(s, (size_t)own_slot(index), tokens, (size_t)seq, 0) == TRM_E_INVALID, "bad slot");
}

static void expect_own_error(int index, const char *when) {
  char want[32];
  snprintf(want, sizeof want, "slot %ld ", own_slot(index));
  const char *msg = trm_last_error();
  EXPECT(strstr(msg, want) != NULL, "thread %d %s: trm_last_error is '%s', expected its own '%s...'", index, when, msg,
         want);
}

/* Runs steps until the session has completed one more supervision step, whatever the yield unit. */
static void run_step(trm_session *s, int index) {
  for (int calls = 0;; calls++) {
    trm_event ev = TRM_EVENT_INIT;
    CALL(trm_refine(s, &ev));
    if (ev.kind == TRM_EVENT_STEP) return;
    if (calls == 1000) {
      EXPECT(0, "thread %d: no step ends", index);
      return;
    }
  }
}

static void *worker_main(void *arg) {
  const worker *w = arg;
  trm_session *s;
  CALL(trm_session_create(model, w->batch, &s));
  CALL(trm_session_set_option(s, TRM_OPT_THREADS, w->threads));
  CALL(trm_session_set_option(s, TRM_OPT_YIELD, w->yield));
  CALL(trm_session_set_option(s, TRM_OPT_MAX_STEPS, STEPS));
  float *got = malloc((size_t)state_floats * sizeof(float));
  if (!got) abort();
  for (int round = 0; round < ROUNDS; round++) {
    for (size_t slot = 0; slot < w->batch; slot++) {
      const puzzle *p = &puzzles[puzzle_index(w->index, round, (int)slot)];
      CALL(trm_session_set_input(s, slot, p->tokens, (size_t)seq, p->id));
    }
    /* every thread fails with its own message, then waits for all the others to have failed */
    fail_own_call(s, w->index);
    pthread_barrier_wait(&barrier);
    for (int k = 0; k < STEPS; k++) {
      run_step(s, w->index);
      check_info();
      for (size_t slot = 0; slot < w->batch; slot++) {
        const puzzle *p = &puzzles[puzzle_index(w->index, round, (int)slot)];
        int32_t answer[MAX_SEQ];
        CALL(trm_session_latent(s, slot, TRM_LATENT_Y, got, (size_t)state_floats));
        EXPECT(memcmp(got, p->y[k], (size_t)state_floats * sizeof(float)) == 0,
               "thread %d round %d step %d slot %zu: y differs from the lone single-threaded run", w->index, round,
               k + 1, slot);
        CALL(trm_session_latent(s, slot, TRM_LATENT_Z, got, (size_t)state_floats));
        EXPECT(memcmp(got, p->z[k], (size_t)state_floats * sizeof(float)) == 0,
               "thread %d round %d step %d slot %zu: z differs from the lone single-threaded run", w->index, round,
               k + 1, slot);
        CALL(trm_session_answer(s, slot, answer, NULL, (size_t)seq));
        EXPECT(memcmp(answer, p->answer[k], (size_t)seq * sizeof(int32_t)) == 0, "thread %d: answer differs",
               w->index);
        atomic_fetch_add(&comparisons, 1);
      }
      expect_own_error(w->index, "after a step");
    }
    /* max_steps reached: every slot has halted */
    trm_event ev = TRM_EVENT_INIT;
    EXPECT(trm_refine(s, &ev) == TRM_HALTED && ev.active == 0, "thread %d: slots halt after %d steps", w->index,
           STEPS);
    pthread_barrier_wait(&barrier); /* all have failed and stepped: is the message still this thread's? */
    expect_own_error(w->index, "after the others failed");
  }
  free(got);
  trm_session_free(s);
  return NULL;
}

/* Never fails a call; reads the model's info while the workers fail theirs. */
static void *observer_main(void *arg) {
  (void)arg;
  for (int round = 0; round < ROUNDS; round++) {
    pthread_barrier_wait(&barrier);
    check_info();
    pthread_barrier_wait(&barrier);
    EXPECT(trm_last_error()[0] == '\0', "a thread that never failed reads '%s'", trm_last_error());
  }
  return NULL;
}

int main(void) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  mb_config c;
  mb_default_config(&c);
  c.hidden_size = 32;
  c.num_heads = 4;
  c.seq_len = 9;
  c.vocab_size = 6;
  c.puzzle_emb_ndim = 32;
  c.num_puzzle_identifiers = 5;
  mb_model *mb = mb_build(&c);
  size_t size;
  unsigned char *file = mb_serialize(mb, &size);
  CALL(trm_model_load_memory(file, size, &model));
  free(file);
  mb_free(mb);
  for (size_t i = 0; i < N_KEYS; i++) CALL(trm_model_info(model, info_keys[i], &info_values[i]));
  seq = info_values[5];
  vocab = info_values[6];
  n_ids = info_values[7];
  int64_t hidden = info_values[0], S = info_values[9];
  state_floats = S * hidden;
  if (seq > MAX_SEQ) abort();

  for (int i = 0; i < N_PUZZLES; i++) {
    make_puzzle(&puzzles[i], i);
    run_reference(&puzzles[i]);
  }

  worker workers[N_WORKERS];
  pthread_t tid[N_WORKERS + 1];
  if (pthread_barrier_init(&barrier, NULL, N_WORKERS + 1) != 0) abort();
  for (int i = 0; i < N_WORKERS; i++) {
    workers[i].index = i;
    workers[i].batch = 1 + (size_t)i % MAX_BATCH;
    workers[i].threads = 1 + i % 3;
    workers[i].yield = i % 3; /* TRM_YIELD_CALL, _CYCLE, _STEP */
    if (pthread_create(&tid[i], NULL, worker_main, &workers[i]) != 0) abort();
  }
  if (pthread_create(&tid[N_WORKERS], NULL, observer_main, NULL) != 0) abort();
  for (int i = 0; i <= N_WORKERS; i++) pthread_join(tid[i], NULL);
  pthread_barrier_destroy(&barrier);

  EXPECT(trm_last_error()[0] == '\0', "the main thread never failed, but reads '%s'", trm_last_error());
  for (int i = 0; i < N_PUZZLES; i++)
    for (int k = 0; k < STEPS; k++) {
      free(puzzles[i].y[k]);
      free(puzzles[i].z[k]);
    }
  trm_model_free(model);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  long expected = 0;
  for (int i = 0; i < N_WORKERS; i++) expected += (long)workers[i].batch * ROUNDS * STEPS;
  EXPECT(atomic_load(&comparisons) == expected, "%ld comparisons, expected %ld", atomic_load(&comparisons), expected);
  if (atomic_load(&failures) != 0) {
    fprintf(stderr, "test_threads: %d failures\n", atomic_load(&failures));
    return 1;
  }
  printf("test_threads: %d threads sharing one model (batch 1-4, 1-3 workers each, every yield unit): %ld slot-steps "
         "bit-identical to lone single-threaded runs; trm_last_error per thread; %.2f s: ok\n",
         N_WORKERS, atomic_load(&comparisons), secs);
  return 0;
}
