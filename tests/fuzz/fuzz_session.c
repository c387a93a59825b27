/* Fuzz target: the session API on small valid models built in memory (tests/model_builder.c).
 * The input chooses a model and a batch size, then is read as a sequence of calls with their
 * arguments: options (in and out of range), inputs (invalid slots, tokens outside the
 * vocabulary, wrong lengths, NULL), trm_refine with events of every size, the accessors with
 * short buffers, latents with NaN and Inf, sessions freed mid-step, in any order. Every status
 * is checked against what trm.h promises for those arguments in that state, failed calls must
 * change nothing, and what is read back must be what was written. */
#include "fuzz.h"

#include <math.h>
#include <stdbool.h>

#include "../model_builder.h"

typedef struct world {
  mb_model *mb;
  trm_model *m;
  int64_t seq, vocab, ids, S, D, H, L;
  size_t state;          /* S * D */
  float *h_init, *l_init; /* [S * D]: the rows every fresh slot starts from */
} world;

enum { N_WORLDS = 3, MAX_BATCH = 4, MAX_OPS = 96 };
static world worlds[N_WORLDS];

static void make_world(world *w, int which) {
  mb_config c;
  mb_default_config(&c);
  c.hidden_size = 8;
  c.num_heads = 2;
  c.L_layers = 1;
  c.H_cycles = 2;
  c.L_cycles = 2;
  c.seq_len = 4;
  c.vocab_size = 5;
  c.puzzle_emb_ndim = 8;
  c.num_puzzle_identifiers = 3;
  c.inter_override = 8;
  c.halt_max_steps = 3;
  if (which == 1) { /* token MLP, learned positions, a puzzle embedding padded over two rows */
    c.num_heads = 1;
    c.L_layers = 2;
    c.H_cycles = 1;
    c.seq_len = 5;
    c.vocab_size = 4;
    c.puzzle_emb_ndim = 12;
    c.num_puzzle_identifiers = 2;
    c.mlp_t = true;
    c.inter_t_override = 8;
    c.pos_encodings = "learned";
  } else if (which == 2) { /* no positions, no puzzle embedding, BF16 weights */
    c.hidden_size = 16;
    c.num_heads = 4;
    c.H_cycles = 1;
    c.L_cycles = 1;
    c.seq_len = 3;
    c.vocab_size = 3;
    c.puzzle_emb_ndim = 0;
    c.num_puzzle_identifiers = 1;
    c.pos_encodings = "none";
    c.halt_max_steps = 2;
    c.inter_override = 16;
  }
  w->mb = mb_build(&c);
  mb_set_meta(w->mb, "expansion", NULL); /* the widths above are not the reference's */
  if (which == 1) mb_set_meta(w->mb, "no_ACT_continue", "false");
  if (which == 2) mb_convert_all(w->mb, "BF16");
  size_t size;
  unsigned char *file = mb_serialize(w->mb, &size);
  trm_status st = trm_model_load_memory(file, size, &w->m);
  free(file);
  FUZZ_CHECK(st == TRM_OK, "the fuzz models load");
  w->seq = c.seq_len;
  w->vocab = c.vocab_size;
  w->ids = c.num_puzzle_identifiers;
  w->S = w->mb->S;
  w->D = c.hidden_size;
  w->H = c.H_cycles;
  w->L = c.L_cycles;
  w->state = (size_t)(w->S * w->D);
  w->h_init = malloc(w->state * sizeof(float));
  w->l_init = malloc(w->state * sizeof(float));
  FUZZ_CHECK(w->h_init && w->l_init, "malloc");
  const mb_tensor *h = mb_find(w->mb, "H_init"), *l = mb_find(w->mb, "L_init");
  for (size_t i = 0; i < w->state; i++) {
    w->h_init[i] = mb_get(h, i % (size_t)w->D);
    w->l_init[i] = mb_get(l, i % (size_t)w->D);
  }
}

/* The fuzzer's state for one input. */
typedef struct run {
  const world *w;
  fuzz_bytes in;
  trm_session *s;
  size_t batch;
  int64_t calls;       /* the session's network calls so far, from the last event; -1: unknown */
  int64_t yield;
  float *buf, *buf2;   /* 2 * state floats each */
} run;

