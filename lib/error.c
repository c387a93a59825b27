/* Status strings, the per-thread error message, version, and the library's allocator. */
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRM_STR2(x) #x
#define TRM_STR(x) TRM_STR2(x)

static _Thread_local char last_error[512];

trm_status trm_fail(trm_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return status;
}

TRM_API const char *trm_last_error(void) { return last_error; }

TRM_API const char *trm_version_string(void) {
  return TRM_STR(TRM_VERSION_MAJOR) "." TRM_STR(TRM_VERSION_MINOR) "." TRM_STR(TRM_VERSION_PATCH);
}

TRM_API const char *trm_status_string(trm_status s) {
  switch (s) {
  case TRM_OK: return "TRM_OK: success";
  case TRM_HALTED: return "TRM_HALTED: every slot with an input has halted";
  case TRM_E_INVALID: return "TRM_E_INVALID: invalid argument";
  case TRM_E_NOMEM: return "TRM_E_NOMEM: out of memory";
  case TRM_E_IO: return "TRM_E_IO: file could not be read";
  case TRM_E_FORMAT: return "TRM_E_FORMAT: malformed model file";
  case TRM_E_UNSUPPORTED: return "TRM_E_UNSUPPORTED: not supported by this version";
  case TRM_E_STATE: return "TRM_E_STATE: call not allowed in this state";
  }
  return "unknown status";
}

bool trm_mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return false;
  *out = a * b;
  return true;
}

/* 64-byte alignment keeps every row of a weight matrix on cache-line boundaries for the kernels. */
enum { TRM_ALIGN = 64 };

/* The host's functions (trm_set_allocator), or NULL ones for the C library's. Read under a
 * lock: allocations are few (at load and session creation), so the lock costs nothing. */
static trm_allocator current_allocator;
static pthread_mutex_t allocator_lock = PTHREAD_MUTEX_INITIALIZER;

/* Written just below every block, so that the block is freed by the functions that made it
 * even after the host installs others. */
typedef struct block_header {
  void *base; /* what the allocating function returned */
  void (*free_fn)(void *user, void *ptr);
  void *user;
} block_header;

/* The block header fits in the TRM_ALIGN bytes in front of an aligned block. */
_Static_assert(sizeof(block_header) <= TRM_ALIGN, "block header larger than the alignment");

static void libc_free(void *user, void *ptr) {
  (void)user;
  free(ptr);
}

TRM_API trm_status trm_set_allocator(const trm_allocator *allocator) {
  trm_allocator chosen = {0};
  if (allocator) {
    if (allocator->size < sizeof(trm_allocator))
      return trm_fail(TRM_E_INVALID, "trm_set_allocator: size is %zu, expected sizeof(trm_allocator) = %zu",
                      allocator->size, sizeof(trm_allocator));
    if (!allocator->malloc_fn || !allocator->free_fn)
      return trm_fail(TRM_E_INVALID, "trm_set_allocator: malloc_fn and free_fn are required");
    chosen = *allocator;
    chosen.size = sizeof(trm_allocator);
  }
  pthread_mutex_lock(&allocator_lock);
  current_allocator = chosen;
  pthread_mutex_unlock(&allocator_lock);
  return TRM_OK;
}

void *trm_alloc(size_t size) {
  if (size == 0) size = 1;
  /* room for the size rounded up to the alignment, one alignment unit in front for the
   * header, and one more when the block has to be aligned by hand */
  if (size > SIZE_MAX - 3 * TRM_ALIGN) return NULL;
  size_t rounded = (size + TRM_ALIGN - 1) / TRM_ALIGN * TRM_ALIGN;

  pthread_mutex_lock(&allocator_lock);
  trm_allocator a = current_allocator;
  pthread_mutex_unlock(&allocator_lock);

  void *base;
  unsigned char *block;
  if (!a.malloc_fn) {
    base = aligned_alloc(TRM_ALIGN, rounded + TRM_ALIGN);
    block = base ? (unsigned char *)base + TRM_ALIGN : NULL;
    a.free_fn = libc_free;
  } else if (a.aligned_alloc_fn) {
    base = a.aligned_alloc_fn(a.user, TRM_ALIGN, rounded + TRM_ALIGN);
    block = base ? (unsigned char *)base + TRM_ALIGN : NULL;
  } else {
    base = a.malloc_fn(a.user, rounded + 2 * TRM_ALIGN);
    block = NULL;
    if (base) {
      uintptr_t first = (uintptr_t)base + TRM_ALIGN; /* at least a header's room in front */
      block = (unsigned char *)base + (TRM_ALIGN - first % TRM_ALIGN) % TRM_ALIGN + TRM_ALIGN;
    }
  }
  if (!block) return NULL;
  /* a host function that ignores the alignment must not corrupt memory: refuse its block */
  if ((uintptr_t)block % TRM_ALIGN != 0) {
    a.free_fn(a.user, base);
    return NULL;
  }
  block_header *h = (block_header *)(void *)(block - sizeof(block_header));
  h->base = base;
  h->free_fn = a.free_fn;
  h->user = a.user;
  return block;
}

void *trm_alloc_zero(size_t count, size_t size) {
  size_t total;
  if (!trm_mul_ok(count, size, &total)) return NULL;
  void *p = trm_alloc(total);
  if (p) memset(p, 0, total);
  return p;
}

void trm_release(void *p) {
  if (!p) return;
  block_header *h = (block_header *)(void *)((unsigned char *)p - sizeof(block_header));
  h->free_fn(h->user, h->base);
}
