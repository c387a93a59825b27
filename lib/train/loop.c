/* The training loop (TRM-SPEC.md section 7, the reference's pretrain.py with the ACT carry of
 * TinyRecursiveReasoningModel_ACTV1): B slots carried across steps, each holding one sample
 * for up to halt_max_steps supervision steps; halted slots take the next sample of a stream
 * shuffled per epoch and augmented on the fly.
 *
 * Every random choice comes from a counter-based generator keyed by (seed, purpose, counter):
 * the epoch's order from the epoch number, a sample's augmentation from its position in the
 * stream, the halting exploration from (step, slot). So the state to resume exactly is a few
 * counters, and nothing depends on the thread count.
 *
 * One difference from the reference, on purpose: there every step's data loader batch is drawn
 * whole and only the halted slots take their entries (the rest of the batch is never seen);
 * here a halted slot takes the next sample of the stream, so every sample is trained on. */
#include "train.h"

#include <math.h>
#include <string.h>

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t trm_tr_random(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  uint64_t h = mix64(seed + 0x9E3779B97F4A7C15ull);
  h = mix64(h ^ (stream * 0xD1B54A32D192ED03ull + 1));
  h = mix64(h ^ (a + 0x8CB92BA72F3D8DD7ull));
  return mix64(h ^ (b * 0xA0761D6478BD642Full + 3));
}

/* A generator for a sequence of values from one random value. */
static uint64_t next_random(uint64_t *state) { return mix64(*state += 0x9E3779B97F4A7C15ull); }
static size_t below(uint64_t *state, size_t n) { return (size_t)(next_random(state) % n); }

static void permute(size_t *v, size_t n, uint64_t *state) {
  for (size_t i = 0; i < n; i++) v[i] = i;
  for (size_t i = n; i-- > 1;) {
    size_t j = below(state, i + 1), tmp = v[i];
    v[i] = v[j];
    v[j] = tmp;
  }
}

uint64_t trm_tr_data_hash(const trm_trainer *t) {
  uint64_t h = 0xCBF29CE484222325ull;
  size_t seq = (size_t)t->p.cfg.seq_len;
  const int32_t *arrays[3] = {t->inputs, t->labels, t->ids};
  size_t lengths[3] = {t->count * seq, t->count * seq, t->count};
  for (int a = 0; a < 3; a++)
    for (size_t i = 0; i < lengths[a]; i++) {
      uint32_t v = (uint32_t)arrays[a][i];
      for (int k = 0; k < 4; k++) {
        h ^= (v >> (8 * k)) & 0xFF;
        h *= 0x100000001B3ull;
      }
    }
  return h ^ (uint64_t)t->ignore_label;
}

/* ---- augmentations (TRM-SPEC.md section 8) ---- */

void trm_tr_augment_sudoku(int32_t *tokens, int32_t *labels, uint64_t r) {
  uint64_t state = r;
  size_t digits[9], bands[3], stacks[3], inner[3], row_perm[9], col_perm[9];
  permute(digits, 9, &state);
  bool transpose = next_random(&state) & 1;
  permute(bands, 3, &state);
  for (size_t b = 0; b < 3; b++) {
    permute(inner, 3, &state);
    for (size_t i = 0; i < 3; i++) row_perm[b * 3 + i] = bands[b] * 3 + inner[i];
  }
  permute(stacks, 3, &state);
  for (size_t s = 0; s < 3; s++) {
    permute(inner, 3, &state);
    for (size_t i = 0; i < 3; i++) col_perm[s * 3 + i] = stacks[s] * 3 + inner[i];
  }
  int32_t *arrays[2] = {tokens, labels};
  for (int a = 0; a < 2; a++) {
    int32_t src[81];
    memcpy(src, arrays[a], sizeof src);
    for (size_t i = 0; i < 81; i++) {
      size_t row = row_perm[i / 9], col = col_perm[i % 9];
      int32_t v = transpose ? src[col * 9 + row] : src[row * 9 + col];
      if (v >= 2 && v <= 10) v = 2 + (int32_t)digits[v - 2]; /* digits 1..9 are tokens 2..10 */
      arrays[a][i] = v;
    }
  }
}