static void expect_status(trm_status got, trm_status want, const char *call) {
  if (got != want) {
    fprintf(stderr, "%s returned %d (%s), expected %d (%s)\n", call, (int)got, trm_status_string(got), (int)want,
            trm_status_string(want));
    FUZZ_CHECK(got == want, call);
  }
  if (got < 0) FUZZ_CHECK(trm_last_error()[0] != '\0', "a failure says why");
}

/* A slot argument: mostly valid, sometimes just past the batch, sometimes far outside. */
static size_t pick_slot(run *r) {
  uint8_t b = fuzz_u8(&r->in);
  if (b < 200) return b % (r->batch + 1);
  if (b < 250) return r->batch + b % 3;
  return (size_t)-1 - (b & 1);
}

static trm_slot_state slot_state(run *r, size_t slot, int64_t *steps) {
  trm_slot_state state;
  int64_t n;
  expect_status(trm_session_slot_state(r->s, slot, &state, &n), TRM_OK, "slot_state");
  FUZZ_CHECK(state == TRM_SLOT_EMPTY || state == TRM_SLOT_RUNNING || state == TRM_SLOT_HALTED, "slot state");
  FUZZ_CHECK(n >= 0 && (state != TRM_SLOT_EMPTY || n == 0), "step count");
  if (steps) *steps = n;
  return state;
}

static size_t count_running(run *r) {
  size_t n = 0;
  for (size_t k = 0; k < r->batch; k++) n += slot_state(r, k, NULL) == TRM_SLOT_RUNNING;
  return n;
}

/* What a call taking a filled slot must return before it looks at its other arguments. */
static trm_status slot_verdict(run *r, size_t slot) {
  if (slot >= r->batch) return TRM_E_INVALID;
  return slot_state(r, slot, NULL) == TRM_SLOT_EMPTY ? TRM_E_STATE : TRM_OK;
}

static void op_set_option(run *r) {
  uint8_t which = fuzz_u8(&r->in) % 6, v = fuzz_u8(&r->in);
  trm_option opt = (trm_option)which; /* 0 and 5 are not options */
  int64_t value;
  bool valid;
  switch (opt) {
  case TRM_OPT_YIELD: value = (int64_t)(v % 5) - 1; valid = value >= 0 && value <= 2; break;
  case TRM_OPT_MAX_STEPS: value = (int64_t)(v % 8) - 1; valid = value >= 1; break;
  case TRM_OPT_HALT: value = (int64_t)(v % 4) - 1; valid = value == 0 || value == 1; break;
  case TRM_OPT_THREADS: /* at most 2 workers: a session's pool spins, and more threads only slow the fuzzer */
    value = v % 5 == 4 ? 1025 : (int64_t)(v % 5) - 1;
    valid = value >= 0 && value <= 2;
    break;
  default: value = (int8_t)v; valid = false; break;
  }
  int64_t before;
  bool known = opt >= TRM_OPT_YIELD && opt <= TRM_OPT_THREADS;
  if (known) expect_status(trm_session_get_option(r->s, opt, &before), TRM_OK, "get_option");
  else expect_status(trm_session_get_option(r->s, opt, &before), TRM_E_INVALID, "get_option of a non-option");
  trm_status st = trm_session_set_option(r->s, opt, value);
  if (opt == TRM_OPT_THREADS && valid && st == TRM_E_NOMEM) valid = false; /* threads may fail to start */
  else expect_status(st, valid ? TRM_OK : TRM_E_INVALID, "set_option");
  if (!known) return;
  int64_t after;
  expect_status(trm_session_get_option(r->s, opt, &after), TRM_OK, "get_option");
  if (!valid) FUZZ_CHECK(after == before, "a refused option keeps the old value");
  else if (opt == TRM_OPT_THREADS && value == 0) FUZZ_CHECK(after >= 1, "0 threads resolves to the CPU count");
  else FUZZ_CHECK(after == value, "an option reads back as set");
  if (opt == TRM_OPT_YIELD) r->yield = after;
}

