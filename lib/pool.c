/* A small fork-join thread pool owned by a session: the caller is worker 0, the others wait on
 * a condition variable for the next job, and trm_pool_run returns once every worker finished.
 * Creating it allocates; running a job does not. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

struct trm_pool {
  size_t n_workers;
  pthread_t *threads;
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  uint64_t generation; /* bumped for each job */
  size_t pending;      /* helper threads still working on the current job */
  bool quit;
  trm_pool_fn fn;
  void *ctx;
};

typedef struct worker_arg {
  trm_pool *pool;
  size_t index;
} worker_arg;

static void *worker_main(void *arg_) {
  worker_arg *arg = arg_;
  trm_pool *p = arg->pool;
  size_t index = arg->index;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->lock);
    if (p->quit) break;
    seen = p->generation;
    trm_pool_fn fn = p->fn;
    void *ctx = p->ctx;
    pthread_mutex_unlock(&p->lock);
    fn(ctx, index, p->n_workers);
    pthread_mutex_lock(&p->lock);
    if (--p->pending == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->lock);
  trm_release(arg);
  return NULL;
}

size_t trm_pool_size(const trm_pool *p) { return p ? p->n_workers : 1; }

static void stop_threads(trm_pool *p, size_t started) {
  pthread_mutex_lock(&p->lock);
  p->quit = true;
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
  pthread_mutex_lock(&p->lock);
  p->fn = fn;
  p->ctx = ctx;
  p->pending = p->n_workers - 1;
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  fn(ctx, 0, p->n_workers);
  pthread_mutex_lock(&p->lock);
  while (p->pending > 0) pthread_cond_wait(&p->done, &p->lock);
  pthread_mutex_unlock(&p->lock);
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
