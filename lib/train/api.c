/* The public training API (include/trm.h, "Training"): trainers from a configuration text or a
 * model file, their options, data, steps and exported models. The loop is loop.c, files ckpt.c. */
#include "train.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ---- */

typedef struct option_info {
  trm_train_option opt;
  const char *key;
  double lo, hi;
  bool integral;
  bool fixed_after_start; /* only before the first step */
} option_info;

#define BIG 1e300
static const option_info options[] = {
    {TRM_TRAIN_LR, "lr", 0, BIG, false, false},
    {TRM_TRAIN_LR_MIN_RATIO, "lr_min_ratio", 0, 1, false, false},
    {TRM_TRAIN_WARMUP_STEPS, "warmup_steps", 0, 1e15, true, false},
    {TRM_TRAIN_TOTAL_STEPS, "total_steps", 0, 1e15, true, false},
    {TRM_TRAIN_WEIGHT_DECAY, "weight_decay", 0, BIG, false, false},
    {TRM_TRAIN_BETA1, "beta1", 0, 0x1.fffffffffffffp-1, false, false},
    {TRM_TRAIN_BETA2, "beta2", 0, 0x1.fffffffffffffp-1, false, false},
    {TRM_TRAIN_EPS, "eps", 0x1p-1022, BIG, false, false},
    {TRM_TRAIN_EMA, "ema", 0, 0x1.fffffffffffffp-1, false, true},
    {TRM_TRAIN_PUZZLE_EMB_LR, "puzzle_emb_lr", 0, BIG, false, false},
    {TRM_TRAIN_PUZZLE_EMB_WEIGHT_DECAY, "puzzle_emb_weight_decay", 0, BIG, false, false},
    {TRM_TRAIN_OPTIMIZER, "optimizer", 0, 1, true, true},
    {TRM_TRAIN_BATCH, "batch", 1, 65536, true, true},
    {TRM_TRAIN_THREADS, "threads", 0, 4096, true, false},
    {TRM_TRAIN_SEED, "seed", 0, 0x1p53, true, true},
    {TRM_TRAIN_HALT_EXPLORATION, "halt_exploration_prob", 0, 1, false, false},
    {TRM_TRAIN_HALT_MAX_STEPS, "halt_max_steps", 1, 1024, true, false},
    {TRM_TRAIN_AUGMENT, "augment", 0, 3, true, true},
};
#undef BIG

static const option_info *find_option(trm_train_option opt) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (options[i].opt == opt) return &options[i];
  return NULL;
}

static const option_info *find_option_key(const char *key) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (!strcmp(options[i].key, key)) return &options[i];
  return NULL;
}

static void default_options(trm_tr_options *o, int64_t halt_max_steps) {
  memset(o, 0, sizeof *o);
  o->lr = 1e-4;
  o->lr_min_ratio = 1.0;
  o->warmup_steps = 2000;
  o->weight_decay = 0.1;
  o->beta1 = 0.9;
  o->beta2 = 0.95;
  o->eps = 1e-8;
  o->ema = 0.999;
  o->puzzle_emb_lr = 1e-2;
  o->puzzle_emb_weight_decay = 0.1;
  o->optimizer = TRM_OPTIMIZER_ADAM_ATAN2;
  o->batch = 32;
  o->threads = 1;
  o->halt_exploration_prob = 0.1;
  o->halt_max_steps = halt_max_steps;
  o->augment = TRM_AUGMENT_AUTO;
}

/* The augmentation ask resolved for the configuration; -1 when it does not fit. */
static int resolve_augment(const trm_config *c, int ask) {
  bool sudoku = c->seq_len == 81 && c->vocab_size >= 11;
  int64_t side = (int64_t)llround(sqrt((double)c->seq_len));
  bool square = side > 1 && side * side == c->seq_len;
  if (ask == TRM_AUGMENT_AUTO) {
    if (sudoku && c->vocab_size == 11) return TRM_AUGMENT_SUDOKU;
    if (square && c->vocab_size == 6) return TRM_AUGMENT_DIHEDRAL;
    return TRM_AUGMENT_NONE;
  }
  if (ask == TRM_AUGMENT_SUDOKU && !sudoku) return -1;
  if (ask == TRM_AUGMENT_DIHEDRAL && !square) return -1;
  return ask;
}

