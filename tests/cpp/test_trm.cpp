// Tests of include/trm.hpp against the C API it wraps, on a real model file:
//
//   test_trm MODEL.safetensors
//
// RAII and moves, trm::Error for bad paths, files and arguments (with the C status), the event
// range in every yield unit (event by event equal to trm_refine() on a C session), early exit
// and resumption, answer / latent / set_latent round trips, and every output bitwise equal to
// what the C API gives for the same inputs. Prints one line per failed check; exits 1 if any.
#include "trm.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <type_traits>

// An exception is copied when thrown and caught; a copy that could throw would end the program
// (std::terminate) in exactly the situation it reports.
static_assert(std::is_nothrow_copy_constructible<trm::Error>::value, "trm::Error copies without throwing");
static_assert(std::is_nothrow_copy_assignable<trm::Error>::value, "trm::Error assigns without throwing");
static_assert(std::is_nothrow_move_constructible<trm::Model>::value && std::is_nothrow_move_constructible<trm::Session>::value,
              "handles move without throwing");

namespace {

int failures = 0, checks = 0;

void check(bool ok, const char *what, int line) {
  checks++;
  if (!ok) {
    failures++;
    std::printf("FAIL line %d: %s\n", line, what);
  }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

// Runs `statement`, which must throw a trm::Error with status `expected` and a non-empty message.
#define CHECK_THROWS(statement, expected)                                                                     \
  do {                                                                                                        \
    bool thrown_ = false;                                                                                     \
    try {                                                                                                     \
      statement;                                                                                              \
    } catch (const trm::Error &e) {                                                                           \
      thrown_ = true;                                                                                         \
      check(e.status() == (expected), #statement " throws " #expected, __LINE__);                            \
      check(!e.library_message().empty() && std::string(e.what()).find(e.library_message()) != std::string::npos, \
            #statement ": what() holds the library's message", __LINE__);                                     \
    }                                                                                                         \
    check(thrown_, #statement " throws trm::Error", __LINE__);                                                \
  } while (0)

// A puzzle for the model: token i = (i * stride + offset) mod vocab.
std::vector<int32_t> puzzle(std::size_t seq_len, std::size_t vocab, std::size_t stride, std::size_t offset) {
  std::vector<int32_t> tokens(seq_len);
  for (std::size_t i = 0; i < seq_len; i++) tokens[i] = static_cast<int32_t>((i * stride + offset) % vocab);
  return tokens;
}

template <class T> bool same_bits(const std::vector<T> &a, const std::vector<T> &b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool same_event(const trm::Event &a, const trm_event &b) {
  return a.kind == b.kind && a.step == b.step && a.cycle == b.cycle && a.call == b.call && a.calls == b.calls &&
         a.active == b.active && a.halted == b.halted;
}

// A C session of `batch` slots with the two test puzzles, as the C++ side sets them.
struct CSession {
  trm_session *s = nullptr;
  CSession(const trm_model *m, std::size_t batch, const std::vector<int32_t> &p0, const std::vector<int32_t> &p1) {
    if (trm_session_create(m, batch, &s) != TRM_OK) return;
    trm_session_set_input(s, 0, p0.data(), p0.size(), 0);
    if (batch > 1) trm_session_set_input(s, 1, p1.data(), p1.size(), 0);
  }
  ~CSession() { trm_session_free(s); }
  CSession(const CSession &) = delete;
  CSession &operator=(const CSession &) = delete;
};

void test_errors(const char *path, const char *not_a_model) {
  CHECK_THROWS(trm::Model("/nonexistent/dir/model.safetensors"), TRM_E_IO);
  CHECK_THROWS(trm::Model{not_a_model}, TRM_E_FORMAT);
  const char garbage[16] = {1, 2, 3};
  CHECK_THROWS(trm::Model::from_memory(garbage, sizeof garbage), TRM_E_FORMAT);

  trm::Model model(path);
  const std::size_t seq_len = model.seq_len(), vocab = model.vocab_size();
  CHECK_THROWS(model.info("no_such_key"), TRM_E_INVALID);
  CHECK_THROWS(model.info_double("seq_len"), TRM_E_INVALID);
  CHECK_THROWS(model.session(0), TRM_E_INVALID);

  trm::Session session = model.session(2);
  CHECK_THROWS(session.set_option(TRM_OPT_YIELD, 7), TRM_E_INVALID);
  CHECK_THROWS(session.set_max_steps(0), TRM_E_INVALID);
  CHECK_THROWS(session.refine(static_cast<trm_yield>(3)), TRM_E_INVALID); // in the enum's range, not a unit
  CHECK_THROWS(session.set_input(0, std::vector<int32_t>(seq_len + 1, 0)), TRM_E_INVALID);
  CHECK_THROWS(session.set_input(0, {1, 2, 3}), TRM_E_INVALID);
  std::vector<int32_t> tokens = puzzle(seq_len, vocab, 1, 0);
  tokens[3] = static_cast<int32_t>(vocab); // one past the vocabulary
  CHECK_THROWS(session.set_input(0, tokens), TRM_E_INVALID);
  tokens[3] = 0;
  CHECK_THROWS(session.set_input(2, tokens), TRM_E_INVALID);            // slot outside the batch
  CHECK_THROWS(session.set_input(0, tokens, -1), TRM_E_INVALID);        // puzzle id
  CHECK_THROWS(session.answer(1), TRM_E_STATE);                         // no input yet
  CHECK_THROWS(session.latent(0, TRM_LATENT_Y), TRM_E_STATE);
  CHECK_THROWS(session.q(0), TRM_E_STATE);
  CHECK_THROWS(session.logits(0), TRM_E_STATE);
  CHECK(session.slot_state(0) == TRM_SLOT_EMPTY);

  session.set_input(0, tokens);
  CHECK(session.slot_state(0) == TRM_SLOT_RUNNING);
  std::vector<float> y = session.latent(0, TRM_LATENT_Y);
  CHECK_THROWS(session.set_latent(0, TRM_LATENT_Y, trm::View<const float>(y.data(), y.size() - 1)), TRM_E_INVALID);
  y[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS(session.set_latent(0, TRM_LATENT_Z, y), TRM_E_INVALID);
  std::vector<int32_t> short_tokens(seq_len - 1);
  CHECK_THROWS(session.answer_into(0, short_tokens, trm::View<float>()), TRM_E_INVALID);
  std::vector<float> short_floats(session.state_size() - 1);
  CHECK_THROWS(session.latent_into(0, TRM_LATENT_Z, short_floats), TRM_E_INVALID);

  // a moved-from handle holds nothing: its calls fail as the C API does on NULL
  trm::Session moved = std::move(session);
  CHECK(session.get() == nullptr && moved.get() != nullptr);
  trm::Event unused;
  CHECK_THROWS(session.refine_once(unused), TRM_E_INVALID);
  CHECK_THROWS(session.answer(0), TRM_E_INVALID);
  trm::Model moved_model = std::move(model);
  CHECK(model.get() == nullptr && moved_model.get() != nullptr);
  CHECK_THROWS(model.info("seq_len"), TRM_E_INVALID);
  CHECK_THROWS(model.session(1), TRM_E_INVALID);
  CHECK(moved.answer(0).tokens.size() == seq_len); // the moved session still works
}

// The model facts documented in models/README.md for the demo model (conf_att_rope).
void test_config(const char *path) {
  trm::Model model(path);
  trm::Config c = model.config();
  CHECK(c.hidden_size == 32 && c.num_heads == 2 && c.L_layers == 2 && c.seq_len == 16 && c.vocab_size == 10);
  CHECK(c.H_cycles == 2 && c.L_cycles == 2 && c.halt_max_steps == 6 && c.pos_encodings == 1 && c.mlp_t == 0);
  CHECK(c.puzzle_emb_len == 16 && c.state_len == 32 && c.head_dim == 16);
  CHECK(c.rms_norm_eps > 0 && c.rms_norm_eps < 1e-3 && c.rope_theta > 1);
  CHECK(model.seq_len() == 16 && model.state_len() == 32 && model.hidden_size() == 32 && model.halt_max_steps() == 6);

  // the same model loaded from memory
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  trm::Model from_memory = trm::Model::from_memory(bytes.data(), bytes.size());
  trm::Config m = from_memory.config();
  CHECK(m.param_count == c.param_count && m.state_len == c.state_len && m.rope_theta == c.rope_theta);
  CHECK(!trm::version().empty() && trm::version() == trm_version_string());
}

// A session outlives its Model object: they share the trm_model.
void test_ownership(const char *path) {
  std::vector<int32_t> tokens;
  trm::Session session = [&] {
    trm::Model model(path);
    tokens = puzzle(model.seq_len(), model.vocab_size(), 3, 1);
    return model.session(1);
  }();
  session.set_input(0, tokens);
  trm::Event ev;
  CHECK(session.refine_once(ev) && ev.kind == TRM_EVENT_STEP && ev.step == 1);

  // move assignment frees the old session and keeps the new one's model
  trm::Model other(path);
  session = other.session(3);
  CHECK(session.batch() == 3 && session.slot_state(2) == TRM_SLOT_EMPTY);
  trm::Session empty = std::move(session);
  session = std::move(empty);
  CHECK(session.batch() == 3 && session.get() != nullptr && empty.get() == nullptr);
}

// Every yield unit: the range gives, event by event, what trm_refine() gives a C session on the
// same inputs; it ends exactly when trm_refine() returns TRM_HALTED, with the expected count.
void test_events(const char *path) {
  trm::Model model(path);
  trm::Config c = model.config();
  const auto p0 = puzzle(model.seq_len(), model.vocab_size(), 1, 0), p1 = puzzle(model.seq_len(), model.vocab_size(), 7, 2);
  const trm_yield units[] = {TRM_YIELD_CALL, TRM_YIELD_CYCLE, TRM_YIELD_STEP};
  const int64_t per_step[] = {c.H_cycles * (c.L_cycles + 1), c.H_cycles, 1};
  for (int u = 0; u < 3; u++) {
    trm::Session session = model.session(2);
    session.set_input(0, p0);
    session.set_input(1, p1);
    CSession ref(model.get(), 2, p0, p1);
    trm_session_set_option(ref.s, TRM_OPT_YIELD, units[u]);

    int64_t events = 0, steps_ended = 0;
    bool all_same = true;
    trm_event ev_c = TRM_EVENT_INIT;
    trm::Event last;
    for (const trm::Event &ev : session.refine(units[u])) {
      all_same = all_same && trm_refine(ref.s, &ev_c) == TRM_OK && same_event(ev, ev_c);
      if (ev.kind == TRM_EVENT_STEP) steps_ended++;
      CHECK(ev.kind == (units[u] == TRM_YIELD_STEP ? TRM_EVENT_STEP : ev.kind)); // a step unit always ends a step
      events++;
      last = ev;
    }
    CHECK(all_same);
    CHECK(trm_refine(ref.s, &ev_c) == TRM_HALTED); // both ended together
    CHECK(session.option(TRM_OPT_YIELD) == units[u]);
    CHECK(events == c.halt_max_steps * per_step[u]);
    CHECK(steps_ended == c.halt_max_steps);
    CHECK(last.kind == TRM_EVENT_STEP && last.active == 0 && last.halted == 2 && last.step == c.halt_max_steps);
    CHECK(session.slot_state(0) == TRM_SLOT_HALTED && session.steps(1) == c.halt_max_steps);
    int64_t more = 0;
    for (const trm::Event &ev : session.refine()) more += ev.step; // nothing is left to run
    CHECK(more == 0);
  }

  // leaving the loop early keeps the session where it was; a new range goes on from there
  trm::Session session = model.session(1);
  session.set_input(0, p0);
  session.set_yield(TRM_YIELD_CALL);
  int64_t first = 0, rest = 0, last_calls = 0;
  for (const trm::Event &ev : session.refine()) {
    if (++first == 4) break;
    (void)ev;
  }
  CHECK(session.steps(0) == 4 / per_step[0] && session.slot_state(0) == TRM_SLOT_RUNNING);
  for (const trm::Event &ev : session.refine()) {
    rest++;
    last_calls = ev.calls;
  }
  CHECK(first + rest == c.halt_max_steps * per_step[0] && last_calls == first + rest);

  // the iterator's explicit use
  session.set_input(0, p1);
  auto range = session.refine(TRM_YIELD_STEP);
  auto it = range.begin();
  // ev.step counts the session's steps (6 ran before this input), the slot's own count restarts
  const int64_t first_step = it->step;
  CHECK(it != range.end() && first_step == c.halt_max_steps + 1 && (*it).kind == TRM_EVENT_STEP && session.steps(0) == 1);
  ++it;
  CHECK(it->step == first_step + 1);
  it++;
  CHECK(it->step == first_step + 2 && session.steps(0) == 3);
}

// Outputs equal the C API's bitwise, step by step, for two slots with different puzzles.
void test_same_as_c(const char *path) {
  trm::Model model(path);
  const auto p0 = puzzle(model.seq_len(), model.vocab_size(), 1, 0), p1 = puzzle(model.seq_len(), model.vocab_size(), 5, 3);
  trm::Session session = model.session(2);
  session.set_threads(2); // bitwise identical for every thread count, as the C API promises
  session.set_input(0, p0);
  session.set_input(1, p1);
  CSession ref(model.get(), 2, p0, p1);
  const std::size_t seq_len = model.seq_len(), n_logits = seq_len * model.vocab_size(), n_state = session.state_size();
  int steps = 0;
  bool answers = true, confidences = true, qs = true, logits = true, latents = true;
  for (const trm::Event &ev : session.refine(TRM_YIELD_STEP)) {
    trm_event ev_c = TRM_EVENT_INIT;
    CHECK(trm_refine(ref.s, &ev_c) == TRM_OK && same_event(ev, ev_c));
    for (std::size_t slot = 0; slot < 2; slot++) {
      trm::Answer a = session.answer(slot);
      std::vector<int32_t> tokens(seq_len);
      std::vector<float> confidence(seq_len), lg(n_logits), y(n_state), z(n_state);
      trm_session_answer(ref.s, slot, tokens.data(), confidence.data(), seq_len);
      answers = answers && same_bits(a.tokens, tokens);
      confidences = confidences && same_bits(a.confidence, confidence);
      float qh = 0, qc = 0;
      trm_session_q(ref.s, slot, &qh, &qc);
      trm::QValues q = session.q(slot);
      qs = qs && q.q_halt == qh && q.q_continue == qc;
      trm_session_logits(ref.s, slot, lg.data(), lg.size());
      logits = logits && same_bits(session.logits(slot), lg);
      trm_session_latent(ref.s, slot, TRM_LATENT_Y, y.data(), y.size());
      trm_session_latent(ref.s, slot, TRM_LATENT_Z, z.data(), z.size());
      latents = latents && same_bits(session.latent(slot, TRM_LATENT_Y), y) && same_bits(session.latent(slot, TRM_LATENT_Z), z);
      // the allocation-free variants give the same
      std::vector<int32_t> into_tokens(seq_len);
      session.answer_into(slot, into_tokens, trm::View<float>());
      answers = answers && same_bits(into_tokens, tokens);
    }
    steps++;
  }
  CHECK(steps == model.halt_max_steps());
  CHECK(answers);
  CHECK(confidences);
  CHECK(qs);
  CHECK(logits);
  CHECK(latents);
  // the two puzzles give different states (else the comparison above proves little)
  CHECK(!same_bits(session.latent(0, TRM_LATENT_Z), session.latent(1, TRM_LATENT_Z)));
}

// latent -> set_latent round trips, and an intervention changes exactly what it should.
void test_latent(const char *path) {
  trm::Model model(path);
  const auto p0 = puzzle(model.seq_len(), model.vocab_size(), 1, 0), p1 = puzzle(model.seq_len(), model.vocab_size(), 3, 4);
  trm::Session a = model.session(1), b = model.session(1);
  a.set_input(0, p0);
  b.set_input(0, p1);
  trm::Event ev;
  a.refine_once(ev);
  b.refine_once(ev);
  a.refine_once(ev);
  b.refine_once(ev);

  // read, write back unchanged: nothing changes, steps are kept
  std::vector<float> y = a.latent(0, TRM_LATENT_Y), z = a.latent(0, TRM_LATENT_Z);
  trm::Answer before = a.answer(0);
  a.set_latent(0, TRM_LATENT_Y, y);
  a.set_latent(0, TRM_LATENT_Z, z);
  CHECK(same_bits(a.latent(0, TRM_LATENT_Y), y) && same_bits(a.latent(0, TRM_LATENT_Z), z));
  CHECK(same_bits(a.answer(0).tokens, before.tokens) && a.steps(0) == 2);

  // a changed y reads back exactly, and the answer is the one its y gives
  std::vector<float> scaled(y);
  for (float &v : scaled) v *= 0.5f;
  a.set_latent(0, TRM_LATENT_Y, scaled);
  CHECK(same_bits(a.latent(0, TRM_LATENT_Y), scaled) && same_bits(a.latent(0, TRM_LATENT_Z), z));
  a.set_latent(0, TRM_LATENT_Y, y);
  CHECK(same_bits(a.answer(0).tokens, before.tokens));

  // transplanting b's whole state into a makes a's outputs and its next step b's
  a.set_latent(0, TRM_LATENT_Y, b.latent(0, TRM_LATENT_Y));
  a.set_latent(0, TRM_LATENT_Z, b.latent(0, TRM_LATENT_Z));
  CHECK(same_bits(a.answer(0).confidence, b.answer(0).confidence));
  // a's next step still injects a's own puzzle x: the states part again, unless x is unused
  a.refine_once(ev);
  b.refine_once(ev);
  CHECK(!same_bits(a.latent(0, TRM_LATENT_Z), b.latent(0, TRM_LATENT_Z)));

  // the View conversions: std::array, C array, pointer and size
  std::array<int32_t, 16> arr{};
  int32_t carr[16] = {0};
  a.set_input(0, arr);
  a.set_input(0, carr);
  a.set_input(0, trm::View<const int32_t>(p0.data(), p0.size()));
  CHECK(a.steps(0) == 0);
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors\n", argv[0]);
    return 2;
  }
  try {
    test_errors(argv[1], argv[0]); // this program's own file is not a model
    test_config(argv[1]);
    test_ownership(argv[1]);
    test_events(argv[1]);
    test_same_as_c(argv[1]);
    test_latent(argv[1]);
  } catch (const std::exception &e) {
    std::printf("FAIL: unexpected exception: %s\n", e.what());
    failures++;
  }
  std::printf("C++ binding: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
