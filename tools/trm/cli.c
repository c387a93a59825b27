/* Helpers shared by the trm subcommands; see cli.h. */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const cli_task_names[] = {"sudoku", "maze", "arc", "raw", NULL};

/* Prints a formatted message with any newline turned into a space and any other control
 * character into '?', so every error stays on one line and no file name or library message can
 * send escape sequences to the terminal. */
static void print_one_line(const char *fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  for (char *p = buf; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '\n' || c == '\r') *p = ' ';
    else if (c < 0x20 || c == 0x7f) *p = '?';
  }
  fputs(buf, stderr);
}

int cli_fail(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "trm: %s: ", cmd);
  print_one_line(fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "trm %s: ", cmd);
  print_one_line(fmt, ap);
  fprintf(stderr, " (see 'trm %s --help')\n", cmd);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

/* ---- options ---- */

void cli_args_init(cli_args *a, int argc, char **argv) {
  a->argc = argc;
  a->argv = argv;
  a->index = 1;
  a->options_done = false;
  a->inline_value = NULL;
}

int cli_args_next(cli_args *a, const char **opt) {
  static char name[64];
  a->inline_value = NULL;
  while (a->index < a->argc) {
    const char *arg = a->argv[a->index++];
    if (!a->options_done && strcmp(arg, "--") == 0) {
      a->options_done = true;
      continue;
    }
    if (a->options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
      *opt = arg;
      return 2;
    }
    const char *eq = strchr(arg, '=');
    if (eq && (size_t)(eq - arg) < sizeof name) {
      memcpy(name, arg, (size_t)(eq - arg));
      name[eq - arg] = '\0';
      a->inline_value = eq + 1;
      *opt = name;
    } else {
      *opt = arg;
    }
    return 1;
  }
  return 0;
}

const char *cli_args_value(cli_args *a, const char *cmd, const char *opt) {
  if (a->inline_value) return a->inline_value;
  if (a->index >= a->argc) {
    cli_usage_error(cmd, "option %s needs a value", opt);
    return NULL;
  }
  return a->argv[a->index++];
}

bool cli_args_no_value(cli_args *a, const char *cmd, const char *opt) {
  if (!a->inline_value) return true;
  cli_usage_error(cmd, "option %s takes no value", opt);
  return false;
}

bool cli_parse_int(const char *cmd, const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out) {
  const char *p = text;
  bool negative = false;
  if (*p == '-' && lo < 0) {
    negative = true;
    p++;
  }
  int64_t v = 0;
  bool ok = *p != '\0';
  for (; ok && *p; p++) {
    if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) ok = false;
    else v = v * 10 + (*p - '0');
  }
  if (negative) v = -v;
  if (!ok || v < lo || v > hi) {
    cli_usage_error(cmd, "%s: expected an integer from %lld to %lld, got '%s'", opt, (long long)lo, (long long)hi,
                    text);
    return false;
  }
  *out = v;
  return true;
}

int cli_parse_choice(const char *cmd, const char *opt, const char *text, const char *const *names) {
  for (int i = 0; names[i]; i++)
    if (strcmp(text, names[i]) == 0) return i;
  char list[256] = "";
  for (int i = 0; names[i]; i++) {
    if (i) strncat(list, "|", sizeof list - strlen(list) - 1);
    strncat(list, names[i], sizeof list - strlen(list) - 1);
  }
  cli_usage_error(cmd, "%s: expected %s, got '%s'", opt, list, text);
  return -1;
}

/* ---- model ---- */

trm_model *cli_load_model(const char *cmd, const char *path) {
  trm_model *m = NULL;
  trm_status st = trm_model_load(path, &m);
  if (st != TRM_OK) {
    cli_fail(cmd, "%s: %s: %s", path, trm_status_string(st), trm_last_error());
    return NULL;
  }
  return m;
}

int64_t cli_model_int(const trm_model *m, const char *key) {
  int64_t v = 0;
  if (trm_model_info(m, key, &v) != TRM_OK) return 0;
  return v;
}

/* ---- puzzle kinds ---- */

/* The side of a square of seq_len cells, or 0 when seq_len is not a square of at most MAX_SIDE. */
static int square_side(int64_t seq_len) {
  for (int side = 1; side <= MAX_SIDE; side++)
    if ((int64_t)side * side == seq_len) return side;
  return 0;
}

cli_task cli_task_for(int64_t seq_len, int64_t vocab) {
  if (seq_len == 81 && vocab == 11) return TASK_SUDOKU;
  if (vocab == 6 && square_side(seq_len) >= 2) return TASK_MAZE;
  if (seq_len == GRID_SIDE * GRID_SIDE && vocab == 12) return TASK_ARC;
  return TASK_RAW;
}

static const char maze_chars[] = "# SGo"; /* tokens 1..5 */