static trm_status set_option(trm_trainer *t, trm_train_option opt, double value) {
  const option_info *info = find_option(opt);
  if (!info) return trm_fail(TRM_E_INVALID, "trm_trainer_set_option: unknown option %d", (int)opt);
  if (!(value >= info->lo && value <= info->hi) || (info->integral && value != floor(value)))
    return trm_fail(TRM_E_INVALID, "training option '%s': %.17g is not %s in [%g, %g]", info->key, value,
                    info->integral ? "an integer" : "a number", info->lo, info->hi);
  if (info->fixed_after_start && t->B > 0)
    return trm_fail(TRM_E_STATE, "training option '%s' cannot change once training has started", info->key);
  trm_tr_options *o = &t->opt;
  switch (opt) {
    case TRM_TRAIN_LR: o->lr = value; break;
    case TRM_TRAIN_LR_MIN_RATIO: o->lr_min_ratio = value; break;
    case TRM_TRAIN_WARMUP_STEPS: o->warmup_steps = (int64_t)value; break;
    case TRM_TRAIN_TOTAL_STEPS: o->total_steps = (int64_t)value; break;
    case TRM_TRAIN_WEIGHT_DECAY: o->weight_decay = value; break;
    case TRM_TRAIN_BETA1: o->beta1 = value; break;
    case TRM_TRAIN_BETA2: o->beta2 = value; break;
    case TRM_TRAIN_EPS: o->eps = value; break;
    case TRM_TRAIN_EMA: o->ema = value; break;
    case TRM_TRAIN_PUZZLE_EMB_LR: o->puzzle_emb_lr = value; break;
    case TRM_TRAIN_PUZZLE_EMB_WEIGHT_DECAY: o->puzzle_emb_weight_decay = value; break;
    case TRM_TRAIN_OPTIMIZER: o->optimizer = (int)value; break;
    case TRM_TRAIN_BATCH: o->batch = (int64_t)value; break;
    case TRM_TRAIN_SEED: o->seed = (uint64_t)value; break;
    case TRM_TRAIN_HALT_EXPLORATION: o->halt_exploration_prob = value; break;
    case TRM_TRAIN_HALT_MAX_STEPS:
      o->halt_max_steps = (int64_t)value;
      t->p.cfg.halt_max_steps = o->halt_max_steps; /* saved models carry it */
      break;
    case TRM_TRAIN_AUGMENT:
      if (resolve_augment(&t->p.cfg, (int)value) < 0)
        return trm_fail(TRM_E_INVALID, "augment %s does not fit seq_len %lld / vocab_size %lld",
                        (int)value == TRM_AUGMENT_SUDOKU ? "sudoku" : "dihedral", (long long)t->p.cfg.seq_len,
                        (long long)t->p.cfg.vocab_size);
      o->augment = (int)value;
      break;
    case TRM_TRAIN_THREADS: {
      int64_t old = o->threads;
      o->threads = (int64_t)value;
      if (t->ctx_ready && old != o->threads) {
        trm_status st = trm_tr_trainer_threads(t);
        if (st != TRM_OK) {
          o->threads = old;
          return st;
        }
      }
      break;
    }
  }
  return TRM_OK;
}

