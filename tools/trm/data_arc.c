/* trm data arc: ARC-AGI tasks in the Kaggle JSON format to the reference's encoding.
 *
 *   challenges: {"TASK": {"train": [{"input": GRID, "output": GRID}, ...],
 *                         "test": [{"input": GRID}, ...]}, ...}
 *   solutions:  {"TASK": [GRID, ...], ...}   (one output per test input)
 *
 * As the reference's build_arc_dataset.py does for an evaluation subset: every task is a puzzle
 * identifier (1, 2, ... in file order; 0 is "<blank>"), its demonstration pairs go to the train
 * split and its test pairs (input, solution) to the test split; in each split a task is one
 * group holding one puzzle whose examples are those pairs. A grid (at most 30 x 30, colours
 * 0-9) is drawn on a 30 x 30 canvas as colour + 2, with 0 padding and the end-of-grid marker 1
 * on the row below it and the column right of it (within the canvas, the corner excluded). The
 * reference shifts each train pair to a random offset (the same for input and output) except
 * one example per puzzle chosen at random; so does this, from --seed. Test pairs sit at the
 * top left. No colour or dihedral augmentation is made. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data.h"

enum { SIDE = 30, CANVAS = SIDE * SIDE, PAD = 0, EOG = 1, MAX_DEPTH = 64 };
enum { STREAM_TRAIN = 1 };

typedef struct {
  int rows, cols;
  uint8_t v[CANVAS];
} grid;

typedef struct {
  grid in, out;
  bool has_out;
} pair;

typedef struct {
  char *name;
  pair *train, *test;
  int n_train, n_test;
  bool solved;  /* a solutions entry was seen */
} task;

typedef struct {
  task *tasks;
  int n, cap;
} task_list;

/* ---- a small JSON reader with line/column messages ---- */
typedef struct {
  const char *path;
  const char *start, *p, *end;
  char err[512];
} reader;

static bool fail_at(reader *r, const char *fmt, ...) {
  if (r->err[0]) return false;
  int line = 1, col = 1;
  for (const char *q = r->start; q < r->p && q < r->end; q++) {
    if (*q == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  int n = snprintf(r->err, sizeof r->err, "%s: line %d, column %d: ", r->path, line, col);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof r->err) vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
  va_end(ap);
  return false;
}

/* a semantic problem, named by where it is in the data rather than by position */
static bool fail_in(reader *r, const char *fmt, ...) {
  if (r->err[0]) return false;
  int n = snprintf(r->err, sizeof r->err, "%s: ", r->path);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof r->err) vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
  va_end(ap);
  return false;
}

