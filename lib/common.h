/* Declarations every file of the library shares: errors, memory, threads. Nothing here is
 * exported. */
#ifndef TRM_COMMON_H
#define TRM_COMMON_H

#include "trm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define TRM_HIDDEN __attribute__((visibility("hidden")))
#define TRM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TRM_HIDDEN
#define TRM_PRINTF(f, a)
#endif

/* ---- errors (error.c) ---- */

/* Records this thread's message for trm_last_error() and returns status, so a failing
 * path reads `return trm_fail(TRM_E_FORMAT, "...", ...);`. */
TRM_HIDDEN trm_status trm_fail(trm_status status, const char *fmt, ...) TRM_PRINTF(2, 3);

/* ---- memory (error.c): every allocation of the library goes through these ---- */

TRM_HIDDEN void *trm_alloc(size_t size);               /* 64-byte aligned, uninitialised */
TRM_HIDDEN void *trm_alloc_zero(size_t count, size_t size); /* 64-byte aligned, zeroed; checks overflow */
TRM_HIDDEN void trm_release(void *p);

/* a*b and a*b*c without overflow; false when the product does not fit in size_t */
TRM_HIDDEN bool trm_mul_ok(size_t a, size_t b, size_t *out);

/* ---- threads (pool.c) ---- */

typedef struct trm_pool trm_pool;
typedef void (*trm_pool_fn)(void *ctx, size_t worker, size_t n_workers);

/* n_workers >= 1 counting the calling thread; n_workers - 1 threads are started. */
TRM_HIDDEN trm_status trm_pool_create(size_t n_workers, trm_pool **out);
TRM_HIDDEN void trm_pool_free(trm_pool *p);
/* Runs fn(ctx, w, n) on every worker w (the caller is worker 0) and waits for all. */
TRM_HIDDEN void trm_pool_run(trm_pool *p, trm_pool_fn fn, void *ctx);
TRM_HIDDEN size_t trm_pool_size(const trm_pool *p);
/* CPUs this process may run on (at least 1). */
TRM_HIDDEN size_t trm_cpu_count(void);

#endif
