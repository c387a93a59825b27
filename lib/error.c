/* Status strings, the per-thread error message, version, and the library's allocator. */
#include "internal.h"

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

void *trm_alloc(size_t size) {
  if (size == 0) size = 1;
  if (size > SIZE_MAX - TRM_ALIGN) return NULL;
  size_t rounded = (size + TRM_ALIGN - 1) / TRM_ALIGN * TRM_ALIGN;
  return aligned_alloc(TRM_ALIGN, rounded);
}

void *trm_alloc_zero(size_t count, size_t size) {
  size_t total;
  if (!trm_mul_ok(count, size, &total)) return NULL;
  void *p = trm_alloc(total);
  if (p) memset(p, 0, total);
  return p;
}

void trm_release(void *p) { free(p); }