char cli_token_char(cli_task task, int32_t token) {
  switch (task) {
  case TASK_SUDOKU:
    if (token == 0) return '_';
    if (token == 1) return '.';
    if (token >= 2 && token <= 10) return (char)('0' + token - 1);
    return '?';
  case TASK_MAZE:
    if (token == 0) return '.';
    if (token >= 1 && token <= 5) return maze_chars[token - 1];
    return '?';
  case TASK_ARC:
    if (token == 0) return '.';
    if (token == 1) return '$';
    if (token >= 2 && token <= 11) return (char)('0' + token - 2);
    return '?';
  case TASK_RAW:
    break;
  }
  return '?';
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

/* Splits text into lines (without '\r'), dropping empty lines at the start and the end. */
typedef struct {
  const char *start[MAX_SIDE];
  size_t len[MAX_SIDE];
  int line_no[MAX_SIDE]; /* 1-based line in the text, for messages */
  int count;
} text_rows;

/* At most SIDE rows. */
static bool split_rows(const char *text, size_t len, int side, text_rows *rows, char *err, size_t err_len) {
  rows->count = 0;
  int line = 0, pending_empty = 0;
  size_t i = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && text[j] != '\n') j++;
    size_t n = j - i;
    if (n > 0 && text[i + n - 1] == '\r') n--;
    line++;
    /* only a truly empty line separates: in a maze a line of spaces is a row of open cells */
    if (n == 0) {
      if (rows->count > 0) pending_empty++;
    } else {
      if (pending_empty) {
        snprintf(err, err_len, "line %d: empty line inside the grid", line - pending_empty);
        return false;
      }
      if (rows->count == side) {
        snprintf(err, err_len, "more than %d rows (the model's grid is %dx%d)", side, side, side);
        return false;
      }
      rows->start[rows->count] = text + i;
      rows->len[rows->count] = n;
      rows->line_no[rows->count] = line;
      rows->count++;
    }
    i = j + 1;
  }
  if (rows->count == 0) {
    snprintf(err, err_len, "no grid rows in the input");
    return false;
  }
  return true;
}

bool cli_task_fits(cli_task task, int64_t seq_len, int64_t vocab, char *err, size_t err_len) {
  const char *need = NULL;
  if (task == TASK_SUDOKU && (seq_len != 81 || vocab < 11)) need = "seq_len 81 and vocab_size >= 11";
  if (task == TASK_MAZE && (square_side(seq_len) < 2 || vocab < 6)) need = "a square seq_len (such as 900) and vocab_size >= 6";
  if (task == TASK_ARC && (seq_len != GRID_SIDE * GRID_SIDE || vocab < 12)) need = "seq_len 900 and vocab_size >= 12";
  if (need) {
    snprintf(err, err_len, "--task %s needs a model with %s; this one has seq_len %lld and vocab_size %lld",
             cli_task_names[task], need, (long long)seq_len, (long long)vocab);
    return false;
  }
  return true;
}

static bool parse_sudoku(const char *text, size_t len, cli_puzzle *out, char *err, size_t err_len) {
  size_t cells = 0;
  int line = 1, col = 0;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    col++;
    if (c == '\n') {
      line++;
      col = 0;
      continue;
    }
    if (is_blank(c) || c == '|' || c == '+' || c == '-') continue;
    int token;
    if (c == '.' || c == '0') token = 1;
    else if (c >= '1' && c <= '9') token = c - '0' + 1;
    else {
      snprintf(err, err_len, "line %d, column %d: unexpected character '%c' in a Sudoku (digits 1-9, '.' or '0' for a blank)",
               line, col, (c >= 32 && c < 127) ? c : '?');
      return false;
    }
    if (cells < 81) out->tokens[cells] = token;
    cells++;
  }
  if (cells != 81) {
    snprintf(err, err_len, "a Sudoku has 81 cells, the input has %zu", cells);
    return false;
  }
  out->rows = 9;
  out->cols = 9;
  return true;
}

