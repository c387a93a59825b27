/* A session: the state of a batch of puzzles, and trm_refine(), which walks TRM's recursion
 * (TRM-SPEC.md section 5) one unit at a time:
 *
 *   one supervision step = H_cycles x { L_cycles x  z = f(z, y + x)     (latent update)
 *                                                    y = f(y, z) }        (answer update)
 *
 * then each slot's step count grows and halting is decided. All running slots go through a
 * step together; the session remembers where in the step it is (cycle, call) so that a call
 * of trm_refine() can stop after any network call, cycle or step. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* trm_event as first published; callers may pass a larger (newer) struct. */
#define EVENT_V1_SIZE (offsetof(trm_event, halted) + sizeof(size_t))

typedef struct slot_info {
  trm_slot_state state;
  bool in_step;    /* takes part in the supervision step under way */
  int64_t steps;   /* supervision steps completed since its input was set */
  int32_t puzzle_id;
} slot_info;

struct trm_session {
  const trm_model *model;
  size_t batch;
  size_t state_floats;      /* S * D: one y, z or x */
  float *x, *y, *z;         /* [batch, S, D] each: input embedding, answer, latent */
  int32_t *tokens;          /* [batch, seq_len]: each slot's puzzle, kept for inspection */
  slot_info *slots;
  size_t *part;             /* slots taking part in the current step */
  size_t n_part;

  /* options */
  trm_yield yield;
  trm_halt halt;
  int64_t max_steps;
  int64_t threads;          /* as resolved: the pool's size */

  /* position in the recursion */
  bool mid_step;
  int64_t cycle, call;      /* 0-based: next call to make within the current step */
  int64_t step_count;       /* supervision steps begun by the session */
  int64_t calls;            /* network calls made (each over all taking part) */

  trm_pool *pool;           /* NULL for one thread */
  trm_net_work work;        /* the network's work memory, sized for the batch and the pool */
  float **target;           /* per taking-part slot: the state a call updates ... */
  const float **inj_a, **inj_b; /* ... and what it injects */
};

static float *state_of(const trm_session *s, float *base, size_t slot) { return base + slot * s->state_floats; }

/* ---- creation and options ---- */

TRM_API void trm_session_free(trm_session *s) {
  if (!s) return;
  trm_net_work_free(&s->work);
  trm_pool_free(s->pool);
  trm_release(s->target);
  trm_release(s->inj_a);
  trm_release(s->inj_b);
  trm_release(s->x);
  trm_release(s->y);
  trm_release(s->z);
  trm_release(s->tokens);
  trm_release(s->slots);
  trm_release(s->part);
  trm_release(s);
}

TRM_API trm_status trm_session_create(const trm_model *m, size_t batch, trm_session **out) {
  if (!m || !out) return trm_fail(TRM_E_INVALID, "trm_session_create: %s is NULL", !m ? "model" : "out");
  if (batch == 0) return trm_fail(TRM_E_INVALID, "trm_session_create: batch must be at least 1");
  const trm_config *c = &m->cfg;
  size_t state_floats = (size_t)c->state_len * (size_t)c->hidden_size, all_states, token_count;
  if (!trm_mul_ok(batch, state_floats, &all_states) || !trm_mul_ok(all_states, sizeof(float), &all_states) ||
      !trm_mul_ok(batch, (size_t)c->seq_len, &token_count))
    return trm_fail(TRM_E_NOMEM, "trm_session_create: a batch of %zu states does not fit in memory", batch);

  trm_session *s = trm_alloc_zero(1, sizeof *s);
  if (!s) return trm_fail(TRM_E_NOMEM, "out of memory for the session");
  s->model = m;
  s->batch = batch;
  s->state_floats = state_floats;
  s->yield = TRM_YIELD_STEP;
  s->halt = TRM_HALT_FIXED;
  s->max_steps = c->halt_max_steps;
  s->threads = 1;
  s->x = trm_alloc_zero(batch, state_floats * sizeof(float));
  s->y = trm_alloc_zero(batch, state_floats * sizeof(float));
  s->z = trm_alloc_zero(batch, state_floats * sizeof(float));
  s->tokens = trm_alloc_zero(token_count, sizeof(int32_t));
  s->slots = trm_alloc_zero(batch, sizeof *s->slots);
  s->part = trm_alloc_zero(batch, sizeof *s->part);
  s->target = trm_alloc_zero(batch, sizeof *s->target);
  s->inj_a = trm_alloc_zero(batch, sizeof *s->inj_a);
  s->inj_b = trm_alloc_zero(batch, sizeof *s->inj_b);
  if (!s->x || !s->y || !s->z || !s->tokens || !s->slots || !s->part || !s->target || !s->inj_a || !s->inj_b) {
    trm_session_free(s);
    return trm_fail(TRM_E_NOMEM, "out of memory for a session of %zu slots", batch);
  }
  trm_status st = trm_net_work_init(m, batch, NULL, &s->work);
  if (st != TRM_OK) {
    trm_session_free(s);
    return st;
  }
  *out = s;
  return TRM_OK;
}