void trm_tr_augment_dihedral(int32_t *tokens, int32_t *labels, size_t side, uint64_t r, int32_t *scratch) {
  unsigned k = (unsigned)(r % 8);
  if (k == 0) return;
  size_t n = side * side, last = side - 1;
  int32_t *arrays[2] = {tokens, labels};
  for (int a = 0; a < 2; a++) {
    int32_t *v = arrays[a];
    memcpy(scratch, v, n * sizeof *v);
    for (size_t i = 0; i < side; i++)
      for (size_t j = 0; j < side; j++) {
        size_t si, sj;
        switch (k) {
          case 1: si = j, sj = last - i; break;
          case 2: si = last - i, sj = last - j; break;
          case 3: si = last - j, sj = i; break;
          case 4: si = j, sj = i; break;
          case 5: si = i, sj = last - j; break;
          case 6: si = last - i, sj = j; break;
          default: si = last - j, sj = last - i; break;
        }
        v[i * side + j] = scratch[si * side + sj];
      }
  }
}

/* ---- the stream ---- */

trm_status trm_tr_draw(trm_trainer *t, size_t b) {
  size_t seq = (size_t)t->p.cfg.seq_len;
  uint64_t epoch = t->drawn / t->count, position = t->drawn % t->count;
  if (t->order_epoch != epoch) {
    uint64_t state = trm_tr_random(t->opt.seed, 1, epoch, 0);
    for (size_t i = 0; i < t->count; i++) t->order[i] = (uint32_t)i;
    for (size_t i = t->count; i-- > 1;) {
      size_t j = below(&state, i + 1);
      uint32_t tmp = t->order[i];
      t->order[i] = t->order[j];
      t->order[j] = tmp;
    }
    t->order_epoch = epoch;
  }
  size_t k = t->order[position];
  int32_t *tokens = t->slot_tokens + b * seq, *labels = t->slot_labels + b * seq;
  memcpy(tokens, t->inputs + k * seq, seq * sizeof *tokens);
  memcpy(labels, t->labels + k * seq, seq * sizeof *labels);
  t->slot_ids[b] = t->ids[k];
  uint64_t r = trm_tr_random(t->opt.seed, 2, t->drawn, 0);
  if (t->aug_kind == TRM_AUGMENT_SUDOKU) {
    trm_tr_augment_sudoku(tokens, labels, r);
  } else if (t->aug_kind == TRM_AUGMENT_DIHEDRAL) {
    size_t side = (size_t)llround(sqrt((double)seq));
    trm_tr_augment_dihedral(tokens, labels, side, r, t->aug_scratch);
  }
  t->drawn++;
  t->slot_steps[b] = 0;
  t->slot_halted[b] = 0;
  trm_tr_carry_reset(&t->p, t->y, t->z, b);
  return TRM_OK;
}

/* ---- one training step ---- */

static double lr_at(const trm_tr_options *o, int64_t step, double base) {
  if (o->total_steps > 0) return trm_tr_lr(step, base, o->warmup_steps, o->total_steps, o->lr_min_ratio);
  if (step < o->warmup_steps) return base * (double)step / (double)o->warmup_steps;
  return base;
}

/* The optimiser and the EMA are elementwise: they run over the pool in ranges of parameters,
 * which gives the same bits for any number of workers. */
typedef struct dense_update {
  trm_trainer *t;
  double lr;
} dense_update;

static void dense_range(void *arg, size_t lo, size_t hi) {
  const dense_update *u = arg;
  trm_trainer *t = u->t;
  const trm_tr_options *o = &t->opt;
  float *p = t->p.w.data + lo, *m = t->m + lo, *v = t->v + lo;
  const float *g = t->grad + lo;
  if (o->optimizer == TRM_OPTIMIZER_ADAMW)
    trm_tr_adamw(p, g, m, v, hi - lo, t->step, u->lr, o->beta1, o->beta2, o->weight_decay, o->eps);
  else
    trm_tr_adam_atan2(p, g, m, v, hi - lo, t->step, u->lr, o->beta1, o->beta2, o->weight_decay);
}

static void ema_range(void *arg, size_t lo, size_t hi) {
  trm_trainer *t = arg;
  trm_tr_ema(t->ema + lo, t->p.w.data + lo, hi - lo, t->opt.ema);
}

