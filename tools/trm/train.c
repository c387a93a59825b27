/* trm train DATA_DIR -o MODEL: trains a TRM on a data set in the reference layout (TRM-SPEC.md
 * section 8) with libtrm's trainer (include/trm.h, "Training"). Reading the data set's .npy files
 * is this tool's job; the library takes arrays. Shows progress, evaluates on the test split with
 * the inference library (EMA weights, every puzzle run for halt_max_steps steps), writes
 * checkpoints, and on Ctrl-C stops after the current step and saves. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/npy.h"
#include "cli.h"
#include "commands.h"

static const char *const CMD = "train";

static const char usage[] =
    "usage: trm train DATA_DIR -o MODEL [options]\n"
    "\n"
    "Trains a Tiny Recursive Model on DATA_DIR/train (dataset.json and all__*.npy, as the reference\n"
    "code and `trm data` write them) and writes MODEL, a libtrm model file of the EMA weights.\n"
    "\n"
    "model (a new one; seq_len, vocab_size and num_puzzle_identifiers come from the data):\n"
    "  --config FILE        key = value lines (model keys and training options, see trm(1))\n"
    "  --hidden N           hidden size (default 128)\n"
    "  --heads N            attention heads (default 4; ignored with --mlp-t)\n"
    "  --layers N           layers of the tiny network (default 2)\n"
    "  --H-cycles N         H cycles per supervision step (default 2)\n"
    "  --L-cycles N         L cycles per H cycle (default 3)\n"
    "  --mlp-t              token MLP instead of attention (fixed-size puzzles such as Sudoku)\n"
    "  --expansion X        SwiGLU width factor (default 4)\n"
    "  --puzzle-emb-ndim N  puzzle-embedding width (default: 0 with one identifier, else hidden)\n"
    "  --halt-max-steps N   supervision steps per sample at most (default 16)\n"
    "  --init MODEL         start from a model file's weights instead\n"
    "  --resume CKPT        continue a checkpoint exactly (same data)\n"
    "\n"
    "how long (the first reached ends training; default --epochs 1):\n"
    "  --steps N            until the trainer has run N steps in all\n"
    "  --epochs E           until E times the training samples have been drawn (this run)\n"
    "  --minutes M          until M minutes of wall time have passed\n"
    "\n"
    "training:\n"
    "  --batch B            samples trained together (default 64)\n"
    "  --lr X               learning rate (default 1e-3)\n"
    "  --warmup N           warm-up steps (default 100)\n"
    "  --weight-decay X     decoupled weight decay (default 0.1)\n"
    "  --ema X              EMA rate, 0 = off (default 0.999)\n"
    "  --optimizer NAME     adam_atan2 (default) or adamw\n"
    "  --halt-exploration P probability of a random minimum number of steps (default 0.1)\n"
    "  --no-augment         no on-the-fly augmentation (default: Sudoku shuffles, maze dihedral)\n"
    "  --threads N          worker threads, 0 = one per CPU (default 1); results do not depend on it\n"
    "  --seed S             seed of the weights, data order, augmentations, halting (default 0)\n"
    "\n"
    "output:\n"
    "  --checkpoint PATH    checkpoint file (default MODEL.ckpt), written at the end and on Ctrl-C\n"
    "  --checkpoint-every N also every N steps (default 0: never)\n"
    "  --eval-every N       exact accuracy on the test split every N steps (default 0: at the end)\n"
    "  --eval-limit N       test puzzles evaluated (default 1000)\n"
    "  --log-every SECONDS  progress lines when stderr is not a terminal (default 30)\n";

typedef struct {
  const char *data_dir, *out, *config, *init, *resume, *checkpoint;
  int64_t hidden, heads, layers, hcycles, lcycles, pe_ndim, halt_max, steps, batch, warmup, threads, seed;
  int64_t checkpoint_every, eval_every, eval_limit;
  double epochs, minutes, lr, weight_decay, ema, halt_exploration, expansion, log_every;
  int optimizer;
  bool mlp_t, no_augment;
  /* which were given on the command line */
  bool has_hidden, has_heads, has_layers, has_h, has_l, has_pe, has_halt, has_expansion, has_mlp_t;
  bool has_batch, has_lr, has_warmup, has_wd, has_ema, has_opt, has_expl, has_threads, has_seed;
} train_options;