/* Replaces the pool and the work memory sized for it; the old ones stay if anything fails. */
static trm_status set_threads(trm_session *s, int64_t requested) {
  size_t n = requested == 0 ? trm_cpu_count() : (size_t)requested;
  if ((int64_t)n == s->threads) return TRM_OK;
  trm_pool *pool = NULL;
  if (n > 1) {
    trm_status st = trm_pool_create(n, &pool);
    if (st != TRM_OK) return st;
  }
  trm_net_work work;
  trm_status st = trm_net_work_init(s->model, s->batch, pool, &work);
  if (st != TRM_OK) {
    trm_pool_free(pool);
    return st;
  }
  trm_net_work_free(&s->work);
  trm_pool_free(s->pool);
  s->pool = pool;
  s->work = work;
  s->threads = (int64_t)n;
  return TRM_OK;
}

enum { MAX_THREADS = 1024 };

TRM_API trm_status trm_session_set_option(trm_session *s, trm_option opt, int64_t value) {
  if (!s) return trm_fail(TRM_E_INVALID, "trm_session_set_option: session is NULL");
  switch (opt) {
  case TRM_OPT_YIELD:
    if (value < TRM_YIELD_CALL || value > TRM_YIELD_STEP)
      return trm_fail(TRM_E_INVALID, "TRM_OPT_YIELD: %lld is not a trm_yield value", (long long)value);
    s->yield = (trm_yield)value;
    return TRM_OK;
  case TRM_OPT_MAX_STEPS:
    if (value < 1) return trm_fail(TRM_E_INVALID, "TRM_OPT_MAX_STEPS: must be at least 1, got %lld", (long long)value);
    s->max_steps = value;
    return TRM_OK;
  case TRM_OPT_HALT:
    if (value != TRM_HALT_FIXED && value != TRM_HALT_Q)
      return trm_fail(TRM_E_INVALID, "TRM_OPT_HALT: %lld is not a trm_halt value", (long long)value);
    s->halt = (trm_halt)value;
    return TRM_OK;
  case TRM_OPT_THREADS:
    if (value < 0 || value > MAX_THREADS)
      return trm_fail(TRM_E_INVALID, "TRM_OPT_THREADS: must be in [0, %d], got %lld", MAX_THREADS, (long long)value);
    return set_threads(s, value);
  }
  return trm_fail(TRM_E_INVALID, "trm_session_set_option: unknown option %d", (int)opt);
}