/* Maze and ARC: rows of equal length put at the top-left of the canvas (out->side). */
static bool parse_canvas(cli_task task, const char *text, size_t len, cli_puzzle *out, char *err, size_t err_len) {
  text_rows rows;
  int side = out->side;
  if (!split_rows(text, len, side, &rows, err, err_len)) return false;
  int width = -1;
  for (int r = 0; r < rows.count; r++) {
    int cells = 0;
    for (size_t k = 0; k < rows.len[r]; k++) {
      char c = rows.start[r][k];
      int token;
      if (task == TASK_MAZE) {
        const char *hit = c ? strchr(maze_chars, c) : NULL;
        if (!hit) {
          snprintf(err, err_len, "line %d, column %zu: unexpected character '%c' in a maze (one of '#', ' ', 'S', 'G', 'o')",
                   rows.line_no[r], k + 1, (c >= 32 && c < 127) ? c : '?');
          return false;
        }
        token = (int)(hit - maze_chars) + 1;
      } else {
        if (is_blank(c) || c == ',') continue;
        if (c < '0' || c > '9') {
          snprintf(err, err_len, "line %d, column %zu: unexpected character '%c' in an ARC grid (colours 0-9)",
                   rows.line_no[r], k + 1, (c >= 32 && c < 127) ? c : '?');
          return false;
        }
        token = c - '0' + 2;
      }
      if (cells == side) {
        snprintf(err, err_len, "line %d: more than %d cells (the model's grid is %dx%d)", rows.line_no[r], side, side,
                 side);
        return false;
      }
      out->tokens[r * side + cells] = token;
      cells++;
    }
    if (cells == 0) {
      snprintf(err, err_len, "line %d: a row without cells", rows.line_no[r]);
      return false;
    }
    if (width >= 0 && cells != width) {
      snprintf(err, err_len, "line %d has %d cells, the first row has %d (rows must be equally long)", rows.line_no[r],
               cells, width);
      return false;
    }
    width = cells;
  }
  out->rows = rows.count;
  out->cols = width;
  if (task == TASK_ARC) {
    /* end-of-grid markers as the reference writes them (build_arc_dataset.py): token 1 in the
     * row below the grid under its columns and in the column right of it beside its rows */
    if (out->rows < GRID_SIDE)
      for (int c = 0; c < out->cols; c++) out->tokens[out->rows * GRID_SIDE + c] = 1;
    if (out->cols < GRID_SIDE)
      for (int r = 0; r < out->rows; r++) out->tokens[r * GRID_SIDE + out->cols] = 1;
  }
  return true;
}

static bool parse_raw(const char *text, size_t len, int64_t seq_len, int64_t vocab, cli_puzzle *out, char *err,
                      size_t err_len) {
  size_t count = 0, i = 0;
  while (i < len) {
    while (i < len && (is_blank(text[i]) || text[i] == ',')) i++;
    if (i == len) break;
    size_t j = i;
    while (j < len && !is_blank(text[j]) && text[j] != ',') j++;
    int64_t v = 0;
    bool ok = j - i <= 18;
    for (size_t k = i; ok && k < j; k++) {
      if (text[k] < '0' || text[k] > '9') ok = false;
      else v = v * 10 + (text[k] - '0');
    }
    count++;
    if (!ok) {
      /* the token as printable ASCII: the input may hold anything */
      char shown[24];
      size_t n = 0;
      for (size_t k = i; k < j && n < 20; k++) shown[n++] = text[k] >= 0x20 && text[k] < 0x7f ? text[k] : '?';
      shown[n] = '\0';
      snprintf(err, err_len, "token %zu ('%s%s') is not a non-negative integer", count, shown, j - i > 20 ? "..." : "");
      return false;
    }
    if (v >= vocab) {
      snprintf(err, err_len, "token %zu is %lld, outside the model's vocabulary [0, %lld)", count, (long long)v,
               (long long)vocab);
      return false;
    }
    if ((int64_t)count <= seq_len) out->tokens[count - 1] = (int32_t)v;
    i = j;
  }
  if ((int64_t)count != seq_len) {
    snprintf(err, err_len, "the model takes %lld tokens (its seq_len), the input has %zu", (long long)seq_len, count);
    return false;
  }
  int side = (int)sqrt((double)seq_len);
  while ((int64_t)(side + 1) * (side + 1) <= seq_len) side++;
  while (side > 0 && (int64_t)side * side > seq_len) side--;
  if ((int64_t)side * side == seq_len) out->cols = side;
  else out->cols = seq_len <= 32 ? (int)seq_len : 20;
  out->rows = (int)((seq_len + out->cols - 1) / out->cols);
  return true;
}

bool cli_puzzle_parse(cli_task task, const char *text, size_t len, int64_t seq_len, int64_t vocab, cli_puzzle *out,
                      char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  if (!cli_task_fits(task, seq_len, vocab, err, err_len)) return false;
  if (seq_len < 1) {
    snprintf(err, err_len, "the model's seq_len is %lld", (long long)seq_len);
    return false;
  }
  out->n = (size_t)seq_len;
  if (task == TASK_MAZE || task == TASK_ARC) out->side = square_side(seq_len);
  out->tokens = calloc(out->n, sizeof *out->tokens);
  if (!out->tokens) {
    snprintf(err, err_len, "out of memory");
    return false;
  }
  bool ok;
  switch (task) {
  case TASK_SUDOKU: ok = parse_sudoku(text, len, out, err, err_len); break;
  case TASK_MAZE:
  case TASK_ARC: ok = parse_canvas(task, text, len, out, err, err_len); break;
  default: ok = parse_raw(text, len, seq_len, vocab, out, err, err_len); break;
  }
  if (!ok) cli_puzzle_free(out);
  return ok;
}