static double get_option(const trm_tr_options *o, trm_train_option opt) {
  switch (opt) {
    case TRM_TRAIN_LR: return o->lr;
    case TRM_TRAIN_LR_MIN_RATIO: return o->lr_min_ratio;
    case TRM_TRAIN_WARMUP_STEPS: return (double)o->warmup_steps;
    case TRM_TRAIN_TOTAL_STEPS: return (double)o->total_steps;
    case TRM_TRAIN_WEIGHT_DECAY: return o->weight_decay;
    case TRM_TRAIN_BETA1: return o->beta1;
    case TRM_TRAIN_BETA2: return o->beta2;
    case TRM_TRAIN_EPS: return o->eps;
    case TRM_TRAIN_EMA: return o->ema;
    case TRM_TRAIN_PUZZLE_EMB_LR: return o->puzzle_emb_lr;
    case TRM_TRAIN_PUZZLE_EMB_WEIGHT_DECAY: return o->puzzle_emb_weight_decay;
    case TRM_TRAIN_OPTIMIZER: return o->optimizer;
    case TRM_TRAIN_BATCH: return (double)o->batch;
    case TRM_TRAIN_THREADS: return (double)o->threads;
    case TRM_TRAIN_SEED: return (double)o->seed;
    case TRM_TRAIN_HALT_EXPLORATION: return o->halt_exploration_prob;
    case TRM_TRAIN_HALT_MAX_STEPS: return (double)o->halt_max_steps;
    case TRM_TRAIN_AUGMENT: return o->augment;
  }
  return 0;
}

/* ---- the configuration text ---- */

typedef struct parsed_line {
  char key[64];
  char value[128];
} parsed_line;

/* Splits the text into key/value lines; calls fn for each. */
typedef trm_status (*line_fn)(void *ctx, const parsed_line *line, size_t line_no);

static trm_status each_line(const char *text, line_fn fn, void *ctx) {
  size_t line_no = 0;
  for (const char *p = text; *p;) {
    const char *end = strchr(p, '\n');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    line_no++;
    const char *a = p, *b = p + len;
    const char *hash = memchr(a, '#', len);
    if (hash) b = hash;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if (a < b) {
      const char *eq = memchr(a, '=', (size_t)(b - a));
      if (!eq) return trm_fail(TRM_E_INVALID, "training config line %zu: expected 'key = value'", line_no);
      const char *ke = eq, *vs = eq + 1;
      while (ke > a && isspace((unsigned char)ke[-1])) ke--;
      while (vs < b && isspace((unsigned char)*vs)) vs++;
      parsed_line line;
      size_t kl = (size_t)(ke - a), vl = (size_t)(b - vs);
      if (kl == 0 || kl >= sizeof line.key || vl == 0 || vl >= sizeof line.value)
        return trm_fail(TRM_E_INVALID, "training config line %zu: empty or overlong key or value", line_no);
      memcpy(line.key, a, kl);
      line.key[kl] = '\0';
      memcpy(line.value, vs, vl);
      line.value[vl] = '\0';
      trm_status st = fn(ctx, &line, line_no);
      if (st != TRM_OK) return st;
    }
    p += len;
    if (*p == '\n') p++;
  }
  return TRM_OK;
}

static bool parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno == ERANGE || !isfinite(v)) return false;
  *out = v;
  return true;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end || errno == ERANGE || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static bool parse_bool(const char *s, bool *out) {
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "1")) return *out = true, true;
  if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "0")) return *out = false, true;
  return false;
}

/* An option's value from text: enum names for optimizer / augment, numbers otherwise. */
static trm_status option_value(const option_info *info, const char *text, size_t line_no, double *out) {
  if (info->opt == TRM_TRAIN_OPTIMIZER) {
    if (!strcmp(text, "adam_atan2")) return *out = TRM_OPTIMIZER_ADAM_ATAN2, TRM_OK;
    if (!strcmp(text, "adamw")) return *out = TRM_OPTIMIZER_ADAMW, TRM_OK;
    return trm_fail(TRM_E_INVALID, "training config line %zu: optimizer '%s' is not adam_atan2 or adamw", line_no, text);
  }
  if (info->opt == TRM_TRAIN_AUGMENT) {
    static const char *const names[] = {"auto", "none", "sudoku", "dihedral"};
    for (int i = 0; i < 4; i++)
      if (!strcmp(text, names[i])) return *out = i, TRM_OK;
    return trm_fail(TRM_E_INVALID, "training config line %zu: augment '%s' is not auto, none, sudoku or dihedral",
                    line_no, text);
  }
  if (!parse_double(text, out))
    return trm_fail(TRM_E_INVALID, "training config line %zu: '%s' is not a number (%s)", line_no, text, info->key);
  return TRM_OK;
}

typedef struct pending_option {
  trm_train_option opt;
  double value;
  size_t line_no;
} pending_option;

