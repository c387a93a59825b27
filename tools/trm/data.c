/* `trm data`: the dispatcher and what the generators share (see data.h). */
#define _POSIX_C_SOURCE 200809L /* fileno, fsync */

#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "../common/npy.h"
#include "../common/whole_file.h"
#include "commands.h"

static const char data_usage[] =
    "usage: trm data sudoku --count N --out DIR [--givens A-B] [--seed S] [--test-count N] [--augment K]\n"
    "       trm data maze --count N --out DIR [--size N] [--min-path L] [--braid P] [--seed S]\n"
    "                     [--test-count N] [--augment]\n"
    "       trm data arc --challenges FILE --out DIR [--solutions FILE] [--seed S]\n"
    "Writes a data set in the reference layout: DIR/train and DIR/test with dataset.json,\n"
    "identifiers.json and all__{inputs,labels,puzzle_identifiers,puzzle_indices,group_indices}.npy.\n"
    "`trm data GENERATOR --help` describes each generator's options.\n";

int cmd_data(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "trm data: missing generator: sudoku, maze or arc (see 'trm data --help')\n");
    return 2;
  }
  const char *gen = argv[1];
  if (strcmp(gen, "--help") == 0 || strcmp(gen, "-h") == 0) {
    fputs(data_usage, stdout);
    return 0;
  }
  if (strcmp(gen, "sudoku") == 0) return data_sudoku(argc - 1, argv + 1);
  if (strcmp(gen, "maze") == 0) return data_maze(argc - 1, argv + 1);
  if (strcmp(gen, "arc") == 0) return data_arc(argc - 1, argv + 1);
  fprintf(stderr, "trm data: unknown generator '%s': sudoku, maze or arc (see 'trm data --help')\n", gen);
  return 2;
}

/* ---- PRNG ---- */

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