static void op_set_input(run *r) {
  const world *w = r->w;
  size_t slot = pick_slot(r);
  uint8_t shape = fuzz_u8(&r->in);
  size_t n = (size_t)w->seq;
  if (shape % 16 == 1) n--;
  if (shape % 16 == 2) n++;
  int32_t tokens[16];
  bool valid = slot < r->batch && n == (size_t)w->seq;
  for (size_t i = 0; i < n; i++) {
    uint8_t t = fuzz_u8(&r->in);
    tokens[i] = t < 240 ? (int32_t)(t % w->vocab) : t < 248 ? (int32_t)w->vocab + (t & 3) : INT32_MIN + (t & 7);
    valid = valid && tokens[i] >= 0 && tokens[i] < w->vocab;
  }
  uint8_t p = fuzz_u8(&r->in);
  int32_t puzzle = p < 240 ? (int32_t)(p % w->ids) : p < 250 ? (int32_t)w->ids : -1;
  valid = valid && puzzle >= 0 && puzzle < w->ids;
  bool null_tokens = shape % 16 == 3;
  if (null_tokens) valid = false;

  /* a refused input changes nothing: state, step count and y stay as they were */
  trm_slot_state state_before = TRM_SLOT_EMPTY;
  int64_t steps_before = 0;
  if (slot < r->batch) {
    state_before = slot_state(r, slot, &steps_before);
    if (state_before != TRM_SLOT_EMPTY)
      expect_status(trm_session_latent(r->s, slot, TRM_LATENT_Y, r->buf, w->state), TRM_OK, "latent");
  }
  trm_status st = trm_session_set_input(r->s, slot, null_tokens ? NULL : tokens, n, puzzle);
  expect_status(st, valid ? TRM_OK : TRM_E_INVALID, "set_input");
  if (slot >= r->batch) return;
  int64_t steps;
  trm_slot_state state = slot_state(r, slot, &steps);
  if (!valid) {
    FUZZ_CHECK(state == state_before && steps == steps_before, "a refused input changes nothing");
    if (state != TRM_SLOT_EMPTY) {
      expect_status(trm_session_latent(r->s, slot, TRM_LATENT_Y, r->buf2, w->state), TRM_OK, "latent");
      FUZZ_CHECK(memcmp(r->buf, r->buf2, w->state * sizeof(float)) == 0, "a refused input keeps y");
    }
    return;
  }
  FUZZ_CHECK(state == TRM_SLOT_RUNNING && steps == 0, "a new input starts the slot afresh");
  expect_status(trm_session_latent(r->s, slot, TRM_LATENT_Y, r->buf, w->state), TRM_OK, "latent y");
  FUZZ_CHECK(memcmp(r->buf, w->h_init, w->state * sizeof(float)) == 0, "y starts at H_init on every row");
  expect_status(trm_session_latent(r->s, slot, TRM_LATENT_Z, r->buf, w->state), TRM_OK, "latent z");
  FUZZ_CHECK(memcmp(r->buf, w->l_init, w->state * sizeof(float)) == 0, "z starts at L_init on every row");
}