static const char *const optimizer_names[] = {"adam_atan2", "adamw", NULL};

static bool parse_real(const char *opt, const char *text, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (end == text || *end || errno || !(v >= lo && v <= hi)) {
    cli_usage_error(CMD, "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, text);
    return false;
  }
  *out = v;
  return true;
}

static int parse_options(int argc, char **argv, train_options *o) {
  memset(o, 0, sizeof *o);
  o->hidden = 128, o->heads = 4, o->layers = 2, o->hcycles = 2, o->lcycles = 3, o->halt_max = 16;
  o->expansion = 4, o->batch = 64, o->lr = 1e-3, o->warmup = 100, o->weight_decay = 0.1, o->ema = 0.999;
  o->halt_exploration = 0.1, o->threads = 1, o->eval_limit = 1000, o->log_every = 30, o->pe_ndim = -1;
  cli_args args;
  cli_args_init(&args, argc, argv);
  const char *opt, *v;
  int kind;
  while ((kind = cli_args_next(&args, &opt)) != 0) {
    if (kind == 2) {
      if (!o->data_dir) o->data_dir = opt;
      else return cli_usage_error(CMD, "unexpected argument '%s'", opt);
      continue;
    }
    if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
      fputs(usage, stdout);
      return CLI_EXIT_OK;
    }
    if (!strcmp(opt, "--mlp-t") || !strcmp(opt, "--no-augment")) {
      if (!cli_args_no_value(&args, CMD, opt)) return CLI_EXIT_USAGE;
      if (!strcmp(opt, "--mlp-t")) o->mlp_t = o->has_mlp_t = true;
      else o->no_augment = true;
      continue;
    }
    static const char *const valued[] = {
        "-o", "--output", "--config", "--hidden", "--heads", "--layers", "--H-cycles", "--L-cycles", "--expansion",
        "--puzzle-emb-ndim", "--halt-max-steps", "--init", "--resume", "--steps", "--epochs", "--minutes", "--batch",
        "--lr", "--warmup", "--weight-decay", "--ema", "--optimizer", "--halt-exploration", "--threads", "--seed",
        "--checkpoint", "--checkpoint-every", "--eval-every", "--eval-limit", "--log-every", NULL};
    int which = 0;
    while (valued[which] && strcmp(valued[which], opt)) which++;
    if (!valued[which]) return cli_usage_error(CMD, "unknown option '%s'", opt);
    if (!(v = cli_args_value(&args, CMD, opt))) return CLI_EXIT_USAGE;
    bool ok = true;
    switch (which) {
      case 0: case 1: o->out = v; break;
      case 2: o->config = v; break;
      case 3: ok = cli_parse_int(CMD, opt, v, 1, 65536, &o->hidden), o->has_hidden = true; break;
      case 4: ok = cli_parse_int(CMD, opt, v, 1, 4096, &o->heads), o->has_heads = true; break;
      case 5: ok = cli_parse_int(CMD, opt, v, 1, 256, &o->layers), o->has_layers = true; break;
      case 6: ok = cli_parse_int(CMD, opt, v, 1, 256, &o->hcycles), o->has_h = true; break;
      case 7: ok = cli_parse_int(CMD, opt, v, 1, 256, &o->lcycles), o->has_l = true; break;
      case 8: ok = parse_real(opt, v, 0.01, 64, &o->expansion), o->has_expansion = true; break;
      case 9: ok = cli_parse_int(CMD, opt, v, 0, 65536, &o->pe_ndim), o->has_pe = true; break;
      case 10: ok = cli_parse_int(CMD, opt, v, 1, 1024, &o->halt_max), o->has_halt = true; break;
      case 11: o->init = v; break;
      case 12: o->resume = v; break;
      case 13: ok = cli_parse_int(CMD, opt, v, 1, INT64_MAX / 4, &o->steps); break;
      case 14: ok = parse_real(opt, v, 1e-9, 1e9, &o->epochs); break;
      case 15: ok = parse_real(opt, v, 1e-6, 1e7, &o->minutes); break;
      case 16: ok = cli_parse_int(CMD, opt, v, 1, 65536, &o->batch), o->has_batch = true; break;
      case 17: ok = parse_real(opt, v, 0, 1e3, &o->lr), o->has_lr = true; break;
      case 18: ok = cli_parse_int(CMD, opt, v, 0, INT64_MAX / 4, &o->warmup), o->has_warmup = true; break;
      case 19: ok = parse_real(opt, v, 0, 1e6, &o->weight_decay), o->has_wd = true; break;
      case 20: ok = parse_real(opt, v, 0, 0.999999999, &o->ema), o->has_ema = true; break;
      case 21: ok = (o->optimizer = cli_parse_choice(CMD, opt, v, optimizer_names)) >= 0, o->has_opt = true; break;
      case 22: ok = parse_real(opt, v, 0, 1, &o->halt_exploration), o->has_expl = true; break;
      case 23: ok = cli_parse_int(CMD, opt, v, 0, 4096, &o->threads), o->has_threads = true; break;
      case 24: ok = cli_parse_int(CMD, opt, v, 0, (int64_t)1 << 53, &o->seed), o->has_seed = true; break;
      case 25: o->checkpoint = v; break;
      case 26: ok = cli_parse_int(CMD, opt, v, 0, INT64_MAX / 4, &o->checkpoint_every); break;
      case 27: ok = cli_parse_int(CMD, opt, v, 0, INT64_MAX / 4, &o->eval_every); break;
      case 28: ok = cli_parse_int(CMD, opt, v, 0, INT64_MAX / 4, &o->eval_limit); break;
      default: ok = parse_real(opt, v, 0, 1e7, &o->log_every); break;
    }
    if (!ok) return CLI_EXIT_USAGE;
  }
  if (!o->data_dir) return cli_usage_error(CMD, "missing DATA_DIR");
  if (!o->out) return cli_usage_error(CMD, "missing -o MODEL");
  if ((o->init != NULL) + (o->resume != NULL) + (o->config != NULL) > 1)
    return cli_usage_error(CMD, "--config, --init and --resume exclude each other");
  bool model_flags = o->has_hidden || o->has_heads || o->has_layers || o->has_h || o->has_l || o->has_pe ||
                     o->has_expansion || o->has_mlp_t;
  if ((o->init || o->resume) && model_flags)
    return cli_usage_error(CMD, "the model's shape comes from %s; drop the model options", o->init ? "--init" : "--resume");
  if (!o->steps && !o->epochs && !o->minutes) o->epochs = 1;
  return -1;
}