TRM_API trm_status trm_session_get_option(const trm_session *s, trm_option opt, int64_t *value) {
  if (!s || !value) return trm_fail(TRM_E_INVALID, "trm_session_get_option: NULL argument");
  switch (opt) {
  case TRM_OPT_YIELD: *value = s->yield; return TRM_OK;
  case TRM_OPT_MAX_STEPS: *value = s->max_steps; return TRM_OK;
  case TRM_OPT_HALT: *value = s->halt; return TRM_OK;
  case TRM_OPT_THREADS: *value = s->threads; return TRM_OK;
  }
  return trm_fail(TRM_E_INVALID, "trm_session_get_option: unknown option %d", (int)opt);
}

/* ---- inputs and state ---- */

static trm_status check_slot(const trm_session *s, size_t slot, const char *fn) {
  if (!s) return trm_fail(TRM_E_INVALID, "%s: session is NULL", fn);
  if (slot >= s->batch) return trm_fail(TRM_E_INVALID, "%s: slot %zu is outside the batch of %zu", fn, slot, s->batch);
  return TRM_OK;
}

static trm_status check_filled(const trm_session *s, size_t slot, const char *fn) {
  trm_status st = check_slot(s, slot, fn);
  if (st == TRM_OK && s->slots[slot].state == TRM_SLOT_EMPTY)
    st = trm_fail(TRM_E_STATE, "%s: slot %zu has no input yet (call trm_session_set_input first)", fn, slot);
  return st;
}

static void fill_rows(float *dst, const float *row, size_t rows, size_t width) {
  for (size_t r = 0; r < rows; r++) memcpy(dst + r * width, row, width * sizeof *dst);
}

TRM_API trm_status trm_session_set_input(trm_session *s, size_t slot, const int32_t *tokens, size_t n_tokens,
                                         int32_t puzzle_id) {
  trm_status st = check_slot(s, slot, "trm_session_set_input");
  if (st != TRM_OK) return st;
  const trm_model *m = s->model;
  const trm_config *c = &m->cfg;
  if (!tokens) return trm_fail(TRM_E_INVALID, "trm_session_set_input: tokens is NULL");
  if (n_tokens != (size_t)c->seq_len)
    return trm_fail(TRM_E_INVALID, "trm_session_set_input: %zu tokens given, the model takes seq_len = %lld",
                    n_tokens, (long long)c->seq_len);
  for (size_t i = 0; i < n_tokens; i++)
    if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
      return trm_fail(TRM_E_INVALID, "trm_session_set_input: token %zu is %d, outside the vocabulary [0, %lld)", i,
                      (int)tokens[i], (long long)c->vocab_size);
  if (puzzle_id < 0 || puzzle_id >= c->num_puzzle_identifiers)
    return trm_fail(TRM_E_INVALID, "trm_session_set_input: puzzle_id %d is outside [0, %lld)", (int)puzzle_id,
                    (long long)c->num_puzzle_identifiers);

  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size;
  memcpy(s->tokens + slot * (size_t)c->seq_len, tokens, n_tokens * sizeof *tokens);
  trm_net_embed(m, tokens, puzzle_id, state_of(s, s->x, slot));
  fill_rows(state_of(s, s->y, slot), m->H_init, S, D);
  fill_rows(state_of(s, s->z, slot), m->L_init, S, D);
  slot_info *sl = &s->slots[slot];
  sl->state = TRM_SLOT_RUNNING;
  sl->in_step = false; /* mid-step, it joins at the start of the next step */
  sl->steps = 0;
  sl->puzzle_id = puzzle_id;
  return TRM_OK;
}

TRM_API trm_status trm_session_slot_state(const trm_session *s, size_t slot, trm_slot_state *state, int64_t *steps) {
  trm_status st = check_slot(s, slot, "trm_session_slot_state");
  if (st != TRM_OK) return st;
  if (state) *state = s->slots[slot].state;
  if (steps) *steps = s->slots[slot].steps;
  return TRM_OK;
}