static void op_refine(run *r) {
  const world *w = r->w;
  struct {
    trm_event ev;
    unsigned char tail[16]; /* a newer caller's larger struct: libtrm must not write past trm_event */
  } big;
  memset(&big, 0x5A, sizeof big);
  uint8_t kind = fuzz_u8(&r->in) % 8;
  trm_event *ev = &big.ev;
  bool valid = true;
  if (kind == 0) ev = NULL;
  else if (kind == 1) big.ev.size = sizeof big;
  else if (kind == 2) big.ev.size = 0, valid = false;
  else if (kind == 3) big.ev.size = sizeof(trm_event) - 1, valid = false;
  else big.ev.size = sizeof(trm_event);
  trm_status st = trm_refine(r->s, ev);
  if (!valid) {
    expect_status(st, TRM_E_INVALID, "refine with a short event");
    return;
  }
  FUZZ_CHECK(st == TRM_OK || st == TRM_HALTED, "refine's status");
  for (size_t i = 0; i < sizeof big.tail; i++) FUZZ_CHECK(big.tail[i] == 0x5A, "nothing written past trm_event");
  size_t running = count_running(r);
  if (st == TRM_HALTED) FUZZ_CHECK(running == 0, "TRM_HALTED only when no slot runs");
  if (!ev) {
    if (st == TRM_OK) r->calls = -1;
    return;
  }
  FUZZ_CHECK(ev->size == (kind == 1 ? sizeof big : sizeof(trm_event)), "the event keeps its size");
  FUZZ_CHECK(ev->active == running, "event.active counts the running slots");
  if (st == TRM_HALTED) {
    FUZZ_CHECK(ev->kind == TRM_EVENT_NONE && (r->calls < 0 || ev->calls == r->calls), "nothing ran");
    r->calls = ev->calls;
    return;
  }
  FUZZ_CHECK(ev->kind == TRM_EVENT_LATENT || ev->kind == TRM_EVENT_ANSWER || ev->kind == TRM_EVENT_STEP, "event kind");
  FUZZ_CHECK(ev->cycle >= 1 && ev->cycle <= w->H && ev->call >= 1 && ev->call <= w->L + 1, "cycle and call");
  FUZZ_CHECK((ev->call == w->L + 1) == (ev->kind != TRM_EVENT_LATENT), "the last call of a cycle updates y");
  FUZZ_CHECK(ev->kind != TRM_EVENT_STEP || ev->cycle == w->H, "a step ends with its last cycle");
  FUZZ_CHECK(ev->halted <= r->batch && (ev->kind == TRM_EVENT_STEP || ev->halted == 0), "halted");
  if (r->yield == TRM_YIELD_STEP) FUZZ_CHECK(ev->kind == TRM_EVENT_STEP, "yield step runs a whole step");
  if (r->yield == TRM_YIELD_CALL && r->calls >= 0) FUZZ_CHECK(ev->calls == r->calls + 1, "yield call runs one call");
  FUZZ_CHECK(ev->calls > r->calls && ev->step >= 1, "calls grow");
  r->calls = ev->calls;
}

static void op_latent(run *r) {
  const world *w = r->w;
  size_t slot = pick_slot(r);
  uint8_t a = fuzz_u8(&r->in);
  trm_latent which = (trm_latent)(a % 4 == 3 ? 2 : a % 2);
  size_t n = a & 4 ? w->state - 1 : a & 8 ? 2 * w->state : w->state;
  float *out = a & 16 ? NULL : r->buf;
  trm_status want = slot_verdict(r, slot);
  if (want == TRM_OK && (which > TRM_LATENT_Z || n < w->state || !out)) want = TRM_E_INVALID;
  expect_status(trm_session_latent(r->s, slot, which, out, n), want, "latent");
}

static void op_set_latent(run *r) {
  const world *w = r->w;
  size_t slot = pick_slot(r);
  uint8_t a = fuzz_u8(&r->in);
  trm_latent which = (trm_latent)(a % 4 == 3 ? 2 : a % 2);
  size_t n = a & 4 ? w->state - 1 : a & 8 ? w->state + 1 : w->state;
  trm_status want = slot_verdict(r, slot);
  /* the new values: the current ones (or zeros) moved by the input, maybe with a NaN or an Inf */
  if (want == TRM_OK && which <= TRM_LATENT_Z) trm_session_latent(r->s, slot, which, r->buf, w->state);
  else memset(r->buf, 0, w->state * sizeof(float));
  uint8_t changes = fuzz_u8(&r->in) % 8;
  for (uint8_t i = 0; i < changes; i++) {
    size_t at = fuzz_u8(&r->in) % (n + 1 > w->state ? w->state : n + 1);
    int8_t delta = (int8_t)fuzz_u8(&r->in);
    if (at < w->state) r->buf[at] += (float)delta / 16.0f;
  }
  bool finite = true;
  uint8_t poison = fuzz_u8(&r->in);
  if (poison >= 224) {
    size_t at = poison % w->state;
    r->buf[at] = poison & 1 ? NAN : (poison & 2 ? INFINITY : -INFINITY);
    finite = at >= n;
  }
  if (want == TRM_OK && (which > TRM_LATENT_Z || n != w->state || !finite)) want = TRM_E_INVALID;

  bool filled = slot < r->batch && slot_state(r, slot, NULL) != TRM_SLOT_EMPTY;
  trm_latent readable = which <= TRM_LATENT_Z ? which : TRM_LATENT_Y;
  if (filled) expect_status(trm_session_latent(r->s, slot, readable, r->buf2, w->state), TRM_OK, "latent");
  int64_t steps_before = 0;
  trm_slot_state state_before = filled ? slot_state(r, slot, &steps_before) : TRM_SLOT_EMPTY;
  expect_status(trm_session_set_latent(r->s, slot, which, r->buf, n), want, "set_latent");
  if (!filled) return;
  int64_t steps;
  FUZZ_CHECK(slot_state(r, slot, &steps) == state_before && steps == steps_before, "set_latent keeps the slot's state");
  expect_status(trm_session_latent(r->s, slot, readable, r->buf2 + w->state, w->state), TRM_OK, "latent");
  const float *expect = want == TRM_OK ? r->buf : r->buf2;
  FUZZ_CHECK(memcmp(r->buf2 + w->state, expect, w->state * sizeof(float)) == 0,
             want == TRM_OK ? "a latent reads back as written" : "a refused latent changes nothing");
}

