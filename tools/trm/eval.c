/* trm eval MODEL DATA_DIR: runs every example of a data set in the reference layout
 * (TRM-SPEC.md section 8) and reports accuracy per supervision step, how well the halting head
 * predicts exactness, and speed. Batches are refilled: when a slot halts its results are
 * recorded and it takes the next example at once, so no slot idles while work remains. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/npy.h"
#include "cli.h"
#include "commands.h"

static const char *const CMD = "eval";

static const char usage[] =
    "usage: trm eval MODEL DATA_DIR [options]\n"
    "\n"
    "Evaluates MODEL on DATA_DIR/SPLIT (dataset.json, all__inputs.npy, all__labels.npy,\n"
    "all__puzzle_identifiers.npy, all__puzzle_indices.npy, as the reference code writes them)\n"
    "and reports token accuracy, exact accuracy, exact accuracy if stopped after each\n"
    "supervision step, mean steps used, how well the halting head (q_halt > 0) predicts an exact\n"
    "answer, and puzzles per second. Label positions equal to dataset.json's ignore_label_id\n"
    "(or -100) are not scored.\n"
    "\n"
    "options:\n"
    "  --split NAME       the subfolder to evaluate (default test)\n"
    "  --limit N          only the first N examples\n"
    "  --batch B          puzzles run together (default 32)\n"
    "  --threads N        worker threads, 0 = one per CPU (default 1)\n"
    "  --max-steps N      supervision steps at most (default: the model's halt_max_steps)\n"
    "  --halt fixed|q     stop after max steps (default), or also once q_halt > 0\n"
    "  --json             one JSON object with every metric on standard output\n";

static const char *const halt_names[] = {"fixed", "q", NULL};

typedef struct {
  const char *model_path, *data_dir, *split;
  int64_t limit, batch, threads, max_steps;
  int halt;
  bool json;
} eval_options;

static int parse_options(int argc, char **argv, eval_options *o) {
  memset(o, 0, sizeof *o);
  o->split = "test";
  o->batch = 32;
  o->threads = 1;
  o->halt = TRM_HALT_FIXED;
  cli_args args;
  cli_args_init(&args, argc, argv);
  const char *opt, *value;
  int kind;
  while ((kind = cli_args_next(&args, &opt)) != 0) {
    if (kind == 2) {
      if (!o->model_path) o->model_path = opt;
      else if (!o->data_dir) o->data_dir = opt;
      else return cli_usage_error(CMD, "unexpected argument '%s'", opt);
      continue;
    }
    if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
      fputs(usage, stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(opt, "--json") == 0) {
      if (!cli_args_no_value(&args, CMD, opt)) return CLI_EXIT_USAGE;
      o->json = true;
      continue;
    }
    bool known = strcmp(opt, "--split") == 0 || strcmp(opt, "--limit") == 0 || strcmp(opt, "--batch") == 0 ||
                 strcmp(opt, "--threads") == 0 || strcmp(opt, "--max-steps") == 0 || strcmp(opt, "--halt") == 0;
    if (!known) return cli_usage_error(CMD, "unknown option '%s'", opt);
    if (!(value = cli_args_value(&args, CMD, opt))) return CLI_EXIT_USAGE;
    if (strcmp(opt, "--split") == 0) {
      if (!*value || strchr(value, '/')) return cli_usage_error(CMD, "--split: expected a folder name, got '%s'", value);
      o->split = value;
    } else if (strcmp(opt, "--limit") == 0) {
      if (!cli_parse_int(CMD, opt, value, 1, INT64_MAX / 2, &o->limit)) return CLI_EXIT_USAGE;
    } else if (strcmp(opt, "--batch") == 0) {
      if (!cli_parse_int(CMD, opt, value, 1, 65536, &o->batch)) return CLI_EXIT_USAGE;
    } else if (strcmp(opt, "--threads") == 0) {
      if (!cli_parse_int(CMD, opt, value, 0, 4096, &o->threads)) return CLI_EXIT_USAGE;
    } else if (strcmp(opt, "--max-steps") == 0) {
      if (!cli_parse_int(CMD, opt, value, 1, 1000000, &o->max_steps)) return CLI_EXIT_USAGE;
    } else {
      if ((o->halt = cli_parse_choice(CMD, opt, value, halt_names)) < 0) return CLI_EXIT_USAGE;
    }
  }
  if (!o->model_path) return cli_usage_error(CMD, "missing MODEL");
  if (!o->data_dir) return cli_usage_error(CMD, "missing DATA_DIR");
  return -1;
}

/* ---- dataset.json: a flat JSON object; the integer fields are read, everything else is
 * checked for well-formedness and skipped ---- */

