/* Shared by the fuzz targets (tests/fuzz/fuzz_*.c): the libFuzzer entry point, a reader that
 * turns the fuzz input into call arguments, and a check that aborts, so that a broken contract
 * (not only a memory error) is a crash that libFuzzer and the replay driver report. */
#ifndef TRM_FUZZ_H
#define TRM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the condition, what was being checked and the thread's last libtrm error. */
#define FUZZ_CHECK(cond, what)                                                                                     \
  do {                                                                                                             \
    if (!(cond)) {                                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s (%s); trm_last_error: %s\n", __FILE__, __LINE__, #cond, (what),    \
              trm_last_error());                                                                                   \
      abort();                                                                                                     \
    }                                                                                                              \
  } while (0)

/* A status some public call may return at all. */
static inline int fuzz_known_status(trm_status st) {
  return st == TRM_OK || st == TRM_HALTED || st == TRM_E_INVALID || st == TRM_E_NOMEM || st == TRM_E_IO ||
         st == TRM_E_FORMAT || st == TRM_E_UNSUPPORTED || st == TRM_E_STATE;
}

/* The fuzz input read front to back; once it runs out every read gives 0. */
typedef struct fuzz_bytes {
  const uint8_t *p;
  size_t left;
} fuzz_bytes;

static inline uint8_t fuzz_u8(fuzz_bytes *b) {
  if (b->left == 0) return 0;
  b->left--;
  return *b->p++;
}

static inline uint16_t fuzz_u16(fuzz_bytes *b) {
  uint16_t lo = fuzz_u8(b);
  return (uint16_t)(lo | (uint16_t)fuzz_u8(b) << 8);
}

static inline uint32_t fuzz_u32(fuzz_bytes *b) {
  uint32_t lo = fuzz_u16(b);
  return lo | (uint32_t)fuzz_u16(b) << 16;
}

#endif