typedef struct config_parse {
  bool allow_model;  /* model keys allowed (a new model) */
  trm_config cfg;
  bool has[32];      /* which model keys were given */
  pending_option opts[64];
  size_t n_opts;
} config_parse;

static const char *const model_keys[] = {"hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len",
                                         "vocab_size", "expansion", "puzzle_emb_ndim", "puzzle_emb_len",
                                         "num_puzzle_identifiers", "pos_encodings", "mlp_t", "rms_norm_eps",
                                         "rope_theta", NULL};

static trm_status config_line(void *ctx, const parsed_line *line, size_t line_no) {
  config_parse *cp = ctx;
  const option_info *info = find_option_key(line->key);
  if (info) {
    double v;
    trm_status st = option_value(info, line->value, line_no, &v);
    if (st != TRM_OK) return st;
    for (size_t i = 0; i < cp->n_opts; i++)
      if (cp->opts[i].opt == info->opt) { /* a later line overrides */
        cp->opts[i].value = v;
        cp->opts[i].line_no = line_no;
        return TRM_OK;
      }
    cp->opts[cp->n_opts++] = (pending_option){info->opt, v, line_no};
    return TRM_OK;
  }
  size_t k = 0;
  while (model_keys[k] && strcmp(model_keys[k], line->key)) k++;
  if (!model_keys[k]) return trm_fail(TRM_E_INVALID, "training config line %zu: unknown key '%s'", line_no, line->key);
  if (!cp->allow_model)
    return trm_fail(TRM_E_INVALID, "training config line %zu: '%s' belongs to the model, which a trainer from a model file keeps",
                    line_no, line->key);
  trm_config *c = &cp->cfg;
  const char *v = line->value;
  bool ok = true;
  const int64_t big = 1 << 20;
  switch (k) {
    case 0: ok = parse_int(v, 1, 1 << 16, &c->hidden_size); break;
    case 1: ok = parse_int(v, 1, 1 << 12, &c->num_heads); break;
    case 2: ok = parse_int(v, 1, 256, &c->L_layers); break;
    case 3: ok = parse_int(v, 1, 256, &c->H_cycles); break;
    case 4: ok = parse_int(v, 1, 256, &c->L_cycles); break;
    case 5: ok = parse_int(v, 1, big, &c->seq_len); break;
    case 6: ok = parse_int(v, 1, big, &c->vocab_size); break;
    case 7: ok = parse_double(v, &c->expansion) && c->expansion > 0 && c->expansion <= 64; break;
    case 8: ok = parse_int(v, 0, 1 << 16, &c->puzzle_emb_ndim); break;
    case 9: ok = parse_int(v, 0, 1024, &c->puzzle_len); break;
    case 10: ok = parse_int(v, 1, big * 16, &c->num_puzzle_identifiers); break;
    case 11:
      if (!strcmp(v, "rope")) c->pos_encodings = TRM_POS_ROPE;
      else if (!strcmp(v, "learned")) c->pos_encodings = TRM_POS_LEARNED;
      else if (!strcmp(v, "none")) c->pos_encodings = TRM_POS_NONE;
      else ok = false;
      break;
    case 12: ok = parse_bool(v, &c->mlp_t); break;
    case 13: ok = parse_double(v, &c->rms_norm_eps) && c->rms_norm_eps > 0; break;
    default: ok = parse_double(v, &c->rope_theta) && c->rope_theta > 0; break;
  }
  if (!ok) return trm_fail(TRM_E_INVALID, "training config line %zu: bad value '%s' for %s", line_no, v, line->key);
  cp->has[k] = true;
  return TRM_OK;
}

/* ---- creation ---- */

static trm_status trainer_new(trm_trainer **out) {
  trm_trainer *t = trm_alloc_zero(1, sizeof *t);
  if (!t) return trm_fail(TRM_E_NOMEM, "out of memory for a trainer");
  t->order_epoch = UINT64_MAX;
  t->ignore_label = -100;
  default_options(&t->opt, 16);
  *out = t;
  return TRM_OK;
}