static void skip_ws(reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static bool peek(reader *r, char ch) {
  skip_ws(r);
  return r->p < r->end && *r->p == ch;
}

static bool accept(reader *r, char ch) {
  if (!peek(r, ch)) return false;
  r->p++;
  return true;
}

static bool expect(reader *r, char ch, const char *context) {
  if (accept(r, ch)) return true;
  if (r->p >= r->end) return fail_at(r, "unexpected end of file (expected '%c' %s)", ch, context);
  return fail_at(r, "expected '%c' %s", ch, context);
}

static void put_utf8(char *out, size_t *n, unsigned cp) {
  if (cp < 0x80) out[(*n)++] = (char)cp;
  else if (cp < 0x800) {
    out[(*n)++] = (char)(0xC0 | cp >> 6);
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out[(*n)++] = (char)(0xE0 | cp >> 12);
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else {
    out[(*n)++] = (char)(0xF0 | cp >> 18);
    out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  }
}

static bool hex4(reader *r, unsigned *out) {
  if (r->end - r->p < 4) return fail_at(r, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = r->p[i];
    int h = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
            : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
    if (h < 0) return fail_at(r, "bad \\u escape");
    v = v * 16 + (unsigned)h;
  }
  r->p += 4;
  *out = v;
  return true;
}

/* A string; *OUT (malloc'd, NUL-terminated) when OUT is not NULL. */
static bool read_string(reader *r, char **out, const char *context) {
  if (!expect(r, '"', context)) return false;
  const char *from = r->p;
  char *buf = out ? malloc((size_t)(r->end - from) + 1) : NULL;
  if (out && !buf) return fail_at(r, "out of memory");
  size_t n = 0;
  for (;;) {
    if (r->p >= r->end) {
      free(buf);
      return fail_at(r, "unterminated string");
    }
    unsigned char ch = (unsigned char)*r->p;
    if (ch == '"') break;
    if (ch < 0x20) {
      free(buf);
      return fail_at(r, "control character in a string");
    }
    if (ch >= 0x80) {
      /* JSON text is UTF-8 (the reference's json.load would not read anything else) */
      int len = cli_utf8_length((const unsigned char *)r->p, (size_t)(r->end - r->p));
      if (len == 0) {
        free(buf);
        return fail_at(r, "invalid UTF-8 in a string");
      }
      if (buf) memcpy(buf + n, r->p, (size_t)len);
      n += (size_t)len;
      r->p += len;
      continue;
    }
    if (ch != '\\') {
      if (buf) buf[n++] = (char)ch;
      r->p++;
      continue;
    }
    r->p++;
    if (r->p >= r->end) continue;  /* reported as unterminated */
    char e = *r->p++;
    unsigned cp = 0;
    switch (e) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u': {
        if (!hex4(r, &cp)) {
          free(buf);
          return false;
        }
        if (cp >= 0xD800 && cp < 0xDC00 && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
          unsigned low;
          r->p += 2;
          if (!hex4(r, &low)) {
            free(buf);
            return false;
          }
          if (low < 0xDC00 || low >= 0xE000) {
            free(buf);
            return fail_at(r, "bad surrogate pair");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xD800 && cp < 0xE000) {
          free(buf);
          return fail_at(r, "lone surrogate in \\u escape");
        }
        if (cp == 0) {
          free(buf);
          return fail_at(r, "NUL character in a string");
        }
        break;
      }
      default:
        free(buf);
        return fail_at(r, "bad escape '\\%c'", e);
    }
    if (buf) put_utf8(buf, &n, cp);
  }
  r->p++;
  if (buf) {
    buf[n] = '\0';
    *out = buf;
  }
  return true;
}

/* A non-negative integer without fraction or exponent; VALUE is capped at 1000000. */
static bool read_small_int(reader *r, long *value, const char *context) {
  skip_ws(r);
  const char *at = r->p;
  if (r->p < r->end && *r->p == '-') return fail_at(r, "negative number %s", context);
  if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail_at(r, "expected a number %s", context);
  long v = 0;
  while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
    if (v < 1000000) v = v * 10 + (*r->p - '0');
    r->p++;
  }
  if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E')) {
    r->p = at;
    return fail_at(r, "expected an integer %s", context);
  }
  if (*at == '0' && r->p - at > 1) {
    r->p = at;
    return fail_at(r, "number with a leading zero %s", context);
  }
  *value = v;
  return true;
}

static bool skip_value(reader *r, int depth) {
  if (depth > MAX_DEPTH) return fail_at(r, "nesting too deep");
  skip_ws(r);
  if (r->p >= r->end) return fail_at(r, "unexpected end of file");
  char ch = *r->p;
  if (ch == '"') return read_string(r, NULL, "");
  if (ch == '{' || ch == '[') {
    char close = ch == '{' ? '}' : ']';
    r->p++;
    if (accept(r, close)) return true;
    do {
      if (ch == '{') {
        if (!read_string(r, NULL, "(an object key)") || !expect(r, ':', "after an object key")) return false;
      }
      if (!skip_value(r, depth + 1)) return false;
    } while (accept(r, ','));
    return expect(r, close, ch == '{' ? "to close an object" : "to close an array");
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t len = strlen(words[i]);
    if ((size_t)(r->end - r->p) >= len && memcmp(r->p, words[i], len) == 0) {
      r->p += len;
      return true;
    }
  }
  /* a number: -?digits[.digits][e[+-]digits] */
  const char *q = r->p;
  if (q < r->end && *q == '-') q++;
  const char *digits = q;
  while (q < r->end && *q >= '0' && *q <= '9') q++;
  if (q == digits) return fail_at(r, "unexpected character '%c'", ch);
  if (q < r->end && *q == '.') {
    q++;
    const char *frac = q;
    while (q < r->end && *q >= '0' && *q <= '9') q++;
    if (q == frac) return fail_at(r, "malformed number");
  }
  if (q < r->end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < r->end && (*q == '+' || *q == '-')) q++;
    const char *exp = q;
    while (q < r->end && *q >= '0' && *q <= '9') q++;
    if (q == exp) return fail_at(r, "malformed number");
  }
  r->p = q;
  return true;
}