void data_rng_seed(data_rng *rng, uint64_t seed, uint64_t stream) {
  uint64_t state = seed ^ (stream * UINT64_C(0xD1B54A32D192ED03));
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&state);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t data_rng_next(data_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint32_t data_rng_below(data_rng *rng, uint32_t n) {
  /* Lemire's multiply-and-reject: uniform without a division on the common path */
  uint64_t m = (data_rng_next(rng) >> 32) * n;
  uint32_t low = (uint32_t)m;
  if (low < n) {
    uint32_t threshold = (uint32_t)(-n) % n;
    while (low < threshold) {
      m = (data_rng_next(rng) >> 32) * n;
      low = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

bool data_rng_chance(data_rng *rng, double p) {
  return (double)(data_rng_next(rng) >> 11) * 0x1.0p-53 < p;
}

void data_rng_shuffle(data_rng *rng, int *values, int n) {
  for (int i = n - 1; i > 0; i--) {
    int j = (int)data_rng_below(rng, (uint32_t)i + 1);
    int t = values[i];
    values[i] = values[j];
    values[j] = t;
  }
}

/* ---- dihedral transforms ---- */

void data_dihedral(const uint8_t *in, uint8_t *out, int n, int transform) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      int r, c;  /* out[i][j] = in[r][c] */
      switch (transform) {
        case 1: r = j; c = n - 1 - i; break;          /* np.rot90, counter-clockwise */
        case 2: r = n - 1 - i; c = n - 1 - j; break;
        case 3: r = n - 1 - j; c = i; break;
        case 4: r = i; c = n - 1 - j; break;          /* fliplr */
        case 5: r = n - 1 - i; c = j; break;          /* flipud */
        case 6: r = j; c = i; break;                  /* transpose */
        case 7: r = n - 1 - j; c = n - 1 - i; break;  /* fliplr(rot90): anti-transpose */
        default: r = i; c = j; break;
      }
      out[i * n + j] = in[r * n + c];
    }
}

/* ---- splits ---- */

static bool grow(void **ptr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t cap2 = *cap ? *cap : 64;
  while (cap2 < need) cap2 *= 2;
  void *p = realloc(*ptr, cap2 * elem);
  if (!p) return false;
  *ptr = p;
  *cap = cap2;
  return true;
}

void data_split_init(data_split *split, int seq_len, bool with_ratings) {
  memset(split, 0, sizeof *split);
  split->seq_len = seq_len;
  split->puzzle_indices = malloc(64 * sizeof(int64_t));
  split->group_indices = malloc(64 * sizeof(int64_t));
  if (!split->puzzle_indices || !split->group_indices) {
    split->oom = true;
    return;
  }
  split->puzzle_cap = split->group_cap = 64;
  split->puzzle_indices[0] = split->group_indices[0] = 0;
  if (with_ratings) split->ratings = malloc(sizeof(int64_t));  /* grown with the examples */
  if (with_ratings && !split->ratings) split->oom = true;
}

void data_split_free(data_split *split) {
  free(split->inputs);
  free(split->labels);
  free(split->puzzle_identifiers);
  free(split->puzzle_indices);
  free(split->group_indices);
  free(split->ratings);
  memset(split, 0, sizeof *split);
}

void data_split_add_example(data_split *split, const uint8_t *input, const uint8_t *label,
                            int64_t rating) {
  if (split->oom) return;
  size_t need = (size_t)split->examples + 1;
  if (need > split->example_cap) {
    size_t cap = split->example_cap ? split->example_cap * 2 : 256;
    size_t row = (size_t)split->seq_len;
    uint8_t *in = realloc(split->inputs, cap * row);
    if (in) split->inputs = in;
    uint8_t *lab = in ? realloc(split->labels, cap * row) : NULL;
    if (lab) split->labels = lab;
    int64_t *rat = split->ratings && lab ? realloc(split->ratings, cap * sizeof(int64_t)) : NULL;
    if (rat) split->ratings = rat;
    if (!in || !lab || (split->ratings && !rat)) {
      split->oom = true;
      return;
    }
    split->example_cap = cap;
  }
  size_t at = (size_t)split->examples * (size_t)split->seq_len;
  memcpy(split->inputs + at, input, (size_t)split->seq_len);
  memcpy(split->labels + at, label, (size_t)split->seq_len);
  if (split->ratings) split->ratings[split->examples] = rating;
  split->examples++;
}

void data_split_end_puzzle(data_split *split, int64_t identifier) {
  if (split->oom) return;
  if (!grow((void **)&split->puzzle_indices, &split->puzzle_cap, (size_t)split->puzzles + 2, sizeof(int64_t)) ||
      !grow((void **)&split->puzzle_identifiers, &split->identifier_cap, (size_t)split->puzzles + 1,
            sizeof(int64_t))) {
    split->oom = true;
    return;
  }
  split->puzzle_identifiers[split->puzzles] = identifier;
  split->puzzles++;
  split->puzzle_indices[split->puzzles] = split->examples;
}

void data_split_end_group(data_split *split) {
  if (split->oom) return;
  if (!grow((void **)&split->group_indices, &split->group_cap, (size_t)split->groups + 2, sizeof(int64_t))) {
    split->oom = true;
    return;
  }
  split->groups++;
  split->group_indices[split->groups] = split->puzzles;
}

/* ---- writing ---- */

/* DIR/FILE into OUT; false if it does not fit */
static bool join_path(char *out, size_t out_len, const char *dir, const char *file) {
  int n = snprintf(out, out_len, "%s/%s", dir, file);
  return n >= 0 && (size_t)n < out_len;
}

static int io_error(const char *path, const char *what) {
  fprintf(stderr, "trm: data: %s: %s\n", path, what);
  return 1;
}

int data_make_dir(const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) return io_error(path, "bad directory name");
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return io_error(buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return io_error(buf, "exists and is not a directory");
    buf[i] = saved;
  }
  return 0;
}

/* A float as Python's repr writes it: the shortest digits that read back exactly. */
static void python_float(double x, char *out, size_t out_len) {
  char digits[40];
  int prec = 0;
  for (; prec < 17; prec++) {
    snprintf(digits, sizeof digits, "%.*e", prec, x);
    if (strtod(digits, NULL) == x) break;
  }
  /* digits is "[-]d.ddde[+-]XX": take the mantissa digits and the exponent */
  char mant[40];
  size_t m = 0;
  const char *p = digits;
  bool neg = *p == '-';
  if (neg) p++;
  for (; *p && *p != 'e'; p++)
    if (*p != '.') mant[m++] = *p;
  mant[m] = '\0';
  int exp10 = atoi(p + 1);
  size_t n = 0;
  if (neg) out[n++] = '-';
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      n += (size_t)snprintf(out + n, out_len - n, "0.");
      for (int i = -1; i > exp10; i--) out[n++] = '0';
      n += (size_t)snprintf(out + n, out_len - n, "%s", mant);
    } else {
      for (int i = 0; i <= exp10; i++) out[n++] = i < (int)m ? mant[i] : '0';
      out[n++] = '.';
      if ((int)m > exp10 + 1) n += (size_t)snprintf(out + n, out_len - n, "%s", mant + exp10 + 1);
      else out[n++] = '0';
    }
    out[n] = '\0';
  } else {
    out[n++] = mant[0];
    if (m > 1) {
      out[n++] = '.';
      n += (size_t)snprintf(out + n, out_len - n, "%s", mant + 1);
    }
    snprintf(out + n, out_len - n, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
  }
}