static trm_status apply_options(trm_trainer *t, const config_parse *cp) {
  for (size_t i = 0; i < cp->n_opts; i++) {
    trm_status st = set_option(t, cp->opts[i].opt, cp->opts[i].value);
    if (st != TRM_OK) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", trm_last_error());
      return trm_fail(st, "training config line %zu: %s", cp->opts[i].line_no, msg);
    }
  }
  return TRM_OK;
}

trm_status trm_trainer_create(const char *config, trm_trainer **out) {
  if (!config || !out) return trm_fail(TRM_E_INVALID, "trm_trainer_create: NULL argument");
  config_parse *cp = trm_alloc_zero(1, sizeof *cp);
  if (!cp) return trm_fail(TRM_E_NOMEM, "out of memory for a trainer");
  cp->allow_model = true;
  cp->cfg.L_layers = 2;
  cp->cfg.H_cycles = 3;
  cp->cfg.L_cycles = 6;
  cp->cfg.expansion = 4;
  cp->cfg.num_puzzle_identifiers = 1;
  cp->cfg.halt_max_steps = 16;
  cp->cfg.no_act_continue = true;
  trm_status st = each_line(config, config_line, cp);
  trm_config *c = &cp->cfg;
  if (st == TRM_OK && (!cp->has[0] || !cp->has[5] || !cp->has[6]))
    st = trm_fail(TRM_E_INVALID, "training config: hidden_size, seq_len and vocab_size are required");
  if (st == TRM_OK && !cp->has[11]) c->pos_encodings = c->mlp_t ? TRM_POS_NONE : TRM_POS_ROPE;
  if (st == TRM_OK && !cp->has[1]) {
    if (c->mlp_t) c->num_heads = 1;
    else st = trm_fail(TRM_E_INVALID, "training config: num_heads is required without mlp_t");
  }
  for (size_t i = 0; st == TRM_OK && i < cp->n_opts; i++)
    if (cp->opts[i].opt == TRM_TRAIN_HALT_MAX_STEPS) c->halt_max_steps = (int64_t)cp->opts[i].value;
  if (st == TRM_OK) st = trm_tr_config_resolve(c);
  trm_trainer *t = NULL;
  if (st == TRM_OK) st = trainer_new(&t);
  if (st == TRM_OK) {
    t->opt.halt_max_steps = c->halt_max_steps;
    t->expansion_known = true;
    if ((st = trm_tr_params_alloc(c, &t->p)) != TRM_OK) {
      trm_release(t);
      t = NULL;
    }
  }
  if (st == TRM_OK) st = apply_options(t, cp);
  if (st == TRM_OK) trm_tr_params_init_random(&t->p, t->opt.seed);
  trm_release(cp);
  if (st != TRM_OK) {
    trm_tr_trainer_destroy(t);
    return st;
  }
  *out = t;
  return TRM_OK;
}

trm_status trm_trainer_create_from_model(const char *model_path, const char *opts, trm_trainer **out) {
  if (!model_path || !out) return trm_fail(TRM_E_INVALID, "trm_trainer_create_from_model: NULL argument");
  config_parse *cp = trm_alloc_zero(1, sizeof *cp);
  if (!cp) return trm_fail(TRM_E_NOMEM, "out of memory for a trainer");
  trm_status st = opts ? each_line(opts, config_line, cp) : TRM_OK;
  trm_trainer *t = NULL;
  if (st == TRM_OK) st = trainer_new(&t);
  if (st == TRM_OK) {
    if ((st = trm_tr_params_load(model_path, &t->p)) != TRM_OK) {
      trm_release(t);
      t = NULL;
    }
  }
  if (st == TRM_OK) {
    t->opt.halt_max_steps = t->p.cfg.halt_max_steps;
    t->expansion_known = t->p.cfg.expansion > 0;
    st = apply_options(t, cp);
  }
  trm_release(cp);
  if (st != TRM_OK) {
    trm_tr_trainer_destroy(t);
    return st;
  }
  *out = t;
  return TRM_OK;
}