TRM_API trm_status trm_session_latent(const trm_session *s, size_t slot, trm_latent which, float *out, size_t n) {
  trm_status st = check_filled(s, slot, "trm_session_latent");
  if (st != TRM_OK) return st;
  if (which != TRM_LATENT_Y && which != TRM_LATENT_Z)
    return trm_fail(TRM_E_INVALID, "trm_session_latent: %d is not a trm_latent value", (int)which);
  if (!out || n < s->state_floats)
    return trm_fail(TRM_E_INVALID, "trm_session_latent: output needs %zu floats, %s", s->state_floats,
                    out ? "buffer too small" : "got NULL");
  memcpy(out, state_of(s, which == TRM_LATENT_Y ? s->y : s->z, slot), s->state_floats * sizeof *out);
  return TRM_OK;
}

TRM_API trm_status trm_session_set_latent(trm_session *s, size_t slot, trm_latent which, const float *in, size_t n) {
  trm_status st = check_filled(s, slot, "trm_session_set_latent");
  if (st != TRM_OK) return st;
  if (which != TRM_LATENT_Y && which != TRM_LATENT_Z)
    return trm_fail(TRM_E_INVALID, "trm_session_set_latent: %d is not a trm_latent value", (int)which);
  if (!in || n != s->state_floats)
    return trm_fail(TRM_E_INVALID, "trm_session_set_latent: needs exactly %zu floats, got %s%zu", s->state_floats,
                    in ? "" : "NULL and ", n);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(in[i])) return trm_fail(TRM_E_INVALID, "trm_session_set_latent: value %zu is not finite", i);
  memcpy(state_of(s, which == TRM_LATENT_Y ? s->y : s->z, slot), in, n * sizeof *in);
  return TRM_OK;
}

/* ---- outputs, computed from the current answer state ---- */

TRM_API trm_status trm_session_logits(const trm_session *s, size_t slot, float *out, size_t n) {
  trm_status st = check_filled(s, slot, "trm_session_logits");
  if (st != TRM_OK) return st;
  size_t need = (size_t)(s->model->cfg.seq_len * s->model->cfg.vocab_size);
  if (!out || n < need)
    return trm_fail(TRM_E_INVALID, "trm_session_logits: output needs %zu floats, %s", need,
                    out ? "buffer too small" : "got NULL");
  trm_net_logits(s->model, state_of(s, s->y, slot), out);
  return TRM_OK;
}

TRM_API trm_status trm_session_answer(const trm_session *s, size_t slot, int32_t *tokens, float *confidence,
                                      size_t n) {
  trm_status st = check_filled(s, slot, "trm_session_answer");
  if (st != TRM_OK) return st;
  const trm_config *c = &s->model->cfg;
  if (n < (size_t)c->seq_len)
    return trm_fail(TRM_E_INVALID, "trm_session_answer: outputs need %lld entries, got %zu", (long long)c->seq_len, n);
  trm_net_answer(s->model, state_of(s, s->y, slot), tokens, confidence);
  return TRM_OK;
}

TRM_API trm_status trm_session_q(const trm_session *s, size_t slot, float *q_halt, float *q_continue) {
  trm_status st = check_filled(s, slot, "trm_session_q");
  if (st != TRM_OK) return st;
  float q[2];
  trm_net_q(s->model, state_of(s, s->y, slot), q);
  if (q_halt) *q_halt = q[0];
  if (q_continue) *q_continue = q[1];
  return TRM_OK;
}

/* ---- the recursion ---- */

/* One network call for every slot taking part: the latent update z = f(z, y + x), or the
 * answer update y = f(y, z). */
static void run_call(trm_session *s, bool answer) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_part; i++) {
    size_t k = s->part[i];
    if (!s->slots[k].in_step) continue; /* given a new input since the step began */
    float *y = state_of(s, s->y, k), *z = state_of(s, s->z, k);
    s->target[n] = answer ? y : z;
    s->inj_a[n] = answer ? z : y;
    s->inj_b[n] = state_of(s, s->x, k);
    n++;
  }
  trm_net_call(s->model, &s->work, n, s->target, s->inj_a, answer ? NULL : s->inj_b);
}

