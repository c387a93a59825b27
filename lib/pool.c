/* A small fork-join thread pool owned by a session: the caller is worker 0, the others wait for
 * the next job, and trm_pool_run returns once every worker finished. A step of TRM is hundreds of
 * short jobs, so waiting starts with a short spin on an atomic counter (a wake-up through the
 * kernel costs tens of microseconds) and only then sleeps on a condition variable.
 * Creating the pool allocates; running a job does not. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

/* Spin iterations before sleeping: about 50-100 microseconds on current x86 and arm64 cores. */
enum { SPIN_LIMIT = 20000 };

struct trm_pool {
  size_t n_workers;
  pthread_t *threads;
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  atomic_uint_fast64_t generation; /* bumped for each job */
  atomic_size_t pending;           /* helper threads still working on the current job */
  atomic_bool quit;
  trm_pool_fn fn;
  void *ctx;
};

typedef struct worker_arg {
  trm_pool *pool;
  size_t index;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Waits until the generation differs from seen (or the pool quits); returns the new one. */
static uint_fast64_t wait_for_job(trm_pool *p, uint_fast64_t seen) {
  for (int i = 0; i < SPIN_LIMIT; i++) {
    uint_fast64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
    if (g != seen || atomic_load_explicit(&p->quit, memory_order_acquire)) return g;
    cpu_relax();
  }
  pthread_mutex_lock(&p->lock);
  uint_fast64_t g;
  while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->wake, &p->lock);
  pthread_mutex_unlock(&p->lock);
  return g;
}

static void *worker_main(void *arg_) {
  worker_arg *arg = arg_;
  trm_pool *p = arg->pool;
  size_t index = arg->index;
  trm_release(arg);
  uint_fast64_t seen = 0;
  for (;;) {
    seen = wait_for_job(p, seen);
    if (atomic_load(&p->quit)) break;
    p->fn(p->ctx, index, p->n_workers);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      /* the last one done: wake the caller if it went to sleep */
      pthread_mutex_lock(&p->lock);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->lock);
    }
  }
  return NULL;
}

size_t trm_pool_size(const trm_pool *p) { return p ? p->n_workers : 1; }

static void stop_threads(trm_pool *p, size_t started) {
  pthread_mutex_lock(&p->lock);
  atomic_store(&p->quit, true);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (size_t i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
}

trm_status trm_pool_create(size_t n_workers, trm_pool **out) {
  trm_pool *p = trm_alloc_zero(1, sizeof *p);
  if (!p) return trm_fail(TRM_E_NOMEM, "out of memory for the thread pool");
  p->n_workers = n_workers;
  p->threads = trm_alloc_zero(n_workers, sizeof *p->threads);
  if (!p->threads) {
    trm_release(p);
    return trm_fail(TRM_E_NOMEM, "out of memory for the thread pool");
  }
  atomic_init(&p->generation, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->quit, false);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  for (size_t i = 1; i < n_workers; i++) {
    worker_arg *arg = trm_alloc(sizeof *arg);
    if (arg) {
      arg->pool = p;
      arg->index = i;
    }
    if (!arg || pthread_create(&p->threads[i - 1], NULL, worker_main, arg) != 0) {
      trm_release(arg);
      stop_threads(p, i - 1);
      p->n_workers = 1;
      trm_pool_free(p);
      return trm_fail(TRM_E_NOMEM, "could not start worker thread %zu of %zu", i, n_workers);
    }
  }
  *out = p;
  return TRM_OK;
}

void trm_pool_free(trm_pool *p) {
  if (!p) return;
  if (p->n_workers > 1) stop_threads(p, p->n_workers - 1);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  trm_release(p->threads);
  trm_release(p);
}

void trm_pool_run(trm_pool *p, trm_pool_fn fn, void *ctx) {
  if (!p || p->n_workers == 1) {
    fn(ctx, 0, 1);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  atomic_store_explicit(&p->pending, p->n_workers - 1, memory_order_relaxed);
  /* publishing the generation releases fn, ctx and pending to the spinning workers; taking the
   * lock around it and the broadcast reaches the ones that went to sleep */
  pthread_mutex_lock(&p->lock);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  fn(ctx, 0, p->n_workers);
  for (int i = 0; i < SPIN_LIMIT && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) cpu_relax();
  if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
  }
}

size_t trm_cpu_count(void) {
#ifdef CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return (size_t)n;
  }
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (size_t)n : 1;
}