static void release_slots(trm_trainer *t) {
  trm_release(t->grad);
  trm_release(t->m);
  trm_release(t->v);
  trm_release(t->ema);
  trm_tr_dense_view_free(&t->g);
  trm_tr_work_free(&t->work);
  trm_release(t->y);
  trm_release(t->z);
  trm_release(t->slot_tokens);
  trm_release(t->slot_labels);
  trm_release(t->slot_ids);
  trm_release(t->slot_steps);
  trm_release(t->slot_halted);
  trm_release(t->exact);
  trm_release(t->aug_scratch);
  t->grad = t->m = t->v = t->ema = t->y = t->z = NULL;
  t->slot_tokens = t->slot_labels = t->slot_ids = t->slot_steps = t->aug_scratch = NULL;
  t->slot_halted = t->exact = NULL;
  t->B = 0;
}

void trm_tr_trainer_destroy(trm_trainer *t) {
  if (!t) return;
  release_slots(t);
  if (t->ctx_ready) trm_tr_ctx_free(&t->ctx);
  trm_tr_params_free(&t->p);
  trm_release(t->inputs);
  trm_release(t->labels);
  trm_release(t->ids);
  trm_release(t->order);
  trm_release(t);
}

void trm_trainer_free(trm_trainer *t) { trm_tr_trainer_destroy(t); }

trm_status trm_tr_trainer_threads(trm_trainer *t) {
  trm_tr_ctx fresh;
  trm_status st = trm_tr_ctx_init(&fresh, (size_t)t->opt.threads);
  if (st != TRM_OK) return st;
  if (t->ctx_ready) trm_tr_ctx_free(&t->ctx);
  t->ctx = fresh;
  t->ctx_ready = true;
  return TRM_OK;
}

trm_status trm_tr_trainer_prepare(trm_trainer *t) {
  if (t->B > 0) return TRM_OK;
  trm_status st = TRM_OK;
  if (!t->ctx_ready && (st = trm_tr_trainer_threads(t)) != TRM_OK) return st;
  const trm_config *c = &t->p.cfg;
  size_t B = (size_t)t->opt.batch, S = (size_t)c->state_len, D = (size_t)c->hidden_size;
  size_t seq = (size_t)c->seq_len, n = t->p.floats;
  t->grad = trm_alloc_zero(n, sizeof(float));
  t->m = trm_alloc_zero(n, sizeof(float));
  t->v = trm_alloc_zero(n, sizeof(float));
  bool ok = t->grad && t->m && t->v;
  if (ok && t->opt.ema > 0) {
    ok = (t->ema = trm_alloc(n * sizeof(float))) != NULL;
    if (ok) memcpy(t->ema, t->p.w.data, n * sizeof(float)); /* the reference's EMA starts at the weights */
  }
  size_t state_floats = 0;
  ok = ok && trm_mul_ok(B * S, D, &state_floats);
  if (ok) {
    t->y = trm_alloc_zero(state_floats, sizeof(float));
    t->z = trm_alloc_zero(state_floats, sizeof(float));
    t->slot_tokens = trm_alloc_zero(B * seq, sizeof(int32_t));
    t->slot_labels = trm_alloc_zero(B * seq, sizeof(int32_t));
    t->slot_ids = trm_alloc_zero(B, sizeof(int32_t));
    t->slot_steps = trm_alloc_zero(B, sizeof(int32_t));
    t->slot_halted = trm_alloc_zero(B, 1);
    t->exact = trm_alloc_zero(B, 1);
    t->aug_scratch = trm_alloc_zero(seq, sizeof(int32_t));
    ok = t->y && t->z && t->slot_tokens && t->slot_labels && t->slot_ids && t->slot_steps && t->slot_halted &&
         t->exact && t->aug_scratch;
  }
  if (!ok) {
    release_slots(t);
    return trm_fail(TRM_E_NOMEM, "out of memory for the training state (batch %zu)", B);
  }
  if ((st = trm_tr_dense_view(&t->p, t->grad, &t->g)) != TRM_OK ||
      (st = trm_tr_work_init(&t->ctx, &t->p, B, &t->work)) != TRM_OK) {
    release_slots(t);
    return st;
  }
  memset(t->slot_halted, 1, B); /* every slot takes a sample at the first step */
  t->aug_kind = resolve_augment(c, t->opt.augment);
  if (t->aug_kind < 0) t->aug_kind = TRM_AUGMENT_NONE;
  t->B = B;
  return TRM_OK;
}