/* GRID: [[c, ...], ...], rectangular, 1-30 rows and columns, colours 0-9. WHAT names it. */
static bool read_grid(reader *r, grid *g, const char *what) {
  if (!expect(r, '[', what)) return false;
  g->rows = g->cols = 0;
  if (peek(r, ']')) return fail_at(r, "%s: empty grid", what);
  do {
    if (g->rows == SIDE) return fail_at(r, "%s: more than %d rows", what, SIDE);
    if (!expect(r, '[', what)) return false;
    int cols = 0;
    if (peek(r, ']')) return fail_at(r, "%s: empty row", what);
    do {
      long c = 0;
      if (cols == SIDE) return fail_at(r, "%s: more than %d columns", what, SIDE);
      if (!read_small_int(r, &c, what)) return false;
      if (c > 9) return fail_at(r, "%s: colour %ld is not 0-9", what, c);
      g->v[g->rows * SIDE + cols++] = (uint8_t)c;
    } while (accept(r, ','));
    if (!expect(r, ']', what)) return false;
    if (g->rows > 0 && cols != g->cols)
      return fail_at(r, "%s: row %d has %d columns, row 1 has %d", what, g->rows + 1, cols, g->cols);
    g->cols = cols;
    g->rows++;
  } while (accept(r, ','));
  return expect(r, ']', what);
}

/* [{"input": GRID, "output": GRID}, ...]; OUTPUT_REQUIRED for demonstration pairs. */
static bool read_pairs(reader *r, const char *task_name, const char *kind, bool output_required,
                       pair **out, int *n_out) {
  char what[300];
  snprintf(what, sizeof what, "in task '%.200s' %s", task_name, kind);
  if (!expect(r, '[', what)) return false;
  int cap = 0;
  if (accept(r, ']')) return true;
  do {
    if (*n_out == cap) {
      cap = cap ? cap * 2 : 4;
      pair *p = realloc(*out, (size_t)cap * sizeof(pair));
      if (!p) return fail_at(r, "out of memory");
      *out = p;
    }
    pair *p = &(*out)[*n_out];
    memset(p, 0, sizeof *p);
    (*n_out)++;
    snprintf(what, sizeof what, "in task '%.200s' %s example %d", task_name, kind, *n_out);
    if (!expect(r, '{', what)) return false;
    bool has_in = false;
    if (!peek(r, '}')) do {
      char *key;
      if (!read_string(r, &key, what)) return false;
      if (!expect(r, ':', what)) {
        free(key);
        return false;
      }
      char gwhat[340];
      snprintf(gwhat, sizeof gwhat, "%s %s", what, key);
      bool ok;
      if (strcmp(key, "input") == 0 || strcmp(key, "output") == 0) {
        bool is_in = key[0] == 'i';
        if (is_in ? has_in : p->has_out) ok = fail_at(r, "%s: duplicate key '%s'", what, key);
        else ok = read_grid(r, is_in ? &p->in : &p->out, gwhat);
        if (is_in) has_in = true;
        else p->has_out = true;
      } else {
        ok = skip_value(r, 3);
      }
      free(key);
      if (!ok) return false;
    } while (accept(r, ','));
    if (!expect(r, '}', what)) return false;
    if (!has_in) return fail_in(r, "task '%s': %s example %d has no \"input\"", task_name, kind, *n_out);
    if (output_required && !p->has_out)
      return fail_in(r, "task '%s': %s example %d has no \"output\"", task_name, kind, *n_out);
  } while (accept(r, ','));
  snprintf(what, sizeof what, "in task '%.200s' %s", task_name, kind);
  return expect(r, ']', what);
}