void cli_puzzle_free(cli_puzzle *p) {
  free(p->tokens);
  p->tokens = NULL;
}

void cli_arc_crop(const int32_t *tokens, int *rows, int *cols) {
  int width = GRID_SIDE, best_area = 0;
  *rows = *cols = 0;
  for (int r = 0; r < GRID_SIDE && width > 0; r++) {
    int c = 0;
    while (c < width && tokens[r * GRID_SIDE + c] >= 2 && tokens[r * GRID_SIDE + c] <= 11) c++;
    width = c;
    if ((r + 1) * width > best_area) {
      best_area = (r + 1) * width;
      *rows = r + 1;
      *cols = width;
    }
  }
}

size_t cli_grid_text_size(cli_task task, size_t n) {
  (void)task;
  return n * 13 + GRID_SIDE + 2;
}

void cli_grid_text(cli_task task, const cli_puzzle *shape, const int32_t *tokens, char *out) {
  char *p = out;
  int rows = shape->rows, cols = shape->cols, stride = cols;
  if (task == TASK_MAZE) stride = shape->side;
  if (task == TASK_ARC) {
    cli_arc_crop(tokens, &rows, &cols);
    stride = GRID_SIDE;
  }
  for (int r = 0; r < rows; r++) {
    if (r) *p++ = '\n';
    for (int c = 0; c < cols; c++) {
      size_t i = (size_t)r * (size_t)stride + (size_t)c;
      if (task == TASK_RAW) {
        if (i >= shape->n) break;
        p += sprintf(p, c ? " %d" : "%d", (int)tokens[i]);
      } else {
        char ch = cli_token_char(task, tokens[i]);
        *p++ = (task == TASK_SUDOKU && (ch == '_' || ch == '.')) ? '.' : ch;
      }
    }
  }
  *p = '\0';
}

/* ---- files and output ---- */

char *cli_read_file(const char *path, size_t max, size_t *len, char *err, size_t err_len) {
  bool is_stdin = strcmp(path, "-") == 0;
  const char *name = is_stdin ? "standard input" : path;
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    snprintf(err, err_len, "%s: %s", name, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    if (n == cap) {
      if (cap >= max) break;
      cap = cap * 2 > max ? max : cap * 2;
      char *grown = realloc(buf, cap + 1);
      if (!grown) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = grown;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  bool read_error = ferror(f) != 0;
  int saved_errno = errno;
  bool too_big = buf && n == cap && cap >= max && fgetc(f) != EOF;
  if (!is_stdin) fclose(f);
  if (!buf) {
    snprintf(err, err_len, "%s: out of memory", name);
    return NULL;
  }
  if (read_error || too_big) {
    if (read_error) snprintf(err, err_len, "%s: %s", name, strerror(saved_errno));
    else snprintf(err, err_len, "%s: larger than %zu bytes", name, max);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

int cli_utf8_length(const unsigned char *p, size_t avail) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (c >= 0xF5 || c == 0xC0 || c == 0xC1 || n == 0 || (size_t)n > avail) return 0;
  unsigned cp = c & (0x7F >> n);
  for (int k = 1; k < n; k++) {
    if ((p[k] & 0xC0) != 0x80) return 0; /* also stops at a terminating NUL */
    cp = cp << 6 | (p[k] & 0x3F);
  }
  static const unsigned least[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
  return n;
}

void cli_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", f);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else if (*p < 0x80) fputc(*p, f);
    else {
      /* JSON is UTF-8: a byte that starts no valid sequence (a file name may hold any) becomes
       * U+FFFD, as Python's errors="replace" decodes it */
      int n = cli_utf8_length(p, 4);
      if (n == 0) fputs("\\ufffd", f);
      else fwrite(p, 1, (size_t)n, f);
      if (n > 1) p += n - 1;
    }
  }
  fputc('"', f);
}

size_t cli_text_string(FILE *f, const char *s) {
  size_t written = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = cli_utf8_length(p, 4);
    bool c1 = n == 2 && p[0] == 0xC2 && p[1] <= 0x9F; /* U+0080..U+009F */
    if (n == 0 || *p < 0x20 || *p == 0x7F || c1) {
      written += (size_t)fprintf(f, "\\x%02x", c1 ? p[1] : p[0]);
      p += c1 ? 2 : 1;
    } else {
      fwrite(p, 1, (size_t)n, f);
      written += (size_t)n;
      p += n;
    }
  }
  return written;
}

void cli_json_number(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, "%.9g", v);
  else fputs("null", f);
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