/* ---- options, info ---- */

trm_status trm_trainer_set_option(trm_trainer *t, trm_train_option opt, double value) {
  if (!t) return trm_fail(TRM_E_INVALID, "trm_trainer_set_option: NULL trainer");
  return set_option(t, opt, value);
}

trm_status trm_trainer_get_option(const trm_trainer *t, trm_train_option opt, double *value) {
  if (!t || !value) return trm_fail(TRM_E_INVALID, "trm_trainer_get_option: NULL argument");
  if (!find_option(opt)) return trm_fail(TRM_E_INVALID, "trm_trainer_get_option: unknown option %d", (int)opt);
  *value = get_option(&t->opt, opt);
  return TRM_OK;
}

trm_status trm_trainer_info(const trm_trainer *t, const char *key, int64_t *value) {
  if (!t || !key || !value) return trm_fail(TRM_E_INVALID, "trm_trainer_info: NULL argument");
  const trm_config *c = &t->p.cfg;
  int64_t params = (int64_t)t->p.floats + 2 * c->hidden_size + c->num_puzzle_identifiers * c->puzzle_emb_ndim;
  const struct {
    const char *key;
    int64_t value;
  } facts[] = {
      {"hidden_size", c->hidden_size}, {"num_heads", c->num_heads}, {"L_layers", c->L_layers},
      {"H_cycles", c->H_cycles}, {"L_cycles", c->L_cycles}, {"seq_len", c->seq_len},
      {"vocab_size", c->vocab_size}, {"num_puzzle_identifiers", c->num_puzzle_identifiers},
      {"puzzle_emb_ndim", c->puzzle_emb_ndim}, {"puzzle_emb_len", c->puzzle_len},
      {"halt_max_steps", c->halt_max_steps}, {"mlp_t", c->mlp_t}, {"no_ACT_continue", c->no_act_continue},
      {"pos_encodings", c->pos_encodings}, {"state_len", c->state_len}, {"head_dim", c->head_dim},
      {"inter_size", c->inter}, {"inter_t_size", c->inter_t}, {"param_count", params},
      {"step", t->step}, {"samples", (int64_t)t->drawn}, {"data_count", (int64_t)t->count},
  };
  for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
    if (!strcmp(facts[i].key, key)) {
      *value = facts[i].value;
      return TRM_OK;
    }
  return trm_fail(TRM_E_INVALID, "trm_trainer_info: unknown key '%.60s'", key);
}

/* ---- data ---- */