/* Picks the slots for a new step; false if none is left to run. */
static bool begin_step(trm_session *s) {
  s->n_part = 0;
  for (size_t k = 0; k < s->batch; k++) {
    slot_info *sl = &s->slots[k];
    if (sl->state != TRM_SLOT_RUNNING) continue;
    if (sl->steps >= s->max_steps) { /* max_steps was lowered below what it has run */
      sl->state = TRM_SLOT_HALTED;
      continue;
    }
    sl->in_step = true;
    s->part[s->n_part++] = k;
  }
  if (s->n_part == 0) return false;
  s->mid_step = true;
  s->cycle = s->call = 0;
  s->step_count++;
  return true;
}

static bool any_in_step(const trm_session *s) {
  for (size_t i = 0; i < s->n_part; i++)
    if (s->slots[s->part[i]].in_step) return true;
  return false;
}

/* The step is over: count it and decide who halts. Returns how many halted. */
static size_t end_step(trm_session *s) {
  const trm_config *c = &s->model->cfg;
  size_t halted = 0;
  for (size_t i = 0; i < s->n_part; i++) {
    slot_info *sl = &s->slots[s->part[i]];
    if (!sl->in_step) continue;
    sl->in_step = false;
    sl->steps++;
    bool halt = sl->steps >= s->max_steps;
    if (!halt && s->halt == TRM_HALT_Q) {
      float q[2];
      trm_net_q(s->model, state_of(s, s->y, s->part[i]), q);
      halt = c->no_act_continue ? q[0] > 0.0f : q[0] > q[1];
    }
    if (halt) {
      sl->state = TRM_SLOT_HALTED;
      halted++;
    }
  }
  s->mid_step = false;
  s->n_part = 0;
  return halted;
}

static size_t count_running(const trm_session *s) {
  size_t n = 0;
  for (size_t k = 0; k < s->batch; k++) n += s->slots[k].state == TRM_SLOT_RUNNING;
  return n;
}

TRM_API trm_status trm_refine(trm_session *s, trm_event *ev) {
  if (!s) return trm_fail(TRM_E_INVALID, "trm_refine: session is NULL");
  if (ev && ev->size < EVENT_V1_SIZE)
    return trm_fail(TRM_E_INVALID, "trm_refine: ev->size is %zu; set it to sizeof(trm_event)", ev->size);
  const trm_config *c = &s->model->cfg;

  /* every slot of the step under way got a new input: that step is abandoned */
  if (s->mid_step && !any_in_step(s)) s->mid_step = false;

  trm_event out = TRM_EVENT_INIT;
  trm_status status = TRM_OK;
  if (!s->mid_step && !begin_step(s)) {
    status = TRM_HALTED;
  } else {
    for (;;) {
      bool answer = s->call == c->L_cycles;
      run_call(s, answer);
      s->calls++;
      out.kind = answer ? TRM_EVENT_ANSWER : TRM_EVENT_LATENT;
      out.cycle = (int32_t)(s->cycle + 1);
      out.call = (int32_t)(s->call + 1);
      out.step = s->step_count;
      bool unit_done = s->yield == TRM_YIELD_CALL;
      if (answer) {
        s->call = 0;
        s->cycle++;
        unit_done = unit_done || s->yield == TRM_YIELD_CYCLE;
        if (s->cycle == c->H_cycles) {
          out.halted = end_step(s);
          out.kind = TRM_EVENT_STEP;
          unit_done = true;
        }
      } else {
        s->call++;
      }
      if (unit_done) break;
    }
  }
  if (status == TRM_HALTED) out.step = s->step_count;
  out.calls = s->calls;
  out.active = count_running(s);
  if (ev) {
    /* fill only what this caller's struct has room for; later versions append fields */
    size_t size = ev->size < sizeof out ? ev->size : sizeof out;
    out.size = ev->size;
    memcpy(ev, &out, size);
  }
  return status;
}