static task *find_task(task_list *list, const char *name) {
  for (int i = 0; i < list->n; i++)
    if (strcmp(list->tasks[i].name, name) == 0) return &list->tasks[i];
  return NULL;
}

static bool read_challenges(reader *r, task_list *list) {
  if (!expect(r, '{', "at the start (a challenges file is an object of tasks)")) return false;
  if (!peek(r, '}')) do {
    char *name;
    if (!read_string(r, &name, "(a task id)")) return false;
    if (find_task(list, name)) {
      bool ok = fail_at(r, "duplicate task '%s'", name);
      free(name);
      return ok;
    }
    if (list->n == list->cap) {
      int cap = list->cap ? list->cap * 2 : 64;
      task *t = realloc(list->tasks, (size_t)cap * sizeof(task));
      if (!t) {
        free(name);
        return fail_at(r, "out of memory");
      }
      list->tasks = t;
      list->cap = cap;
    }
    task *t = &list->tasks[list->n++];
    memset(t, 0, sizeof *t);
    t->name = name;
    char what[300];
    snprintf(what, sizeof what, "in task '%.200s'", name);
    if (!expect(r, ':', what) || !expect(r, '{', what)) return false;
    bool has_train = false, has_test = false;
    if (!peek(r, '}')) do {
      char *key;
      if (!read_string(r, &key, what)) return false;
      bool ok = expect(r, ':', what);
      if (ok && strcmp(key, "train") == 0) {
        ok = has_train ? fail_at(r, "task '%s': duplicate \"train\"", name)
                       : read_pairs(r, name, "train", true, &t->train, &t->n_train);
        has_train = true;
      } else if (ok && strcmp(key, "test") == 0) {
        ok = has_test ? fail_at(r, "task '%s': duplicate \"test\"", name)
                      : read_pairs(r, name, "test", false, &t->test, &t->n_test);
        has_test = true;
      } else if (ok) {
        ok = skip_value(r, 2);
      }
      free(key);
      if (!ok) return false;
    } while (accept(r, ','));
    if (!expect(r, '}', what)) return false;
    if (!has_train || !has_test) return fail_in(r, "task '%s' lacks \"train\" or \"test\"", name);
    if (t->n_train == 0) return fail_in(r, "task '%s' has no train examples", name);
    if (t->n_test == 0) return fail_in(r, "task '%s' has no test examples", name);
  } while (accept(r, ','));
  if (!expect(r, '}', "to close the object of tasks")) return false;
  skip_ws(r);
  if (r->p != r->end) return fail_at(r, "unexpected text after the JSON value");
  if (list->n == 0) return fail_in(r, "no tasks");
  return true;
}