trm_status trm_trainer_set_data(trm_trainer *t, const int32_t *inputs, const int32_t *labels,
                                const int32_t *puzzle_ids, size_t count, int32_t ignore_label) {
  if (!t || !inputs || !labels) return trm_fail(TRM_E_INVALID, "trm_trainer_set_data: NULL argument");
  const trm_config *c = &t->p.cfg;
  size_t seq = (size_t)c->seq_len, total;
  if (count < 1 || count > UINT32_MAX || !trm_mul_ok(count, seq, &total))
    return trm_fail(TRM_E_INVALID, "trm_trainer_set_data: count %zu is not in [1, 2^32 - 1]", count);
  for (size_t i = 0; i < total; i++) {
    if (inputs[i] < 0 || inputs[i] >= c->vocab_size)
      return trm_fail(TRM_E_INVALID, "trm_trainer_set_data: input token %d of sample %zu is outside [0, %lld)",
                      (int)inputs[i], i / seq, (long long)c->vocab_size);
    if (labels[i] != ignore_label && (labels[i] < 0 || labels[i] >= c->vocab_size))
      return trm_fail(TRM_E_INVALID,
                      "trm_trainer_set_data: label %d of sample %zu is outside [0, %lld) and not the ignore label %d",
                      (int)labels[i], i / seq, (long long)c->vocab_size, (int)ignore_label);
  }
  if (puzzle_ids)
    for (size_t i = 0; i < count; i++)
      if (puzzle_ids[i] < 0 || puzzle_ids[i] >= c->num_puzzle_identifiers)
        return trm_fail(TRM_E_INVALID, "trm_trainer_set_data: puzzle id %d of sample %zu is outside [0, %lld)",
                        (int)puzzle_ids[i], i, (long long)c->num_puzzle_identifiers);
  int32_t *in = trm_alloc(total * sizeof *in), *lab = trm_alloc(total * sizeof *lab);
  int32_t *ids = trm_alloc_zero(count, sizeof *ids);
  uint32_t *order = trm_alloc(count * sizeof *order);
  if (!in || !lab || !ids || !order) {
    trm_release(in);
    trm_release(lab);
    trm_release(ids);
    trm_release(order);
    return trm_fail(TRM_E_NOMEM, "out of memory for %zu training samples", count);
  }
  memcpy(in, inputs, total * sizeof *in);
  memcpy(lab, labels, total * sizeof *lab);
  if (puzzle_ids) memcpy(ids, puzzle_ids, count * sizeof *ids);
  trm_release(t->inputs);
  trm_release(t->labels);
  trm_release(t->ids);
  trm_release(t->order);
  t->inputs = in;
  t->labels = lab;
  t->ids = ids;
  t->order = order;
  t->count = count;
  t->ignore_label = ignore_label;
  t->order_epoch = UINT64_MAX;
  t->data_hash = trm_tr_data_hash(t);
  bool same = t->resume_pending && t->resume_hash == t->data_hash && t->resume_count == count;
  if (!same) t->drawn = 0; /* other data: its order starts at its first sample */
  t->resume_pending = false;
  return TRM_OK;
}

/* ---- steps ---- */

trm_status trm_trainer_step(trm_trainer *t, trm_train_metrics *metrics) {
  if (!t) return trm_fail(TRM_E_INVALID, "trm_trainer_step: NULL trainer");
  if (metrics && metrics->size < sizeof(size_t))
    return trm_fail(TRM_E_INVALID, "trm_trainer_step: metrics.size %zu is too small", metrics->size);
  return trm_tr_train_step(t, metrics);
}

/* ---- models ---- */

trm_status trm_trainer_save_model(const trm_trainer *t, const char *path, trm_weights which) {
  if (!t || !path) return trm_fail(TRM_E_INVALID, "trm_trainer_save_model: NULL argument");
  if (which != TRM_WEIGHTS_EMA && which != TRM_WEIGHTS_RAW)
    return trm_fail(TRM_E_INVALID, "trm_trainer_save_model: unknown weights %d", (int)which);
  uint8_t *bytes;
  size_t size;
  trm_status st = trm_tr_model_bytes(t, which == TRM_WEIGHTS_EMA, &bytes, &size);
  if (st != TRM_OK) return st;
  st = trm_tr_write_file(path, bytes, size);
  trm_release(bytes);
  return st;
}

trm_status trm_trainer_model(const trm_trainer *t, trm_weights which, trm_model **out) {
  if (!t || !out) return trm_fail(TRM_E_INVALID, "trm_trainer_model: NULL argument");
  if (which != TRM_WEIGHTS_EMA && which != TRM_WEIGHTS_RAW)
    return trm_fail(TRM_E_INVALID, "trm_trainer_model: unknown weights %d", (int)which);
  uint8_t *bytes;
  size_t size;
  trm_status st = trm_tr_model_bytes(t, which == TRM_WEIGHTS_EMA, &bytes, &size);
  if (st != TRM_OK) return st;
  st = trm_model_load_memory(bytes, size, out);
  trm_release(bytes);
  return st;
}

trm_status trm_trainer_save_checkpoint(const trm_trainer *t, const char *path) {
  if (!t || !path) return trm_fail(TRM_E_INVALID, "trm_trainer_save_checkpoint: NULL argument");
  return trm_tr_checkpoint_save(t, path);
}

trm_status trm_trainer_load_checkpoint(const char *path, trm_trainer **out) {
  if (!path || !out) return trm_fail(TRM_E_INVALID, "trm_trainer_load_checkpoint: NULL argument");
  return trm_tr_checkpoint_load(path, out);
}
