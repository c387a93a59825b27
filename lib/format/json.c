#include "json.h"

#include <stdio.h>
#include <string.h>

void json_init(json_cursor *c, const char *data, size_t size) {
  c->start = c->p = data;
  c->end = data + size;
  c->depth = 0;
  c->nomem = false;
  c->err[0] = '\0';
}

bool json_error(json_cursor *c, const char *what) {
  if (c->err[0] == '\0')
    snprintf(c->err, sizeof c->err, "%s at header byte %zu", what, (size_t)(c->p - c->start));
  return false;
}

static void skip_ws(json_cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

bool json_accept(json_cursor *c, char ch) {
  skip_ws(c);
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return true;
  }
  return false;
}

bool json_expect(json_cursor *c, char ch) {
  if (json_accept(c, ch)) return true;
  char what[32];
  snprintf(what, sizeof what, "expected '%c'", ch);
  return json_error(c, c->p >= c->end ? "unexpected end of header" : what);
}

bool json_at_end(json_cursor *c) {
  skip_ws(c);
  return c->p == c->end;
}

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static bool read_hex4(json_cursor *c, unsigned *out) {
  if (c->end - c->p < 4) return json_error(c, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hex_value(c->p[i]);
    if (h < 0) return json_error(c, "bad \\u escape");
    v = v * 16 + (unsigned)h;
  }
  c->p += 4;
  *out = v;
  return true;
}

/* Decodes one escape after the backslash into buf; returns its byte count, 0 on error. */
static size_t read_escape(json_cursor *c, char buf[4]) {
  if (c->p >= c->end) return json_error(c, "truncated escape"), 0;
  char e = *c->p++;
  switch (e) {
  case '"': buf[0] = '"'; return 1;
  case '\\': buf[0] = '\\'; return 1;
  case '/': buf[0] = '/'; return 1;
  case 'b': buf[0] = '\b'; return 1;
  case 'f': buf[0] = '\f'; return 1;
  case 'n': buf[0] = '\n'; return 1;
  case 'r': buf[0] = '\r'; return 1;
  case 't': buf[0] = '\t'; return 1;
  case 'u': break;
  default: return json_error(c, "unknown escape"), 0;
  }
  unsigned cp;
  if (!read_hex4(c, &cp)) return 0;
  if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
    unsigned lo;
    if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
      return json_error(c, "unpaired surrogate"), 0;
    c->p += 2;
    if (!read_hex4(c, &lo)) return 0;
    if (lo < 0xDC00 || lo > 0xDFFF) return json_error(c, "unpaired surrogate"), 0;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
    return json_error(c, "unpaired surrogate"), 0;
  }
  if (cp == 0) return json_error(c, "NUL character in string"), 0;
  if (cp < 0x80) { buf[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    buf[0] = (char)(0xC0 | (cp >> 6));
    buf[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    buf[0] = (char)(0xE0 | (cp >> 12));
    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  buf[0] = (char)(0xF0 | (cp >> 18));
  buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  buf[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Walks a string; with out != NULL also decodes it. Decoded length never exceeds raw length. */
static bool walk_string(json_cursor *c, char *out, size_t *len) {
  size_t n = 0;
  for (;;) {
    if (c->p >= c->end) return json_error(c, "unterminated string");
    char ch = *c->p;
    if (ch == '"') {
      c->p++;
      break;
    }
    if ((unsigned char)ch < 0x20) return json_error(c, "control character in string");
    if (ch == '\\') {
      c->p++;
      char buf[4];
      size_t k = read_escape(c, buf);
      if (k == 0) return false;
      if (out) memcpy(out + n, buf, k);
      n += k;
    } else {
      c->p++;
      if (out) out[n] = ch;
      n++;
    }
  }
  *len = n;
  return true;
}

bool json_string(json_cursor *c, char **out, size_t max_len) {
  skip_ws(c);
  if (c->p >= c->end || *c->p != '"') return json_error(c, "expected a string");
  c->p++;
  const char *body = c->p;
  size_t len;
  if (!walk_string(c, NULL, &len)) return false;
  if (len > max_len) {
    c->p = body;
    return json_error(c, "string too long");
  }
  /* an escape decodes to no more bytes than it occupies, so the raw span bounds the result */
  char *s = trm_alloc((size_t)(c->p - body));
  if (!s) {
    c->nomem = true;
    return json_error(c, "out of memory");
  }
  const char *after = c->p;
  c->p = body;
  walk_string(c, s, &len);
  c->p = after;
  s[len] = '\0';
  *out = s;
  return true;
}

bool json_uint64(json_cursor *c, uint64_t *out) {
  skip_ws(c);
  if (c->p >= c->end || *c->p < '0' || *c->p > '9') return json_error(c, "expected a non-negative integer");
  if (*c->p == '0' && c->end - c->p > 1 && c->p[1] >= '0' && c->p[1] <= '9')
    return json_error(c, "leading zero in number");
  uint64_t v = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    unsigned d = (unsigned)(*c->p - '0');
    if (v > (UINT64_MAX - d) / 10) return json_error(c, "integer too large");
    v = v * 10 + d;
    c->p++;
  }
  if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
    return json_error(c, "expected an integer, found a fraction or exponent");
  *out = v;
  return true;
}

static bool skip_number(json_cursor *c) {
  if (c->p < c->end && *c->p == '-') c->p++;
  const char *digits = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
  if (c->p == digits) return json_error(c, "bad number");
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    digits = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    if (c->p == digits) return json_error(c, "bad number");
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    digits = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    if (c->p == digits) return json_error(c, "bad number");
  }
  return true;
}

static bool skip_literal(json_cursor *c, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return json_error(c, "unexpected character");
  c->p += n;
  return true;
}

bool json_skip_value(json_cursor *c) {
  skip_ws(c);
  if (c->p >= c->end) return json_error(c, "unexpected end of header");
  char ch = *c->p;
  if (ch == '"') {
    c->p++;
    size_t len;
    return walk_string(c, NULL, &len);
  }
  if (ch == '{' || ch == '[') {
    if (++c->depth > JSON_MAX_DEPTH) return json_error(c, "nesting too deep");
    c->p++;
    char close = ch == '{' ? '}' : ']';
    if (!json_accept(c, close)) {
      do {
        if (ch == '{') {
          skip_ws(c);
          if (c->p >= c->end || *c->p != '"') return json_error(c, "expected a key");
          c->p++;
          size_t len;
          if (!walk_string(c, NULL, &len) || !json_expect(c, ':')) return false;
        }
        if (!json_skip_value(c)) return false;
      } while (json_accept(c, ','));
      if (!json_expect(c, close)) return false;
    }
    c->depth--;
    return true;
  }
  if (ch == 't') return skip_literal(c, "true");
  if (ch == 'f') return skip_literal(c, "false");
  if (ch == 'n') return skip_literal(c, "null");
  return skip_number(c);
}