static bool read_solutions(reader *r, task_list *list) {
  if (!expect(r, '{', "at the start (a solutions file is an object of tasks)")) return false;
  if (!peek(r, '}')) do {
    char *name;
    if (!read_string(r, &name, "(a task id)")) return false;
    task *t = find_task(list, name);
    char what[300];
    snprintf(what, sizeof what, "in the solutions of task '%.200s'", name);
    bool ok = true;
    if (!t) ok = fail_at(r, "solutions for task '%s', which is not in the challenges", name);
    else if (t->solved) ok = fail_at(r, "duplicate task '%s'", name);
    if (ok) ok = expect(r, ':', what) && expect(r, '[', what);
    int n = 0;
    if (ok && !peek(r, ']')) do {
      if (n == t->n_test) {
        ok = fail_at(r, "task '%s' has %d test inputs but more solutions", name, t->n_test);
        break;
      }
      char gwhat[340];
      snprintf(gwhat, sizeof gwhat, "%s, solution %d", what, n + 1);
      ok = read_grid(r, &t->test[n].out, gwhat);
      t->test[n].has_out = true;
      n++;
    } while (ok && accept(r, ','));
    if (ok) ok = expect(r, ']', what);
    if (ok && n != t->n_test) ok = fail_in(r, "task '%s' has %d test inputs but %d solutions", name, t->n_test, n);
    if (t) t->solved = true;
    free(name);
    if (!ok) return false;
  } while (accept(r, ','));
  if (!expect(r, '}', "to close the object of tasks")) return false;
  skip_ws(r);
  if (r->p != r->end) return fail_at(r, "unexpected text after the JSON value");
  for (int i = 0; i < list->n; i++)
    if (!list->tasks[i].solved) return fail_in(r, "no solutions for task '%s'", list->tasks[i].name);
  return true;
}

/* Reads PATH whole; NULL after printing an error. */
static char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    fprintf(stderr, "trm: data arc: %s: cannot open: %s\n", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      if (cap >= ((size_t)1 << 31)) {
        fprintf(stderr, "trm: data arc: %s: larger than 2 GiB\n", path);
        free(buf);
        fclose(fp);
        return NULL;
      }
      char *b = realloc(buf, cap * 2);
      if (!b) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = b;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, fp);
    n += got;
    if (got == 0) break;
  }
  if (!buf) {
    fprintf(stderr, "trm: data arc: %s: out of memory\n", path);
    fclose(fp);
    return NULL;
  }
  if (ferror(fp)) {
    fprintf(stderr, "trm: data arc: %s: read error: %s\n", path, strerror(errno));
    free(buf);
    fclose(fp);
    return NULL;
  }
  fclose(fp);
  *len = n;
  return buf;
}

/* ---- puzzle variants: a task as the reference augmented it ---- */

/* One puzzle of a task: its identifier, a dihedral transform and a colour map. */
typedef struct {
  int64_t id;
  int transform;
  uint8_t colour[10];
} variant;

typedef struct {
  variant *v;
  int n, cap;
} variant_list;

static const char separator[] = "|||";

/* "NAME|||tK|||PPPPPPPPPP" (the reference's augmented name): the base name's length and the
 * variant; a plain NAME is the identity. False if the "|||" part is malformed. */
static bool parse_variant_name(const char *name, size_t *base_len, variant *out) {
  const char *sep = strstr(name, separator);
  out->transform = 0;
  for (int c = 0; c < 10; c++) out->colour[c] = (uint8_t)c;
  if (!sep) {
    *base_len = strlen(name);
    return true;
  }
  *base_len = (size_t)(sep - name);
  const char *p = sep + 3;
  if (p[0] != 't' || p[1] < '0' || p[1] > '7' || strncmp(p + 2, separator, 3) != 0) return false;
  out->transform = p[1] - '0';
  p += 5;
  unsigned seen = 0;
  for (int c = 0; c < 10; c++) {
    if (p[c] < '0' || p[c] > '9' || (seen >> (p[c] - '0')) & 1) return false;
    seen |= 1u << (p[c] - '0');
    out->colour[c] = (uint8_t)(p[c] - '0');
  }
  return p[10] == '\0';
}