/* A JSON string as Python's json.dump writes it (ensure_ascii: non-ASCII as \uXXXX). */
static void json_string_out(FILE *fp, const char *s) {
  fputc('"', fp);
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p;
    unsigned cp;
    int extra;
    if (c < 0x80) { cp = c; extra = 0; }
    else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; extra = 1; }
    else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; extra = 2; }
    else { cp = c & 0x07; extra = 3; }
    p++;
    for (int k = 0; k < extra && (*p & 0xC0) == 0x80; k++) cp = cp << 6 | (*p++ & 0x3F);
    if (cp == '"') fputs("\\\"", fp);
    else if (cp == '\\') fputs("\\\\", fp);
    else if (cp == '\n') fputs("\\n", fp);
    else if (cp == '\r') fputs("\\r", fp);
    else if (cp == '\t') fputs("\\t", fp);
    else if (cp == '\b') fputs("\\b", fp);
    else if (cp == '\f') fputs("\\f", fp);
    else if (cp < 0x20 || (cp >= 0x7F && cp < 0x10000)) fprintf(fp, "\\u%04x", cp);
    else if (cp >= 0x10000) {
      cp -= 0x10000;
      fprintf(fp, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
    } else {
      fputc((int)cp, fp);
    }
  }
  fputc('"', fp);
}

/* Text files are written whole or not at all (whole_file.h), as npy_write does for the arrays. */
static FILE *open_tmp(const char *path, char **tmp) {
  FILE *fp = whole_file_open(path, tmp);
  if (!fp) io_error(path, strerror(errno));
  return fp;
}

static int commit_tmp(FILE *fp, char *tmp, const char *path) {
  int failed = whole_file_commit(fp, tmp, path, 0);
  return failed ? io_error(path, strerror(failed)) : 0;
}

static int write_identifiers_file(const char *path, const data_meta *meta) {
  char *tmp;
  FILE *fp = open_tmp(path, &tmp);
  if (!fp) return 1;
  fputc('[', fp);
  for (int64_t i = 0; i < meta->num_puzzle_identifiers; i++) {
    if (i) fputs(", ", fp);
    json_string_out(fp, meta->identifier_names[i]);
  }
  fputc(']', fp);
  return commit_tmp(fp, tmp, path);
}

int data_write_identifiers(const char *dir, const data_meta *meta) {
  char path[4200];
  if (data_make_dir(dir)) return 1;
  if (!join_path(path, sizeof path, dir, "identifiers.json")) return io_error(dir, "path too long");
  return write_identifiers_file(path, meta);
}