/* ---- the data set ---- */

typedef struct {
  int64_t seq_len, vocab, ids, ignore;
  size_t count;
  int32_t *inputs, *labels, *puzzle_ids;
} split_data;

static void split_free(split_data *d) {
  free(d->inputs);
  free(d->labels);
  free(d->puzzle_ids);
  memset(d, 0, sizeof *d);
}

/* The integer value of "key" in a flat JSON object (dataset.json); false if absent or not an
 * integer (null counts as absent). */
static bool json_int(const char *text, const char *key, int64_t *out) {
  char pattern[80];
  snprintf(pattern, sizeof pattern, "\"%s\"", key);
  const char *p = strstr(text, pattern);
  if (!p) return false;
  p += strlen(pattern);
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (*p != ':') return false;
  p++;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  char *end;
  errno = 0;
  long long v = strtoll(p, &end, 10);
  if (end == p || errno || *end == '.' || *end == 'e' || *end == 'E') return false;
  *out = v;
  return true;
}

static int read_array(const char *dir, const char *name, npy_array *a) {
  char path[4400], err[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (npy_read(path, a, err, sizeof err) != 0) return cli_fail(CMD, "%s", err);
  return CLI_EXIT_OK;
}

/* Reads DATA_DIR/SPLIT; limit > 0 keeps the first limit examples. */
static int load_split(const char *data_dir, const char *split, int64_t limit, split_data *d) {
  char dir[4200], path[4400], err[512];
  memset(d, 0, sizeof *d);
  snprintf(dir, sizeof dir, "%s/%s", data_dir, split);
  struct stat info;
  if (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode)) return cli_fail(CMD, "%s: no such folder", dir);
  snprintf(path, sizeof path, "%s/dataset.json", dir);
  size_t len;
  char *text = cli_read_file(path, 1 << 20, &len, err, sizeof err);
  if (!text) return cli_fail(CMD, "%s", err);
  bool ok = json_int(text, "seq_len", &d->seq_len) && json_int(text, "vocab_size", &d->vocab);
  if (!json_int(text, "num_puzzle_identifiers", &d->ids)) d->ids = 1;
  if (!json_int(text, "ignore_label_id", &d->ignore)) d->ignore = -100;
  free(text);
  if (!ok || d->seq_len < 1 || d->vocab < 1 || d->vocab > (1 << 20) || d->ids < 1)
    return cli_fail(CMD, "%s: needs integer seq_len and vocab_size >= 1", path);
  npy_array in = {0}, lab = {0}, ids = {0}, idx = {0};
  int rc = read_array(dir, "all__inputs.npy", &in);
  if (!rc) rc = read_array(dir, "all__labels.npy", &lab);
  if (!rc) rc = read_array(dir, "all__puzzle_identifiers.npy", &ids);
  if (!rc) rc = read_array(dir, "all__puzzle_indices.npy", &idx);
  if (!rc && (in.ndim != 2 || in.shape[1] != d->seq_len || in.shape[0] < 1 || lab.ndim != 2 ||
              lab.shape[0] != in.shape[0] || lab.shape[1] != d->seq_len))
    rc = cli_fail(CMD, "%s: all__inputs.npy and all__labels.npy must both be [examples, %lld]", dir, (long long)d->seq_len);
  if (!rc && (ids.ndim != 1 || idx.ndim != 1 || idx.count != ids.count + 1 || idx.data[0] != 0 ||
              idx.data[ids.count] != in.shape[0]))
    rc = cli_fail(CMD, "%s: all__puzzle_indices.npy must run from 0 to the example count, one entry more than "
                  "all__puzzle_identifiers.npy", dir);
  if (!rc) {
    int64_t rows = in.shape[0];
    d->count = (size_t)(limit > 0 && limit < rows ? limit : rows);
    size_t n = d->count * (size_t)d->seq_len;
    d->inputs = malloc(n * sizeof *d->inputs);
    d->labels = malloc(n * sizeof *d->labels);
    d->puzzle_ids = malloc(d->count * sizeof *d->puzzle_ids);
    if (!d->inputs || !d->labels || !d->puzzle_ids) rc = cli_fail(CMD, "out of memory for %zu examples", d->count);
    for (size_t i = 0; !rc && i < n; i++) {
      int64_t a = in.data[i], b = lab.data[i];
      if (a < 0 || a >= d->vocab || b < INT32_MIN || b > INT32_MAX)
        rc = cli_fail(CMD, "%s: example %zu holds a value outside the vocabulary", dir, i / (size_t)d->seq_len);
      else d->inputs[i] = (int32_t)a, d->labels[i] = (int32_t)b;
    }
    for (int64_t p = 0, e = 0; !rc && p < ids.count; p++) {
      if (idx.data[p + 1] < idx.data[p] || ids.data[p] < 0 || ids.data[p] >= d->ids) {
        rc = cli_fail(CMD, "%s: puzzle %lld: decreasing index or identifier outside [0, %lld)", dir, (long long)p,
                      (long long)d->ids);
        break;
      }
      for (; e < idx.data[p + 1] && e < (int64_t)d->count; e++) d->puzzle_ids[e] = (int32_t)ids.data[p];
    }
  }
  npy_free(&in);
  npy_free(&lab);
  npy_free(&ids);
  npy_free(&idx);
  if (rc) split_free(d);
  return rc;
}