static void op_outputs(run *r) {
  const world *w = r->w;
  size_t slot = pick_slot(r);
  uint8_t a = fuzz_u8(&r->in);
  trm_status filled = slot_verdict(r, slot);
  int32_t tokens[16];
  float conf[16];
  size_t n = a & 1 ? (size_t)w->seq - 1 : (size_t)w->seq;
  trm_status want = filled == TRM_OK && n < (size_t)w->seq ? TRM_E_INVALID : filled;
  int32_t *tok_out = a & 2 ? NULL : tokens;
  float *conf_out = a & 4 ? NULL : conf;
  expect_status(trm_session_answer(r->s, slot, tok_out, conf_out, n), want, "answer");
  bool have_answer = want == TRM_OK && tok_out;
  if (want == TRM_OK) {
    for (int64_t i = 0; i < w->seq; i++) {
      if (tok_out) FUZZ_CHECK(tokens[i] >= 0 && tokens[i] < w->vocab, "answer tokens are in the vocabulary");
      if (conf_out) FUZZ_CHECK(isnan(conf[i]) || (conf[i] > 0.0f && conf[i] <= 1.0f), "confidence in (0, 1]");
    }
  }
  size_t need = (size_t)(w->seq * w->vocab), m = a & 8 ? need - 1 : need + (a & 16 ? 3 : 0);
  float logits[64];
  float *lg_out = a & 32 ? NULL : logits;
  want = filled == TRM_OK && (m < need || !lg_out) ? TRM_E_INVALID : filled;
  expect_status(trm_session_logits(r->s, slot, lg_out, m), want, "logits");
  if (want == TRM_OK && have_answer) /* the answer is the argmax of the logits, the lowest id on ties */
    for (int64_t i = 0; i < w->seq; i++) {
      const float *row = logits + i * w->vocab;
      int32_t best = 0;
      for (int32_t v = 1; v < w->vocab; v++)
        if (row[v] > row[best]) best = v;
      FUZZ_CHECK(isnan(row[best]) || best == tokens[i], "answer = argmax of the logits");
    }
  float qh, qc;
  expect_status(trm_session_q(r->s, slot, a & 64 ? NULL : &qh, a & 128 ? NULL : &qc), filled, "q");
}

static void op_new_session(run *r) {
  uint8_t b = fuzz_u8(&r->in);
  trm_session *fresh = (trm_session *)r; /* sentinel: must stay untouched on failure */
  if (b % 8 == 7) {
    expect_status(trm_session_create(r->w->m, 0, &fresh), TRM_E_INVALID, "create with batch 0");
    FUZZ_CHECK(fresh == (trm_session *)r, "a failed create leaves *out untouched");
    expect_status(trm_session_create(NULL, 1, &fresh), TRM_E_INVALID, "create without a model");
    return;
  }
  trm_session_free(r->s);
  r->batch = 1 + b % MAX_BATCH;
  r->s = NULL;
  expect_status(trm_session_create(r->w->m, r->batch, &r->s), TRM_OK, "session_create");
  r->calls = 0;
  r->yield = TRM_YIELD_STEP;
}