typedef struct {
  const char *start, *p, *end;
  char err[160];
} json_scan;

static bool scan_fail(json_scan *s, const char *what) {
  snprintf(s->err, sizeof s->err, "byte %ld: %s", (long)(s->p - s->start), what);
  return false;
}

static void scan_space(json_scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* A string; its decoded text (escapes other than \" and \\ kept as they are: keys are plain
 * ASCII) goes to out when out is not NULL. */
static bool scan_string(json_scan *s, char *out, size_t cap) {
  if (s->p >= s->end || *s->p != '"') return scan_fail(s, "expected a string");
  s->p++;
  size_t n = 0;
  while (s->p < s->end && *s->p != '"') {
    char c = *s->p++;
    if ((unsigned char)c < 0x20) return scan_fail(s, "control character in a string");
    if (c == '\\') {
      if (s->p >= s->end) break;
      c = *s->p++;
      if (!strchr("\"\\/bfnrtu", c)) return scan_fail(s, "bad escape in a string");
    }
    if (out && n + 1 < cap) out[n++] = c;
  }
  if (s->p >= s->end) return scan_fail(s, "unterminated string");
  s->p++;
  if (out) out[n] = '\0';
  return true;
}

/* A number: *is_int tells whether it is an integer that fits in int64 (then *value holds it). */
static bool scan_number(json_scan *s, bool *is_int, int64_t *value) {
  const char *q = s->p;
  bool negative = q < s->end && *q == '-';
  if (negative) q++;
  if (q >= s->end || *q < '0' || *q > '9') return scan_fail(s, "expected a value");
  int64_t v = 0;
  bool fits = true;
  while (q < s->end && *q >= '0' && *q <= '9') {
    if (v > (INT64_MAX - 9) / 10) fits = false;
    else v = v * 10 + (*q - '0');
    q++;
  }
  bool fraction = false;
  if (q < s->end && *q == '.') {
    fraction = true;
    q++;
    if (q >= s->end || *q < '0' || *q > '9') return scan_fail(s, "malformed number");
    while (q < s->end && *q >= '0' && *q <= '9') q++;
  }
  if (q < s->end && (*q == 'e' || *q == 'E')) {
    fraction = true;
    q++;
    if (q < s->end && (*q == '+' || *q == '-')) q++;
    if (q >= s->end || *q < '0' || *q > '9') return scan_fail(s, "malformed number");
    while (q < s->end && *q >= '0' && *q <= '9') q++;
  }
  s->p = q;
  *is_int = fits && !fraction;
  *value = negative ? -v : v;
  return true;
}

static bool scan_word(json_scan *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return scan_fail(s, "expected a value");
  s->p += n;
  return true;
}

static bool scan_value(json_scan *s, int depth) {
  scan_space(s);
  if (depth > 32) return scan_fail(s, "nested too deeply");
  if (s->p >= s->end) return scan_fail(s, "unexpected end");
  char c = *s->p;
  if (c == '"') return scan_string(s, NULL, 0);
  if (c == 't') return scan_word(s, "true");
  if (c == 'f') return scan_word(s, "false");
  if (c == 'n') return scan_word(s, "null");
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    s->p++;
    scan_space(s);
    if (s->p < s->end && *s->p == close) {
      s->p++;
      return true;
    }
    for (;;) {
      if (c == '{') {
        scan_space(s);
        if (!scan_string(s, NULL, 0)) return false;
        scan_space(s);
        if (s->p >= s->end || *s->p != ':') return scan_fail(s, "expected ':'");
        s->p++;
      }
      if (!scan_value(s, depth + 1)) return false;
      scan_space(s);
      if (s->p < s->end && *s->p == ',') {
        s->p++;
        continue;
      }
      if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
      }
      return scan_fail(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  bool is_int;
  int64_t v;
  return scan_number(s, &is_int, &v);
}

typedef struct {
  int64_t seq_len, vocab_size, num_puzzle_identifiers;
  bool has_seq_len, has_vocab, has_ids;
  bool has_ignore;       /* ignore_label_id is an integer (not null or absent) */
  int64_t ignore_label_id;
} dataset_meta;

/* Parses dataset.json's text; false with a message (no file name) in s->err. */
static bool parse_meta(const char *text, size_t len, dataset_meta *meta, json_scan *s) {
  memset(meta, 0, sizeof *meta);
  s->start = s->p = text;
  s->end = text + len;
  s->err[0] = '\0';
  scan_space(s);
  if (s->p >= s->end || *s->p != '{') return scan_fail(s, "expected a JSON object");
  s->p++;
  scan_space(s);
  bool first = true;
  while (!(s->p < s->end && *s->p == '}')) {
    if (!first) {
      if (s->p >= s->end || *s->p != ',') return scan_fail(s, "expected ',' or '}'");
      s->p++;
      scan_space(s);
    }
    first = false;
    char key[64];
    if (!scan_string(s, key, sizeof key)) return false;
    scan_space(s);
    if (s->p >= s->end || *s->p != ':') return scan_fail(s, "expected ':'");
    s->p++;
    scan_space(s);
    int64_t *target = NULL;
    bool *flag = NULL, nullable = false;
    if (strcmp(key, "seq_len") == 0) target = &meta->seq_len, flag = &meta->has_seq_len;
    else if (strcmp(key, "vocab_size") == 0) target = &meta->vocab_size, flag = &meta->has_vocab;
    else if (strcmp(key, "num_puzzle_identifiers") == 0) target = &meta->num_puzzle_identifiers, flag = &meta->has_ids;
    else if (strcmp(key, "ignore_label_id") == 0) target = &meta->ignore_label_id, flag = &meta->has_ignore, nullable = true;
    if (!target) {
      if (!scan_value(s, 1)) return false;
    } else if (nullable && s->p < s->end && *s->p == 'n') {
      if (!scan_word(s, "null")) return false;
      *flag = false;
    } else {
      const char *at = s->p;
      bool is_int;
      if (!scan_number(s, &is_int, target)) return false;
      if (!is_int) {
        s->p = at;
        char what[96];
        snprintf(what, sizeof what, "\"%s\" must be an integer", key);
        return scan_fail(s, what);
      }
      *flag = true;
    }
    scan_space(s);
  }
  s->p++;
  scan_space(s);
  if (s->p != s->end) return scan_fail(s, "text after the JSON object");
  const char *missing = !meta->has_seq_len ? "seq_len" : !meta->has_vocab ? "vocab_size" : NULL;
  if (missing) {
    snprintf(s->err, sizeof s->err, "no \"%s\"", missing);
    return false;
  }
  return true;
}

/* ---- the data set ---- */

typedef struct {
  npy_array inputs, labels, identifiers, indices;
  dataset_meta meta;
  int64_t rows;              /* examples in the split */
  int64_t examples;          /* rows evaluated (after --limit) */
  int32_t *example_id;       /* puzzle identifier of each evaluated row */
  int32_t *tokens;           /* the evaluated rows as int32, for trm_session_set_input */
} dataset;

static void shape_text(const npy_array *a, char *out, size_t cap) {
  size_t n = (size_t)snprintf(out, cap, "[");
  for (int d = 0; d < a->ndim && n < cap; d++) n += (size_t)snprintf(out + n, cap - n, "%s%lld", d ? ", " : "", (long long)a->shape[d]);
  if (n < cap) snprintf(out + n, cap - n, "]");
}

static int load_array(const char *dir, const char *name, npy_array *a, char *path, size_t path_cap) {
  snprintf(path, path_cap, "%s/%s", dir, name);
  char err[512];
  if (npy_read(path, a, err, sizeof err) != 0) return cli_fail(CMD, "%s", err);
  return CLI_EXIT_OK;
}

static void dataset_free(dataset *d) {
  npy_free(&d->inputs);
  npy_free(&d->labels);
  npy_free(&d->identifiers);
  npy_free(&d->indices);
  free(d->example_id);
  free(d->tokens);
}

static int load_dataset(const eval_options *o, const trm_model *m, dataset *d) {
  int64_t seq_len = cli_model_int(m, "seq_len"), vocab = cli_model_int(m, "vocab_size");
  int64_t model_ids = cli_model_int(m, "num_puzzle_identifiers");
  bool uses_ids = cli_model_int(m, "puzzle_emb_ndim") > 0;
  char dir[4096], path[4200], shape[128], err[512];
  snprintf(dir, sizeof dir, "%s/%s", o->data_dir, o->split);
  struct stat info;
  if (stat(o->data_dir, &info) != 0) return cli_fail(CMD, "%s: %s", o->data_dir, strerror(errno));
  if (!S_ISDIR(info.st_mode)) return cli_fail(CMD, "%s: not a directory", o->data_dir);
  if (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode))
    return cli_fail(CMD, "%s: no such split folder (see --split)", dir);

  snprintf(path, sizeof path, "%s/dataset.json", dir);
  size_t len = 0;
  char *text = cli_read_file(path, 1 << 20, &len, err, sizeof err);
  if (!text) return cli_fail(CMD, "%s", err);
  json_scan scan;
  bool ok = parse_meta(text, len, &d->meta, &scan);
  free(text);
  if (!ok) return cli_fail(CMD, "%s: %s", path, scan.err);
  if (d->meta.seq_len != seq_len)
    return cli_fail(CMD, "%s: seq_len %lld, but the model takes %lld", path, (long long)d->meta.seq_len, (long long)seq_len);
  if (d->meta.vocab_size != vocab)
    return cli_fail(CMD, "%s: vocab_size %lld, but the model's is %lld", path, (long long)d->meta.vocab_size,
                    (long long)vocab);

  if (load_array(dir, "all__inputs.npy", &d->inputs, path, sizeof path)) return CLI_EXIT_FAIL;
  shape_text(&d->inputs, shape, sizeof shape);
  if (d->inputs.ndim != 2 || d->inputs.shape[1] != seq_len || d->inputs.shape[0] < 1)
    return cli_fail(CMD, "%s: shape %s, expected [examples >= 1, %lld] (seq_len)", path, shape, (long long)seq_len);
  int64_t rows = d->inputs.shape[0];
  for (int64_t i = 0; i < d->inputs.count; i++)
    if (d->inputs.data[i] < 0 || d->inputs.data[i] >= vocab)
      return cli_fail(CMD, "%s: example %lld, position %lld: token %lld outside the vocabulary [0, %lld)", path,
                      (long long)(i / seq_len), (long long)(i % seq_len), (long long)d->inputs.data[i], (long long)vocab);

  if (load_array(dir, "all__labels.npy", &d->labels, path, sizeof path)) return CLI_EXIT_FAIL;
  shape_text(&d->labels, shape, sizeof shape);
  if (d->labels.ndim != 2 || d->labels.shape[0] != rows || d->labels.shape[1] != seq_len)
    return cli_fail(CMD, "%s: shape %s, expected [%lld, %lld] like all__inputs.npy", path, shape, (long long)rows,
                    (long long)seq_len);
  for (int64_t i = 0; i < d->labels.count; i++) {
    int64_t v = d->labels.data[i];
    bool ignored = v == -100 || (d->meta.has_ignore && v == d->meta.ignore_label_id);
    if (!ignored && (v < 0 || v >= vocab))
      return cli_fail(CMD, "%s: example %lld, position %lld: label %lld is neither in [0, %lld) nor ignore_label_id", path,
                      (long long)(i / seq_len), (long long)(i % seq_len), (long long)v, (long long)vocab);
  }

  if (load_array(dir, "all__puzzle_identifiers.npy", &d->identifiers, path, sizeof path)) return CLI_EXIT_FAIL;
  shape_text(&d->identifiers, shape, sizeof shape);
  if (d->identifiers.ndim != 1 || d->identifiers.count < 1)
    return cli_fail(CMD, "%s: shape %s, expected [puzzles >= 1]", path, shape);
  int64_t puzzles = d->identifiers.count;
  for (int64_t p = 0; p < puzzles; p++) {
    int64_t id = d->identifiers.data[p];
    if (id < 0 || (uses_ids && id >= model_ids))
      return cli_fail(CMD, "%s: puzzle %lld has identifier %lld, outside the model's [0, %lld)", path, (long long)p,
                      (long long)id, (long long)model_ids);
  }

  if (load_array(dir, "all__puzzle_indices.npy", &d->indices, path, sizeof path)) return CLI_EXIT_FAIL;
  shape_text(&d->indices, shape, sizeof shape);
  if (d->indices.ndim != 1 || d->indices.count != puzzles + 1)
    return cli_fail(CMD, "%s: shape %s, expected [%lld] (one more than the puzzle identifiers)", path, shape,
                    (long long)(puzzles + 1));
  const int64_t *idx = d->indices.data;
  if (idx[0] != 0) return cli_fail(CMD, "%s: starts at %lld, expected 0", path, (long long)idx[0]);
  for (int64_t p = 0; p < puzzles; p++)
    if (idx[p + 1] < idx[p])
      return cli_fail(CMD, "%s: decreases at entry %lld (%lld after %lld)", path, (long long)(p + 1), (long long)idx[p + 1],
                      (long long)idx[p]);
  if (idx[puzzles] != rows)
    return cli_fail(CMD, "%s: ends at %lld, but all__inputs.npy has %lld examples", path, (long long)idx[puzzles],
                    (long long)rows);

  d->examples = o->limit && o->limit < rows ? o->limit : rows;
  d->example_id = malloc((size_t)d->examples * sizeof *d->example_id);
  d->tokens = malloc((size_t)(d->examples * seq_len) * sizeof *d->tokens);
  if (!d->example_id || !d->tokens) return cli_fail(CMD, "out of memory for %lld examples", (long long)d->examples);
  for (int64_t p = 0, e = 0; p < puzzles && e < d->examples; p++)
    for (; e < idx[p + 1] && e < d->examples; e++) d->example_id[e] = uses_ids ? (int32_t)d->identifiers.data[p] : 0;
  for (int64_t i = 0; i < d->examples * seq_len; i++) d->tokens[i] = (int32_t)d->inputs.data[i];
  d->rows = rows;
  npy_free(&d->inputs); /* only the int32 copy is needed from here on */
  return CLI_EXIT_OK;
}

/* ---- running ---- */

typedef struct {
  int64_t examples, scored_examples, tokens_scored, tokens_correct, exact, steps_total;
  int64_t *exact_by_step;        /* [max_steps]: scored examples exact if stopped after step k+1 */
  int64_t tp, fp, fn, tn;        /* the halting head's prediction at the final step vs exactness */
  double seconds;
} eval_totals;

/* Scores an answer against label row E: *scored positions, *correct of them. */
static void score(const dataset *d, int64_t seq_len, int64_t e, const int32_t *answer, int64_t *scored,
                  int64_t *correct) {
  const int64_t *label = d->labels.data + e * seq_len;
  *scored = *correct = 0;
  for (int64_t i = 0; i < seq_len; i++) {
    if (label[i] == -100 || (d->meta.has_ignore && label[i] == d->meta.ignore_label_id)) continue;
    (*scored)++;
    *correct += answer[i] == label[i];
  }
}

static void progress(int64_t done, int64_t total, double started, double *last_draw, bool final) {
  double now = cli_now();
  if (!final && now - *last_draw < 0.1) return;
  *last_draw = now;
  if (final) {
    fputs("\r\033[K", stderr);
    return;
  }
  enum { WIDTH = 30 };
  int filled = (int)(WIDTH * done / (total ? total : 1));
  char bar[WIDTH + 1];
  for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '#' : '.';
  bar[WIDTH] = '\0';
  double elapsed = now - started;
  fprintf(stderr, "\r[%s] %lld/%lld puzzles  %.1f/s", bar, (long long)done, (long long)total,
          elapsed > 0 ? (double)done / elapsed : 0.0);
  fflush(stderr);
}

static int run(const eval_options *o, const trm_model *m, const dataset *d, int64_t max_steps, eval_totals *t) {
  int64_t seq_len = cli_model_int(m, "seq_len");
  bool halt_on_halt_only = cli_model_int(m, "no_ACT_continue") != 0;
  size_t batch = (size_t)(o->batch < d->examples ? o->batch : d->examples);
  trm_session *s = NULL;
  int64_t *slot_example = malloc(batch * sizeof *slot_example), *slot_steps = malloc(batch * sizeof *slot_steps);
  int32_t *answer = malloc((size_t)seq_len * sizeof *answer);
  int rc = CLI_EXIT_FAIL;
  if (!slot_example || !slot_steps || !answer) {
    cli_fail(CMD, "out of memory");
    goto done;
  }
  trm_status st = trm_session_create(m, batch, &s);
  if (st == TRM_OK) st = trm_session_set_option(s, TRM_OPT_MAX_STEPS, max_steps);
  if (st == TRM_OK) st = trm_session_set_option(s, TRM_OPT_HALT, o->halt);
  if (st == TRM_OK) st = trm_session_set_option(s, TRM_OPT_THREADS, o->threads);

  int64_t next = 0, done_count = 0;
  for (size_t slot = 0; slot < batch && st == TRM_OK; slot++) {
    slot_example[slot] = next;
    slot_steps[slot] = 0;
    st = trm_session_set_input(s, slot, d->tokens + next * seq_len, (size_t)seq_len, d->example_id[next]);
    next++;
  }
  if (st != TRM_OK) {
    cli_fail(CMD, "%s: %s", trm_status_string(st), trm_last_error());
    goto done;
  }
  bool show_progress = !o->json && isatty(STDERR_FILENO);
  double started = cli_now(), last_draw = 0;
  while (done_count < d->examples) {
    trm_event ev = TRM_EVENT_INIT;
    st = trm_refine(s, &ev);
    if (st != TRM_OK) {
      cli_fail(CMD, "refining: %s: %s", trm_status_string(st), st == TRM_HALTED ? "no slot left running" : trm_last_error());
      goto done;
    }
    for (size_t slot = 0; slot < batch; slot++) {
      int64_t e = slot_example[slot], steps;
      trm_slot_state state;
      if (e < 0) continue;
      if (trm_session_slot_state(s, slot, &state, &steps) != TRM_OK || steps == slot_steps[slot]) continue;
      slot_steps[slot] = steps;
      int64_t scored, correct;
      if (trm_session_answer(s, slot, answer, NULL, (size_t)seq_len) != TRM_OK) {
        cli_fail(CMD, "reading an answer: %s", trm_last_error());
        goto done;
      }
      score(d, seq_len, e, answer, &scored, &correct);
      bool exact = scored > 0 && correct == scored;
      if (steps <= max_steps && exact) t->exact_by_step[steps - 1]++;
      if (state != TRM_SLOT_HALTED) continue;

      /* halted: final results, the later steps of the curve keep this answer, then refill */
      float q_halt, q_continue;
      trm_session_q(s, slot, &q_halt, &q_continue);
      for (int64_t k = steps; k < max_steps; k++) t->exact_by_step[k] += exact;
      t->steps_total += steps;
      if (scored > 0) {
        bool predicted = halt_on_halt_only ? q_halt > 0 : q_halt > q_continue;
        t->scored_examples++;
        t->tokens_scored += scored;
        t->tokens_correct += correct;
        t->exact += exact;
        t->tp += predicted && exact;
        t->fp += predicted && !exact;
        t->fn += !predicted && exact;
        t->tn += !predicted && !exact;
      }
      done_count++;
      if (next < d->examples) {
        slot_example[slot] = next;
        slot_steps[slot] = 0;
        st = trm_session_set_input(s, slot, d->tokens + next * seq_len, (size_t)seq_len, d->example_id[next]);
        if (st != TRM_OK) {
          cli_fail(CMD, "%s: %s", trm_status_string(st), trm_last_error());
          goto done;
        }
        next++;
      } else {
        slot_example[slot] = -1;
      }
    }
    if (show_progress) progress(done_count, d->examples, started, &last_draw, false);
  }
  if (show_progress) progress(done_count, d->examples, started, &last_draw, true);
  t->seconds = cli_now() - started;
  t->examples = done_count;
  rc = CLI_EXIT_OK;
done:
  trm_session_free(s);
  free(slot_example);
  free(slot_steps);
  free(answer);
  return rc;
}

/* ---- the report ---- */

static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : NAN; }