/* ---- evaluation: exact accuracy with the inference library, halting fixed at max steps ---- */

static int evaluate(trm_trainer *t, const split_data *test, int64_t threads, double *exact_out) {
  trm_model *m = NULL;
  trm_status st = trm_trainer_model(t, TRM_WEIGHTS_EMA, &m);
  if (st != TRM_OK) return cli_fail(CMD, "evaluation model: %s: %s", trm_status_string(st), trm_last_error());
  size_t batch = 64, seq = (size_t)test->seq_len, exact = 0;
  trm_session *s = NULL;
  int32_t *answer = malloc(seq * sizeof *answer);
  if (!answer || trm_session_create(m, batch, &s) != TRM_OK ||
      trm_session_set_option(s, TRM_OPT_THREADS, threads) != TRM_OK) {
    free(answer);
    trm_session_free(s);
    trm_model_free(m);
    return cli_fail(CMD, "evaluation: %s", trm_last_error());
  }
  for (size_t start = 0; start < test->count; start += batch) {
    size_t n = test->count - start < batch ? test->count - start : batch;
    for (size_t b = 0; b < n; b++)
      trm_session_set_input(s, b, test->inputs + (start + b) * seq, seq, test->puzzle_ids[start + b]);
    while (trm_refine(s, NULL) == TRM_OK) {
    }
    for (size_t b = 0; b < n; b++) {
      trm_session_answer(s, b, answer, NULL, seq);
      bool ok = true;
      for (size_t k = 0; k < seq && ok; k++) {
        int32_t label = test->labels[(start + b) * seq + k];
        if (label != (int32_t)test->ignore && label != -100) ok = answer[k] == label;
      }
      exact += ok;
    }
    /* the slots that got no puzzle in a short last batch keep old ones; they are not read */
  }
  free(answer);
  trm_session_free(s);
  trm_model_free(m);
  *exact_out = test->count ? (double)exact / (double)test->count : 0.0;
  return CLI_EXIT_OK;
}