static int compare_task_names(const void *a, const void *b) {
  const task *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

/* Reads a JSON list of names (the reference's identifiers.json) into VARIANTS per task: every
 * name whose base is a task's id. Unknown bases are skipped (other subsets' tasks). */
static bool read_identifiers(reader *r, task_list *list, variant_list *variants, char ***names_out,
                             int64_t *n_out) {
  task **sorted = malloc((size_t)list->n * sizeof *sorted);
  if (!sorted) return fail_at(r, "out of memory");
  for (int i = 0; i < list->n; i++) sorted[i] = &list->tasks[i];
  qsort(sorted, (size_t)list->n, sizeof *sorted, compare_task_names);
  char **names = NULL;
  int64_t n = 0, cap = 0;
  bool ok = expect(r, '[', "at the start (an identifiers file is a list of names)");
  if (ok && !peek(r, ']')) do {
    char *name;
    if (!(ok = read_string(r, &name, "(an identifier name)"))) break;
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      char **grown = realloc(names, (size_t)cap * sizeof *names);
      if (!grown) {
        free(name);
        ok = fail_at(r, "out of memory");
        break;
      }
      names = grown;
    }
    names[n] = name;
    variant v;
    size_t base_len;
    if (!parse_variant_name(name, &base_len, &v)) {
      ok = fail_in(r, "identifier %lld '%s' is not NAME or NAME|||tK|||PERMUTATION", (long long)n, name);
      n++;
      break;
    }
    v.id = n++;
    char saved = name[base_len];
    name[base_len] = '\0';
    task key = {.name = name}, *keyp = &key;
    task **found = bsearch(&keyp, sorted, (size_t)list->n, sizeof *sorted, compare_task_names);
    name[base_len] = saved;
    if (!found) continue;
    variant_list *vl = &variants[*found - list->tasks];
    if (vl->n == vl->cap) {
      int vcap = vl->cap ? vl->cap * 2 : 8;
      variant *grown = realloc(vl->v, (size_t)vcap * sizeof *grown);
      if (!grown) {
        ok = fail_at(r, "out of memory");
        break;
      }
      vl->v = grown;
      vl->cap = vcap;
    }
    vl->v[vl->n++] = v;
  } while (accept(r, ','));
  if (ok) ok = expect(r, ']', "to close the list of names");
  if (ok) {
    skip_ws(r);
    if (r->p != r->end) ok = fail_at(r, "unexpected text after the JSON value");
  }
  for (int i = 0; ok && i < list->n; i++)
    if (variants[i].n == 0) ok = fail_in(r, "no identifier for task '%s'", list->tasks[i].name);
  free(sorted);
  *names_out = names;
  *n_out = n;
  return ok;
}

/* the reference's augmentation of a grid: colours mapped, then the dihedral transform (the
 * numbering of data_dihedral, on a rows x cols grid) */
static void transform_grid(const grid *in, const variant *v, grid *out) {
  int h = in->rows, w = in->cols;
  bool swap = v->transform == 1 || v->transform == 3 || v->transform == 6 || v->transform == 7;
  out->rows = swap ? w : h;
  out->cols = swap ? h : w;
  for (int i = 0; i < out->rows; i++)
    for (int j = 0; j < out->cols; j++) {
      int r, c;  /* out[i][j] = in[r][c] */
      switch (v->transform) {
        case 1: r = j; c = w - 1 - i; break;
        case 2: r = h - 1 - i; c = w - 1 - j; break;
        case 3: r = h - 1 - j; c = i; break;
        case 4: r = i; c = w - 1 - j; break;
        case 5: r = h - 1 - i; c = j; break;
        case 6: r = j; c = i; break;
        case 7: r = h - 1 - j; c = w - 1 - i; break;
        default: r = i; c = j; break;
      }
      out->v[i * SIDE + j] = v->colour[in->v[r * SIDE + c]];
    }
}

/* ---- encoding ---- */

static void encode(const grid *g, int pad_r, int pad_c, uint8_t *canvas) {
  memset(canvas, PAD, CANVAS);
  for (int r = 0; r < g->rows; r++)
    for (int c = 0; c < g->cols; c++) canvas[(pad_r + r) * SIDE + pad_c + c] = (uint8_t)(g->v[r * SIDE + c] + 2);
  int eog_row = pad_r + g->rows, eog_col = pad_c + g->cols;
  if (eog_row < SIDE)
    for (int c = pad_c; c < eog_col; c++) canvas[eog_row * SIDE + c] = EOG;
  if (eog_col < SIDE)
    for (int r = pad_r; r < eog_row; r++) canvas[r * SIDE + eog_col] = EOG;
}