static int write_array(const char *dir, const char *file, npy_dtype dtype, int ndim,
                       const int64_t *shape, const int64_t *values) {
  char path[4200], err[4400];
  if (!join_path(path, sizeof path, dir, file)) return io_error(dir, "path too long");
  if (npy_write(path, dtype, ndim, shape, values, err, sizeof err) != 0) {
    fprintf(stderr, "trm: data: %s\n", err);
    return 1;
  }
  return 0;
}

static int write_tokens(const char *dir, const char *file, const uint8_t *tokens, int64_t rows, int cols) {
  size_t count = (size_t)rows * (size_t)cols;
  int64_t *wide = malloc((count ? count : 1) * sizeof(int64_t));
  if (!wide) return io_error(dir, "out of memory");
  for (size_t i = 0; i < count; i++) wide[i] = tokens[i];
  int64_t shape[2] = {rows, cols};
  int rc = write_array(dir, file, NPY_UINT8, 2, shape, wide);
  free(wide);
  return rc;
}

int data_split_write(const data_split *split, const char *dir, const char *name, const data_meta *meta) {
  char sub[4200];
  if (!join_path(sub, sizeof sub, dir, name)) return io_error(dir, "path too long");
  if (split->oom) return io_error(sub, "out of memory");
  if (data_make_dir(sub)) return 1;

  /* dataset.json, which every reader opens first, goes last: until the whole split is written
   * the folder has none, so a failed or interrupted run never leaves a split that passes for
   * complete (say, with new inputs and the labels of an earlier run) */
  char path[4300], *tmp;
  if (!join_path(path, sizeof path, sub, "dataset.json")) return io_error(sub, "path too long");
  if (remove(path) != 0 && errno != ENOENT) return io_error(path, strerror(errno));
  char ratings_path[4300];
  if (!join_path(ratings_path, sizeof ratings_path, sub, "ratings.npy")) return io_error(sub, "path too long");
  if (!split->ratings && remove(ratings_path) != 0 && errno != ENOENT)  /* an earlier set's */
    return io_error(ratings_path, strerror(errno));

  char identifiers_path[4300];
  if (!join_path(identifiers_path, sizeof identifiers_path, sub, "identifiers.json")) return io_error(sub, "path too long");
  if (write_identifiers_file(identifiers_path, meta)) return 1;
  if (write_tokens(sub, "all__inputs.npy", split->inputs, split->examples, split->seq_len) ||
      write_tokens(sub, "all__labels.npy", split->labels, split->examples, split->seq_len))
    return 1;
  int64_t n_puzzles = split->puzzles, n_pidx = split->puzzles + 1, n_gidx = split->groups + 1;
  static const int64_t none = 0;
  if (write_array(sub, "all__puzzle_identifiers.npy", NPY_INT32, 1, &n_puzzles,
                  split->puzzles ? split->puzzle_identifiers : &none) ||
      write_array(sub, "all__puzzle_indices.npy", NPY_INT32, 1, &n_pidx, split->puzzle_indices) ||
      write_array(sub, "all__group_indices.npy", NPY_INT32, 1, &n_gidx, split->group_indices))
    return 1;
  if (split->ratings) {
    int64_t n = split->examples;
    if (write_array(sub, "ratings.npy", NPY_INT32, 1, &n, split->examples ? split->ratings : &none)) return 1;
  }

  FILE *fp = open_tmp(path, &tmp);
  if (!fp) return 1;
  char mean[64];
  python_float(split->puzzles ? (double)split->examples / (double)split->puzzles : 0.0, mean, sizeof mean);
  /* the field order and separators of the reference's json.dump(PuzzleDatasetMetadata) */
  fprintf(fp,
          "{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": %d, "
          "\"seq_len\": %d, \"num_puzzle_identifiers\": %lld, \"total_groups\": %lld, "
          "\"mean_puzzle_examples\": %s, \"total_puzzles\": %lld, \"sets\": [\"all\"]}",
          meta->vocab_size, split->seq_len, (long long)meta->num_puzzle_identifiers,
          (long long)split->groups, mean, (long long)split->puzzles);
  return commit_tmp(fp, tmp, path);
}