static void text_ratio(const char *label, int64_t a, int64_t b, const char *what) {
  if (b > 0) printf("%-18s %.4f  (%lld of %lld %s)\n", label, ratio(a, b), (long long)a, (long long)b, what);
  else printf("%-18s n/a  (no %s)\n", label, what);
}

static void report(const eval_options *o, const trm_model *m, const dataset *d, int64_t max_steps, const eval_totals *t) {
  int64_t threads = o->threads;
  bool halt_only = cli_model_int(m, "no_ACT_continue") != 0;
  const char *rule = halt_only ? "q_halt > 0" : "q_halt > q_continue";
  int64_t predicted = t->tp + t->fp, actual = t->tp + t->fn;
  double per_second = t->seconds > 0 ? (double)t->examples / t->seconds : NAN;
  if (o->json) {
    printf("{\"model\":");
    cli_json_string(stdout, o->model_path);
    printf(",\"data\":");
    cli_json_string(stdout, o->data_dir);
    printf(",\"split\":");
    cli_json_string(stdout, o->split);
    printf(",\"examples\":%lld,\"examples_in_split\":%lld,\"examples_scored\":%lld,\"tokens_scored\":%lld",
           (long long)t->examples, (long long)d->rows, (long long)t->scored_examples, (long long)t->tokens_scored);
    printf(",\"batch\":%lld,\"threads\":%lld,\"max_steps\":%lld,\"halt\":\"%s\"", (long long)o->batch, (long long)threads,
           (long long)max_steps, halt_names[o->halt]);
    printf(",\"token_accuracy\":");
    cli_json_number(stdout, ratio(t->tokens_correct, t->tokens_scored));
    printf(",\"exact_accuracy\":");
    cli_json_number(stdout, ratio(t->exact, t->scored_examples));
    printf(",\"exact_accuracy_by_step\":[");
    for (int64_t k = 0; k < max_steps; k++) {
      if (k) putchar(',');
      cli_json_number(stdout, ratio(t->exact_by_step[k], t->scored_examples));
    }
    printf("],\"mean_steps\":");
    cli_json_number(stdout, ratio(t->steps_total, t->examples));
    printf(",\"q_halt_predictor\":{\"rule\":\"%s\",\"precision\":", rule);
    cli_json_number(stdout, ratio(t->tp, predicted));
    printf(",\"recall\":");
    cli_json_number(stdout, ratio(t->tp, actual));
    printf(",\"accuracy\":");
    cli_json_number(stdout, ratio(t->tp + t->tn, t->scored_examples));
    printf(",\"true_positives\":%lld,\"false_positives\":%lld,\"false_negatives\":%lld,\"true_negatives\":%lld}",
           (long long)t->tp, (long long)t->fp, (long long)t->fn, (long long)t->tn);
    printf(",\"seconds\":");
    cli_json_number(stdout, t->seconds);
    printf(",\"puzzles_per_second\":");
    cli_json_number(stdout, per_second);
    printf("}\n");
    return;
  }
  printf("model              %s\n", o->model_path);
  printf("data               %s/%s: %lld of %lld examples, seq_len %lld, vocab %lld\n", o->data_dir, o->split,
         (long long)t->examples, (long long)d->rows, (long long)d->meta.seq_len, (long long)d->meta.vocab_size);
  printf("run                batch %lld, threads %lld, up to %lld steps, halt %s\n", (long long)o->batch,
         (long long)threads, (long long)max_steps, halt_names[o->halt]);
  text_ratio("token accuracy", t->tokens_correct, t->tokens_scored, "scored tokens");
  text_ratio("exact accuracy", t->exact, t->scored_examples, "scored examples");
  printf("exact accuracy if stopped after step k:\n");
  for (int64_t k = 0; k < max_steps; k++) {
    printf("  %4lld  ", (long long)(k + 1));
    if (t->scored_examples) printf("%.4f\n", ratio(t->exact_by_step[k], t->scored_examples));
    else printf("n/a\n");
  }
  printf("%-18s %.2f\n", "mean steps", ratio(t->steps_total, t->examples));
  printf("halting head (%s at the last step) as a predictor of an exact answer:\n", rule);
  text_ratio("  precision", t->tp, predicted, "predicted exact");
  text_ratio("  recall", t->tp, actual, "exact");
  text_ratio("  accuracy", t->tp + t->tn, t->scored_examples, "scored examples");
  printf("%-18s %.1f puzzles/s (%.3f s)\n", "speed", per_second, t->seconds);
}

int cmd_eval(int argc, char **argv) {
  eval_options o;
  int rc = parse_options(argc, argv, &o);
  if (rc >= 0) return rc;
  trm_model *m = cli_load_model(CMD, o.model_path);
  if (!m) return CLI_EXIT_FAIL;
  dataset d;
  memset(&d, 0, sizeof d);
  eval_totals t;
  memset(&t, 0, sizeof t);
  int64_t max_steps = o.max_steps ? o.max_steps : cli_model_int(m, "halt_max_steps");
  rc = load_dataset(&o, m, &d);
  if (rc == CLI_EXIT_OK) {
    t.exact_by_step = calloc((size_t)max_steps, sizeof *t.exact_by_step);
    if (!t.exact_by_step) rc = cli_fail(CMD, "out of memory");
  }
  if (rc == CLI_EXIT_OK) rc = run(&o, m, &d, max_steps, &t);
  if (rc == CLI_EXIT_OK) {
    report(&o, m, &d, max_steps, &t);
    if (fflush(stdout) != 0) rc = cli_fail(CMD, "writing the output failed");
  }
  free(t.exact_by_step);
  dataset_free(&d);
  trm_model_free(m);
  return rc;
}