/* ---- the run ---- */

static volatile sig_atomic_t interrupted = 0;
static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static int report(trm_status st, const char *what) {
  return cli_fail(CMD, "%s: %s: %s", what, trm_status_string(st), trm_last_error());
}

static void append(char *buf, size_t cap, const char *fmt, ...) CLI_PRINTF(3, 4);
static void append(char *buf, size_t cap, const char *fmt, ...) {
  size_t n = strlen(buf);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + n, cap - n, fmt, ap);
  va_end(ap);
}

static void format_time(double s, char *out, size_t cap) {
  if (!(s >= 0) || s > 1e8) snprintf(out, cap, "?");
  else if (s >= 3600) snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
  else snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

int cmd_train(int argc, char **argv) {
  train_options o;
  int rc = parse_options(argc, argv, &o);
  if (rc >= 0) return rc;
  split_data data;
  if ((rc = load_split(o.data_dir, "train", 0, &data)) != 0) return rc;
  split_data test = {0};
  char test_dir[4200];
  snprintf(test_dir, sizeof test_dir, "%s/test", o.data_dir);
  struct stat info;
  bool has_test = o.eval_limit > 0 && stat(test_dir, &info) == 0 && S_ISDIR(info.st_mode);
  if (has_test && (rc = load_split(o.data_dir, "test", o.eval_limit, &test)) != 0) {
    split_free(&data);
    return rc;
  }

  /* the trainer: from a checkpoint, a model file, or a configuration text */
  trm_trainer *t = NULL;
  trm_status st;
  char *file_text = NULL;
  if (o.resume) {
    st = trm_trainer_load_checkpoint(o.resume, &t);
    if (st != TRM_OK) rc = cli_fail(CMD, "%s: %s: %s", o.resume, trm_status_string(st), trm_last_error());
  } else if (o.init) {
    st = trm_trainer_create_from_model(o.init, NULL, &t);
    if (st != TRM_OK) rc = cli_fail(CMD, "%s: %s: %s", o.init, trm_status_string(st), trm_last_error());
  } else {
    char err[512];
    size_t len = 0;
    if (o.config && !(file_text = cli_read_file(o.config, 1 << 20, &len, err, sizeof err))) rc = cli_fail(CMD, "%s", err);
    size_t cap = len + 4096;
    char *text = rc ? NULL : malloc(cap);
    if (!rc && !text) rc = cli_fail(CMD, "out of memory");
    if (!rc) {
      text[0] = '\0';
      /* defaults, then the file, then the flags given, then what the data fixes */
      append(text, cap, "hidden_size = %lld\nnum_heads = %lld\nL_layers = %lld\nH_cycles = %lld\nL_cycles = %lld\n"
             "expansion = %.17g\nhalt_max_steps = %lld\n", (long long)o.hidden, (long long)o.heads,
             (long long)o.layers, (long long)o.hcycles, (long long)o.lcycles, o.expansion, (long long)o.halt_max);
      if (file_text) append(text, cap, "%s\n", file_text);
      if (o.has_hidden) append(text, cap, "hidden_size = %lld\n", (long long)o.hidden);
      if (o.has_heads) append(text, cap, "num_heads = %lld\n", (long long)o.heads);
      if (o.has_layers) append(text, cap, "L_layers = %lld\n", (long long)o.layers);
      if (o.has_h) append(text, cap, "H_cycles = %lld\n", (long long)o.hcycles);
      if (o.has_l) append(text, cap, "L_cycles = %lld\n", (long long)o.lcycles);
      if (o.has_expansion) append(text, cap, "expansion = %.17g\n", o.expansion);
      if (o.has_halt) append(text, cap, "halt_max_steps = %lld\n", (long long)o.halt_max);
      if (o.mlp_t) append(text, cap, "mlp_t = true\npos_encodings = none\nnum_heads = 1\n");
      bool file_pe = file_text && strstr(file_text, "puzzle_emb_ndim");
      if (o.has_pe) append(text, cap, "puzzle_emb_ndim = %lld\n", (long long)o.pe_ndim);
      else if (!file_pe && data.ids > 1) append(text, cap, "puzzle_emb_ndim = %lld\n", (long long)o.hidden);
      if (!o.has_seed && !(file_text && strstr(file_text, "seed"))) append(text, cap, "seed = 0\n");
      else if (o.has_seed) append(text, cap, "seed = %lld\n", (long long)o.seed);
      append(text, cap, "seq_len = %lld\nvocab_size = %lld\nnum_puzzle_identifiers = %lld\n", (long long)data.seq_len,
             (long long)data.vocab, (long long)data.ids);
      st = trm_trainer_create(text, &t);
      if (st != TRM_OK) rc = cli_fail(CMD, "model configuration: %s", trm_last_error());
      free(text);
    }
  }
  free(file_text);
  /* training options: the tool's defaults for a new model, the flags given always */
  bool fresh = !o.resume;
  struct {
    bool given;
    trm_train_option opt;
    double value;
  } sets[] = {
      {o.has_batch || fresh, TRM_TRAIN_BATCH, (double)o.batch},
      {o.has_lr || fresh, TRM_TRAIN_LR, o.lr},
      {o.has_warmup || fresh, TRM_TRAIN_WARMUP_STEPS, (double)o.warmup},
      {o.has_wd || fresh, TRM_TRAIN_WEIGHT_DECAY, o.weight_decay},
      {o.has_ema || fresh, TRM_TRAIN_EMA, o.ema},
      {o.has_opt, TRM_TRAIN_OPTIMIZER, (double)o.optimizer},
      {o.has_expl || fresh, TRM_TRAIN_HALT_EXPLORATION, o.halt_exploration},
      {o.has_threads || fresh, TRM_TRAIN_THREADS, (double)o.threads},
      {o.has_seed && o.init, TRM_TRAIN_SEED, (double)o.seed},
      {o.has_halt && o.init, TRM_TRAIN_HALT_MAX_STEPS, (double)o.halt_max},
      {o.no_augment, TRM_TRAIN_AUGMENT, TRM_AUGMENT_NONE},
  };
  /* a --config file's own option values win over the tool's defaults (not over flags) */
  for (size_t i = 0; !rc && i < sizeof sets / sizeof sets[0]; i++) {
    if (!sets[i].given) continue;
    bool flag_given = (sets[i].opt == TRM_TRAIN_BATCH && o.has_batch) || (sets[i].opt == TRM_TRAIN_LR && o.has_lr) ||
                      (sets[i].opt == TRM_TRAIN_WARMUP_STEPS && o.has_warmup) ||
                      (sets[i].opt == TRM_TRAIN_WEIGHT_DECAY && o.has_wd) || (sets[i].opt == TRM_TRAIN_EMA && o.has_ema) ||
                      (sets[i].opt == TRM_TRAIN_HALT_EXPLORATION && o.has_expl) ||
                      (sets[i].opt == TRM_TRAIN_THREADS && o.has_threads) || sets[i].opt == TRM_TRAIN_OPTIMIZER ||
                      sets[i].opt == TRM_TRAIN_SEED || sets[i].opt == TRM_TRAIN_HALT_MAX_STEPS ||
                      sets[i].opt == TRM_TRAIN_AUGMENT;
    if (!flag_given && o.config) continue;
    st = trm_trainer_set_option(t, sets[i].opt, sets[i].value);
    if (st != TRM_OK) rc = cli_fail(CMD, "%s", trm_last_error());
  }
  if (!rc) {
    int64_t seq = 0, vocab = 0;
    trm_trainer_info(t, "seq_len", &seq);
    trm_trainer_info(t, "vocab_size", &vocab);
    if (seq != data.seq_len || vocab != data.vocab)
      rc = cli_fail(CMD, "the data has seq_len %lld / vocab %lld, the model %lld / %lld", (long long)data.seq_len,
                    (long long)data.vocab, (long long)seq, (long long)vocab);
  }
  if (!rc) {
    int64_t model_ids = 1, pe = 0;
    trm_trainer_info(t, "num_puzzle_identifiers", &model_ids);
    trm_trainer_info(t, "puzzle_emb_ndim", &pe);
    st = trm_trainer_set_data(t, data.inputs, data.labels, pe > 0 ? data.puzzle_ids : NULL, data.count,
                              (int32_t)data.ignore);
    if (st != TRM_OK) rc = report(st, "training data");
  }
  if (rc) {
    trm_trainer_free(t);
    split_free(&data);
    split_free(&test);
    return rc;
  }

  char ckpt_default[4200];
  snprintf(ckpt_default, sizeof ckpt_default, "%s.ckpt", o.out);
  const char *ckpt = o.checkpoint ? o.checkpoint : ckpt_default;
  int64_t params = 0, start_step = 0, batch = 0;
  double dbatch = 0;
  trm_trainer_info(t, "param_count", &params);
  trm_trainer_info(t, "step", &start_step);
  trm_trainer_get_option(t, TRM_TRAIN_BATCH, &dbatch);
  batch = (int64_t)dbatch;
  fprintf(stderr, "trm train: %zu training samples, %zu test puzzles, %lld parameters, batch %lld%s\n", data.count,
          test.count, (long long)params, (long long)batch, o.resume ? ", resumed" : "");

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  bool tty = isatty(STDERR_FILENO);
  double started = cli_now(), last_print = started;
  uint64_t start_samples = 0;
  {
    int64_t s;
    trm_trainer_info(t, "samples", &s);
    start_samples = (uint64_t)s;
  }
  /* figures averaged since the last progress line */
  double sum_loss = 0, sum_tok = 0, sum_exact = 0, sum_q = 0, sum_hexact = 0, sum_hsteps = 0;
  size_t n_sum = 0, halted_sum = 0;
  int64_t steps_at_print = start_step;
  trm_train_metrics m = TRM_TRAIN_METRICS_INIT;
  int64_t step = start_step;
  for (;;) {
    double elapsed = cli_now() - started;
    double epochs_done = (double)(m.samples > start_samples ? m.samples - start_samples : 0) / (double)data.count;
    if (interrupted) break;
    if (o.steps && step >= o.steps) break;
    if (o.epochs && epochs_done >= o.epochs) break;
    if (o.minutes && elapsed >= o.minutes * 60) break;
    st = trm_trainer_step(t, &m);
    if (st != TRM_OK) {
      rc = report(st, "step");
      break;
    }
    step = m.step;
    sum_loss += m.loss, sum_tok += m.token_accuracy, sum_exact += m.exact_accuracy, sum_q += m.q_halt_accuracy;
    sum_hexact += m.halted_exact_accuracy * (double)m.halted, sum_hsteps += m.halted_mean_steps * (double)m.halted;
    halted_sum += m.halted;
    n_sum++;
    double now = cli_now();
    bool last = (o.steps && step >= o.steps);
    if ((tty && now - last_print >= 0.5) || (!tty && now - last_print >= o.log_every) || last) {
      double rate = (double)(step - steps_at_print) / (now - last_print);
      double remaining = -1;
      elapsed = now - started;
      epochs_done = (double)(m.samples - start_samples) / (double)data.count;
      if (o.steps) remaining = (double)(o.steps - step) / rate;
      if (o.minutes) remaining = fmin(remaining < 0 ? 1e30 : remaining, o.minutes * 60 - elapsed);
      if (o.epochs && epochs_done > 0) remaining = fmin(remaining < 0 ? 1e30 : remaining, elapsed * (o.epochs / epochs_done - 1));
      char eta[32];
      format_time(remaining, eta, sizeof eta);
      double k = (double)n_sum;
      fprintf(stderr,
              "%sstep %lld  epoch %.2f  loss %.4f  token %.3f  exact %.3f  q_halt %.3f  halted exact %.3f  steps %.1f  "
              "%.2f steps/s  %.1f samples/s  ETA %s%s",
              tty ? "\r\033[K" : "", (long long)step, m.epoch, sum_loss / k, sum_tok / k, sum_exact / k, sum_q / k,
              halted_sum ? sum_hexact / (double)halted_sum : 0.0, halted_sum ? sum_hsteps / (double)halted_sum : 0.0,
              rate, rate * (double)batch, eta, tty ? "" : "\n");
      fflush(stderr);
      last_print = now;
      steps_at_print = step;
      sum_loss = sum_tok = sum_exact = sum_q = sum_hexact = sum_hsteps = 0;
      n_sum = halted_sum = 0;
    }
    if (o.checkpoint_every && step % o.checkpoint_every == 0) {
      if ((st = trm_trainer_save_checkpoint(t, ckpt)) != TRM_OK) {
        rc = report(st, "checkpoint");
        break;
      }
    }
    if (has_test && o.eval_every && step % o.eval_every == 0) {
      double exact;
      if ((rc = evaluate(t, &test, o.threads, &exact)) != 0) break;
      fprintf(stderr, "%seval step %lld: exact %.4f on %zu test puzzles\n", tty ? "\r\033[K" : "", (long long)step,
              exact, test.count);
    }
  }
  if (tty) fputc('\n', stderr);
  if (interrupted) fprintf(stderr, "trm train: interrupted at step %lld; saving\n", (long long)step);
  if ((st = trm_trainer_save_checkpoint(t, ckpt)) != TRM_OK && !rc) rc = report(st, "checkpoint");
  if ((st = trm_trainer_save_model(t, o.out, TRM_WEIGHTS_EMA)) != TRM_OK && !rc) rc = report(st, "model");
  if (!rc) {
    fprintf(stderr, "trm train: step %lld, %.1f minutes; model %s, checkpoint %s\n", (long long)step,
            (cli_now() - started) / 60, o.out, ckpt);
    if (has_test) {
      double exact;
      if ((rc = evaluate(t, &test, o.threads, &exact)) == 0)
        fprintf(stderr, "eval step %lld: exact %.4f on %zu test puzzles\n", (long long)step, exact, test.count);
    }
  }
  trm_trainer_free(t);
  split_free(&data);
  split_free(&test);
  return rc;
}