trm_status trm_tr_train_step(trm_trainer *t, trm_train_metrics *out) {
  if (!t->count) return trm_fail(TRM_E_STATE, "trm_trainer_step: no training data (see trm_trainer_set_data)");
  trm_status st = trm_tr_trainer_prepare(t);
  if (st != TRM_OK) return st;
  const trm_config *c = &t->p.cfg;
  size_t B = t->B;
  for (size_t b = 0; b < B; b++)
    if (t->slot_halted[b] && (st = trm_tr_draw(t, b)) != TRM_OK) return st;

  memset(t->grad, 0, t->p.floats * sizeof *t->grad);
  trm_tr_batch batch = {.B = B, .tokens = t->slot_tokens, .labels = t->slot_labels, .puzzle_ids = t->slot_ids,
                        .q_continue_target = NULL, .ignore_label = t->ignore_label, .loss_scale = 1.0 / (double)B};
  trm_tr_loss loss;
  if ((st = trm_tr_step(&t->ctx, &t->p, &t->work, &batch, t->y, t->z, &t->g, t->exact, &loss)) != TRM_OK) return st;

  /* halting, as the reference's training forward: at halt_max_steps, or once q_halt > 0 unless
   * the exploration drew a larger minimum for this slot */
  int64_t max_steps = t->opt.halt_max_steps;
  size_t halted = 0, halted_exact = 0, q_right = 0;
  double halted_steps = 0;
  for (size_t b = 0; b < B; b++) {
    int32_t steps = ++t->slot_steps[b];
    float q_halt = t->work.q[2 * b];
    bool halt = steps >= max_steps;
    if (max_steps > 1) {
      halt = halt || q_halt > 0;
      uint64_t r = trm_tr_random(t->opt.seed, 3, (uint64_t)t->step, b);
      double u = (double)(r >> 11) * 0x1.0p-53;
      int64_t min_steps = u < t->opt.halt_exploration_prob ? 2 + (int64_t)(mix64(r) % (uint64_t)(max_steps - 1)) : 0;
      halt = halt && steps >= min_steps;
    }
    q_right += (q_halt >= 0) == (t->exact[b] != 0);
    if (halt) {
      t->slot_halted[b] = 1;
      halted++;
      halted_exact += t->exact[b] != 0;
      halted_steps += steps;
    }
  }

  /* the optimisers: dense weights, puzzle-embedding rows (signSGD), EMA */
  t->step++;
  const trm_tr_options *o = &t->opt;
  double lr = lr_at(o, t->step, o->lr);
  dense_update update = {t, lr};
  trm_tr_parallel(&t->ctx, t->p.floats, dense_range, &update);
  if (t->p.puzzle_emb) {
    double plr = lr_at(o, t->step, o->puzzle_emb_lr);
    st = trm_tr_signsgd_rows(t->p.puzzle_emb, (size_t)c->num_puzzle_identifiers, (size_t)c->puzzle_emb_ndim,
                             t->slot_ids, t->work.dpuzzle, B, plr, o->puzzle_emb_weight_decay);
    if (st != TRM_OK) return st; /* out of memory: the dense step is done, the rows are not */
  }
  if (t->ema) trm_tr_parallel(&t->ctx, t->p.floats, ema_range, t);

  if (out) {
    trm_train_metrics m = {0};
    m.size = out->size;
    m.step = t->step;
    m.samples = t->drawn;
    m.epoch = (double)t->drawn / (double)t->count;
    m.lr = lr;
    m.loss = loss.total / (double)B;
    m.lm_loss = loss.lm_loss / (double)B;
    m.q_halt_loss = loss.q_halt_loss / (double)B;
    m.token_accuracy = loss.valid_tokens ? (double)loss.correct_tokens / (double)loss.valid_tokens : 0.0;
    m.exact_accuracy = (double)loss.exact / (double)B;
    m.q_halt_accuracy = (double)q_right / (double)B;
    m.halted = halted;
    m.halted_exact_accuracy = halted ? (double)halted_exact / (double)halted : 0.0;
    m.halted_mean_steps = halted ? halted_steps / (double)halted : 0.0;
    memcpy(out, &m, out->size < sizeof m ? out->size : sizeof m);
  }
  return TRM_OK;
}