static void add_pair(data_split *split, const pair *given, const variant *v, data_rng *rng) {
  static const grid dummy = {.rows = 1, .cols = 1};  /* the reference's [[0]] for a missing output */
  pair transformed, *p = &transformed;
  transform_grid(&given->in, v, &transformed.in);
  transform_grid(given->has_out ? &given->out : &dummy, v, &transformed.out);
  const grid *out = &transformed.out;
  int pad_r = 0, pad_c = 0;
  if (rng) {
    int rows = p->in.rows > out->rows ? p->in.rows : out->rows;
    int cols = p->in.cols > out->cols ? p->in.cols : out->cols;
    pad_r = (int)data_rng_below(rng, (uint32_t)(SIDE - rows + 1));
    pad_c = (int)data_rng_below(rng, (uint32_t)(SIDE - cols + 1));
  }
  uint8_t in_tokens[CANVAS], out_tokens[CANVAS];
  encode(&p->in, pad_r, pad_c, in_tokens);
  encode(out, pad_r, pad_c, out_tokens);
  data_split_add_example(split, in_tokens, out_tokens, 0);
}

static const char arc_help[] =
    "usage: trm data arc --challenges FILE --out DIR [--solutions FILE] [--identifiers FILE] [--seed S]\n"
    "  --challenges FILE  ARC-AGI tasks, e.g. arc-agi_evaluation_challenges.json\n"
    "  --solutions FILE   their test outputs, e.g. arc-agi_evaluation_solutions.json; without it\n"
    "                     test labels are the grid [[0]] unless the challenges hold \"output\"\n"
    "  --out DIR          output folder (DIR/train: demonstration pairs, DIR/test: test pairs)\n"
    "  --identifiers FILE the identifiers.json of the data set a model was trained on: each task's\n"
    "                     puzzles are the names there for it (NAME, NAME|||tK|||PERMUTATION: the\n"
    "                     reference's dihedral transform K and colour map), with those ids\n"
    "  --seed S           seed of the train pairs' random offsets (default 0)\n"
    "Each task is one group per split; without --identifiers, one puzzle with id 1, 2, ... in file\n"
    "order (identifiers.json: index = id, 0 = <blank>).\n";

static bool arc_takes_value(const char *flag) { return strcmp(flag, "--help") != 0; }

static void free_tasks(task_list *list) {
  for (int i = 0; i < list->n; i++) {
    free(list->tasks[i].name);
    free(list->tasks[i].train);
    free(list->tasks[i].test);
  }
  free(list->tasks);
}

