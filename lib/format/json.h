/* A small pull-style JSON reader: just what the safetensors header needs. Reads from a
 * length-bounded buffer (no terminator needed), limits nesting, and reports the byte offset
 * of the first problem. */
#ifndef TRM_JSON_H
#define TRM_JSON_H

#include "../internal.h"

enum { JSON_MAX_DEPTH = 16 };

typedef struct json_cursor {
  const char *start, *p, *end;
  int depth;
  bool nomem;      /* the failure was an allocation, not the input */
  char err[200];   /* what went wrong, with the offset */
} json_cursor;

TRM_HIDDEN void json_init(json_cursor *c, const char *data, size_t size);
/* Skips whitespace; true if the next character is ch (which is then consumed). */
TRM_HIDDEN bool json_accept(json_cursor *c, char ch);
/* Like json_accept, but a missing ch is an error naming what was expected. */
TRM_HIDDEN bool json_expect(json_cursor *c, char ch);
/* A string of at most max_len bytes once decoded, returned NUL-terminated in *out (trm_alloc;
 * the caller frees with trm_release). Embedded NUL bytes are refused. */
TRM_HIDDEN bool json_string(json_cursor *c, char **out, size_t max_len);
/* A non-negative integer without fraction or exponent that fits in 64 bits. */
TRM_HIDDEN bool json_uint64(json_cursor *c, uint64_t *out);
/* Any value, checked for well-formedness and discarded. */
TRM_HIDDEN bool json_skip_value(json_cursor *c);
/* True if only whitespace remains. */
TRM_HIDDEN bool json_at_end(json_cursor *c);
/* Records an error at the current position; returns false. */
TRM_HIDDEN bool json_error(json_cursor *c, const char *what);

#endif