static void op_null_and_info(run *r) {
  uint8_t a = fuzz_u8(&r->in);
  char key[24];
  size_t len = a % sizeof key;
  for (size_t i = 0; i < len; i++) key[i] = (char)fuzz_u8(&r->in);
  key[len] = '\0';
  static const char *const known[] = {"hidden_size", "seq_len", "vocab_size", "state_len", "isa", "param_count"};
  int64_t v;
  bool is_known = false;
  static const char *const all_keys[] = {
      "hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len", "vocab_size",
      "num_puzzle_identifiers", "puzzle_emb_ndim", "puzzle_emb_len", "halt_max_steps", "mlp_t", "no_ACT_continue",
      "pos_encodings", "state_len", "head_dim", "inter_size", "inter_t_size", "param_count", "isa"};
  for (size_t i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) is_known = is_known || !strcmp(key, all_keys[i]);
  expect_status(trm_model_info(r->w->m, key, &v), is_known ? TRM_OK : TRM_E_INVALID, "model_info");
  expect_status(trm_model_info(r->w->m, known[a % 6], &v), TRM_OK, "model_info");
  expect_status(trm_model_info(r->w->m, known[a % 6], NULL), TRM_E_INVALID, "model_info NULL");
  /* every entry point refuses a NULL session */
  float f;
  int32_t t;
  trm_slot_state state;
  expect_status(trm_refine(NULL, NULL), TRM_E_INVALID, "refine(NULL)");
  expect_status(trm_session_set_option(NULL, TRM_OPT_YIELD, 0), TRM_E_INVALID, "set_option(NULL)");
  expect_status(trm_session_get_option(r->s, TRM_OPT_YIELD, NULL), TRM_E_INVALID, "get_option NULL value");
  expect_status(trm_session_set_input(NULL, 0, &t, 1, 0), TRM_E_INVALID, "set_input(NULL)");
  expect_status(trm_session_slot_state(NULL, 0, &state, NULL), TRM_E_INVALID, "slot_state(NULL)");
  expect_status(trm_session_latent(NULL, 0, TRM_LATENT_Y, &f, 1), TRM_E_INVALID, "latent(NULL)");
  expect_status(trm_session_set_latent(NULL, 0, TRM_LATENT_Y, &f, 1), TRM_E_INVALID, "set_latent(NULL)");
  expect_status(trm_session_answer(NULL, 0, &t, &f, 1), TRM_E_INVALID, "answer(NULL)");
  expect_status(trm_session_logits(NULL, 0, &f, 1), TRM_E_INVALID, "logits(NULL)");
  expect_status(trm_session_q(NULL, 0, &f, &f), TRM_E_INVALID, "q(NULL)");
}

static void free_worlds(void) {
  for (int i = 0; i < N_WORLDS; i++) {
    trm_model_free(worlds[i].m);
    mb_free(worlds[i].mb);
    free(worlds[i].h_init);
    free(worlds[i].l_init);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!worlds[0].m) {
    for (int i = 0; i < N_WORLDS; i++) make_world(&worlds[i], i);
    atexit(free_worlds);
  }
  run r;
  memset(&r, 0, sizeof r);
  r.in.p = data;
  r.in.left = size;
  r.w = &worlds[fuzz_u8(&r.in) % N_WORLDS];
  r.batch = 1 + fuzz_u8(&r.in) % MAX_BATCH;
  r.yield = TRM_YIELD_STEP;
  r.buf = calloc(2 * r.w->state, sizeof(float));
  r.buf2 = calloc(2 * r.w->state, sizeof(float));
  FUZZ_CHECK(r.buf && r.buf2, "malloc");
  expect_status(trm_session_create(r.w->m, r.batch, &r.s), TRM_OK, "session_create");
  for (int op = 0; op < MAX_OPS && r.in.left > 0; op++) {
    switch (fuzz_u8(&r.in) % 10) {
    case 0: op_set_option(&r); break;
    case 1: case 2: op_set_input(&r); break;
    case 3: case 4: op_refine(&r); break;
    case 5: op_latent(&r); break;
    case 6: op_set_latent(&r); break;
    case 7: op_outputs(&r); break;
    case 8: op_new_session(&r); break;
    default: op_null_and_info(&r); break;
    }
  }
  trm_session_free(r.s);
  free(r.buf);
  free(r.buf2);
  return 0;
}