int data_arc(int argc, char **argv) {
  const char *challenges = NULL, *solutions = NULL, *identifiers = NULL, *out = NULL;
  uint64_t seed = 0;
  data_args args = {.argc = argc, .argv = argv, .index = 1, .cmd = "trm data arc"};
  int rr;
  while ((rr = data_args_next(&args, arc_takes_value)) == 1) {
    const char *f = args.flag;
    if (strcmp(f, "--help") == 0) {
      fputs(arc_help, stdout);
      return 0;
    } else if (strcmp(f, "--challenges") == 0) challenges = args.value;
    else if (strcmp(f, "--solutions") == 0) solutions = args.value;
    else if (strcmp(f, "--identifiers") == 0) identifiers = args.value;
    else if (strcmp(f, "--out") == 0) out = args.value;
    else if (strcmp(f, "--seed") == 0) {
      if (!data_parse_seed(&args, &seed)) return 2;
    } else return data_usage_error(args.cmd, "unknown option '%s'", f);
  }
  if (rr < 0) return 2;
  if (!challenges || !challenges[0]) return data_usage_error(args.cmd, "--challenges is required");
  if (!out || !out[0]) return data_usage_error(args.cmd, "--out is required");

  task_list list = {0};
  size_t len;
  char *text = slurp(challenges, &len);
  if (!text) return 1;
  reader r = {.path = challenges, .start = text, .p = text, .end = text + len};
  bool ok = read_challenges(&r, &list);
  free(text);
  if (ok && solutions) {
    text = slurp(solutions, &len);
    if (!text) {
      free_tasks(&list);
      return 1;
    }
    reader rs = {.path = solutions, .start = text, .p = text, .end = text + len};
    ok = read_solutions(&rs, &list);
    if (!ok) memcpy(r.err, rs.err, sizeof r.err);
    free(text);
  }
  variant_list *variants = ok ? calloc((size_t)list.n, sizeof *variants) : NULL;
  char **id_names = NULL;
  int64_t n_ids = 0;
  if (ok && !variants) ok = fail_in(&r, "out of memory");
  if (ok && identifiers) {
    text = slurp(identifiers, &len);
    if (!text) {
      ok = false;  /* slurp said why */
    } else {
      reader ri = {.path = identifiers, .start = text, .p = text, .end = text + len};
      ok = read_identifiers(&ri, &list, variants, &id_names, &n_ids);
      if (!ok) memcpy(r.err, ri.err, sizeof r.err);
    }
    free(text);
  } else if (ok) {
    /* ids 1.. in file order, 0 = <blank>; the names borrowed from the tasks */
    n_ids = (int64_t)list.n + 1;
    for (int i = 0; ok && i < list.n; i++) {
      variants[i].v = malloc(sizeof(variant));
      if (!variants[i].v) {
        ok = fail_in(&r, "out of memory");
        break;
      }
      size_t base_len;
      parse_variant_name("", &base_len, variants[i].v);
      variants[i].v->id = i + 1;
      variants[i].n = variants[i].cap = 1;
    }
  }
  int rc = 0;
  if (!ok) {
    if (r.err[0]) fprintf(stderr, "trm: data arc: %s\n", r.err);
    rc = 1;
  }
  const char **names = NULL;
  if (!rc) {
    names = malloc((size_t)n_ids * sizeof *names);
    if (!names) {
      fprintf(stderr, "trm: data arc: out of memory\n");
      rc = 1;
    } else if (id_names) {
      for (int64_t i = 0; i < n_ids; i++) names[i] = id_names[i];
    } else {
      names[0] = "<blank>";
      for (int i = 0; i < list.n; i++) names[i + 1] = list.tasks[i].name;
    }
  }
  data_split train, test;
  data_split_init(&train, CANVAS, false);
  data_split_init(&test, CANVAS, false);
  if (!rc) rc = data_make_dir(out);
  if (!rc) {
    data_rng rng;
    data_rng_seed(&rng, seed, STREAM_TRAIN);
    for (int i = 0; i < list.n; i++) {
      const task *t = &list.tasks[i];
      for (int k = 0; k < variants[i].n; k++) {
        const variant *v = &variants[i].v[k];
        int unshifted = (int)data_rng_below(&rng, (uint32_t)t->n_train);
        for (int e = 0; e < t->n_train; e++) add_pair(&train, &t->train[e], v, e == unshifted ? NULL : &rng);
        data_split_end_puzzle(&train, v->id);
        for (int e = 0; e < t->n_test; e++) add_pair(&test, &t->test[e], v, NULL);
        data_split_end_puzzle(&test, v->id);
      }
      data_split_end_group(&train);
      data_split_end_group(&test);
    }
    data_meta meta = {.vocab_size = 12, .num_puzzle_identifiers = n_ids, .identifier_names = names};
    rc = data_split_write(&train, out, "train", &meta);
    if (!rc) rc = data_split_write(&test, out, "test", &meta);
    if (!rc) rc = data_write_identifiers(out, &meta);
  }
  data_split_free(&train);
  data_split_free(&test);
  free(names);
  for (int64_t i = 0; i < n_ids && id_names; i++) free(id_names[i]);
  free(id_names);
  for (int i = 0; variants && i < list.n; i++) free(variants[i].v);
  free(variants);
  free_tasks(&list);
  return rc;
}