/* ---- arguments ---- */

int data_usage_error(const char *cmd, const char *fmt, ...) {
  fprintf(stderr, "%s: ", cmd);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see '%s --help')\n", cmd);
  return 2;
}

int data_args_next(data_args *args, bool (*takes_value)(const char *flag)) {
  static char flag_buf[64];
  if (args->index >= args->argc) return 0;
  const char *arg = args->argv[args->index++];
  args->value = NULL;
  if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
    data_usage_error(args->cmd, "unexpected argument '%s'", arg);
    return -1;
  }
  const char *eq = strchr(arg, '=');
  if (eq) {
    size_t len = (size_t)(eq - arg);
    if (len >= sizeof flag_buf) {
      data_usage_error(args->cmd, "unknown option '%s'", arg);
      return -1;
    }
    memcpy(flag_buf, arg, len);
    flag_buf[len] = '\0';
    args->flag = flag_buf;
  } else {
    args->flag = arg;
  }
  if (takes_value(args->flag)) {
    if (eq) args->value = eq + 1;
    else if (args->index < args->argc) args->value = args->argv[args->index++];
    else {
      data_usage_error(args->cmd, "%s needs a value", args->flag);
      return -1;
    }
  } else if (eq) {
    data_usage_error(args->cmd, "%s takes no value", args->flag);
    return -1;
  }
  return 1;
}

bool data_parse_int(const data_args *args, int64_t lo, int64_t hi, int64_t *out) {
  const char *s = args->value;
  char *end = NULL;
  errno = 0;
  bool digit_first = (s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9');
  long long v = digit_first ? strtoll(s, &end, 10) : 0;
  if (!digit_first || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
    data_usage_error(args->cmd, "%s needs an integer from %lld to %lld, got '%s'", args->flag,
                     (long long)lo, (long long)hi, s);
    return false;
  }
  *out = v;
  return true;
}

bool data_parse_double(const data_args *args, double lo, double hi, double *out) {
  const char *s = args->value;
  char *end;
  double v = strtod(s, &end);
  if (s[0] == '\0' || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
    data_usage_error(args->cmd, "%s needs a number from %g to %g, got '%s'", args->flag, lo, hi, s);
    return false;
  }
  *out = v;
  return true;
}

bool data_parse_range(const data_args *args, int64_t lo, int64_t hi, int64_t *a, int64_t *b) {
  const char *s = args->value;
  char *end;
  bool ok = s[0] >= '0' && s[0] <= '9';
  long long x = ok ? strtoll(s, &end, 10) : 0, y = 0;
  if (ok && *end == '-' && end[1] >= '0' && end[1] <= '9') y = strtoll(end + 1, &end, 10);
  else if (ok && *end == '\0') y = x;  /* a single number is the range N-N */
  else ok = false;
  if (!ok || *end != '\0' || x < lo || y > hi || x > y) {
    data_usage_error(args->cmd, "%s needs A-B with %lld <= A <= B <= %lld, got '%s'", args->flag,
                     (long long)lo, (long long)hi, s);
    return false;
  }
  *a = x;
  *b = y;
  return true;
}

bool data_parse_seed(const data_args *args, uint64_t *out) {
  const char *s = args->value;
  char *end = NULL;
  bool ok = s[0] >= '0' && s[0] <= '9';
  unsigned long long v = ok ? strtoull(s, &end, 10) : 0;
  if (!ok || *end != '\0' || (v == ~0ULL && strcmp(s, "18446744073709551615") != 0)) {
    data_usage_error(args->cmd, "--seed needs an integer from 0 to 18446744073709551615, got '%s'", s);
    return false;
  }
  *out = v;
  return true;
}
