/**
 * @file trm.hpp
 * @brief libtrm for C++17: RAII handles, exceptions and a range over trm_refine(), header-only.
 *
 * A thin layer over the C API of trm.h; it adds no state of its own beyond what the C
 * objects hold, and links against the same libtrm. In short:
 *
 * - trm::Model and trm::Session own a ::trm_model / ::trm_session and free it in their
 *   destructor. Both are move-only. A session keeps its model alive (the two share
 *   ownership of the ::trm_model), so their order of destruction does not matter.
 * - Every failing C call becomes a trm::Error (a std::runtime_error) that carries the
 *   ::trm_status and the library's message, trm_last_error().
 * - Session::refine() is a single-pass range: each iteration calls trm_refine() once and
 *   yields the trm::Event it filled; the range ends when trm_refine() returns ::TRM_HALTED.
 *   Leaving the loop early (`break`) leaves the session where it is: a later refine() goes on.
 * - Results are copied out into std::vector (the caller owns them). Inputs are taken as a
 *   trm::View, a non-owning pointer-and-size pair (C++17 has no std::span) that converts
 *   from std::vector, std::array and C arrays. The `*_into` variants write
 *   into a caller's buffers instead, for loops that must not allocate.
 *
 * The C enums (::trm_yield, ::trm_halt, ::trm_latent, ::trm_slot_state, ::trm_event_kind)
 * are used as they are.
 *
 * @code
 * trm::Model model("model.safetensors");
 * trm::Session session = model.session(1);
 * session.set_input(0, puzzle);                        // puzzle: std::vector<int32_t>
 * for (const trm::Event &ev : session.refine(TRM_YIELD_STEP))
 *   std::cout << ev.step << ": q_halt " << session.q(0).q_halt << "\n";
 * trm::Answer answer = session.answer(0);
 * @endcode
 */
#ifndef TRM_HPP
#define TRM_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "trm.h"

/** @brief The C++ interface of libtrm. */
namespace trm {

/**
 * @brief A failed libtrm call: its ::trm_status and the library's message.
 *
 * what() reads "<trm_status_string()>: <trm_last_error()>". Copies never throw (the message
 * is shared, as std::runtime_error shares its own), as an exception's copies must not.
 */
class Error : public std::runtime_error {
public:
  /**
   * @brief Makes an error from a status and the library's message.
   * @param status The status the C call returned.
   * @param library_message trm_last_error() right after the failure.
   */
  Error(trm_status status, const std::string &library_message)
      : std::runtime_error(std::string(trm_status_string(status)) + ": " + library_message), status_(status),
        library_message_(std::make_shared<const std::string>(library_message)) {}

  /** @brief The ::trm_status the C call returned. @return It. */
  trm_status status() const noexcept { return status_; }

  /** @brief What the library said (trm_last_error() at the time). @return The message. */
  const std::string &library_message() const noexcept { return *library_message_; }

private:
  trm_status status_;
  std::shared_ptr<const std::string> library_message_;
};

/** @brief Helpers of this header; not part of the interface. */
namespace detail {

/**
 * @brief Throws a trm::Error unless @p status is ::TRM_OK or ::TRM_HALTED.
 * @param status What a C call returned.
 * @return @p status, when it is not an error.
 */
inline trm_status check(trm_status status) {
  if (status < 0) throw Error(status, trm_last_error());
  return status;
}

} // namespace detail

/**
 * @brief A non-owning view of @c size() contiguous elements of type @p T.
 *
 * Converts from anything with data() and size() (std::vector, std::array, std::string
 * ...) and from a C array. It never copies, so what it views must outlive it; as a
 * function argument that is always so.
 * @tparam T The element type, const for read-only views.
 */
template <class T> class View {
public:
  /** @brief An empty view. */
  constexpr View() noexcept = default;

  /**
   * @brief A view of @p size elements starting at @p data.
   * @param data First element (may be NULL when @p size is 0).
   * @param size Number of elements.
   */
  constexpr View(T *data, std::size_t size) noexcept : data_(data), size_(size) {}

  /**
   * @brief A view of a whole C array.
   * @tparam N Its length.
   * @param array The array.
   */
  template <std::size_t N> constexpr View(T (&array)[N]) noexcept : data_(array), size_(N) {}

  /**
   * @brief A view of a container's elements (anything with data() and size()).
   *
   * Temporaries are accepted only for views of const elements, as std::span does.
   * @tparam C The container type.
   * @param container The container.
   */
  template <class C, class = std::enable_if_t<
                         std::is_convertible<decltype(std::data(std::declval<C &>())), T *>::value &&
                         (std::is_lvalue_reference<C>::value || std::is_const<T>::value) &&
                         !std::is_same<std::decay_t<C>, View>::value>>
  constexpr View(C &&container) noexcept : data_(std::data(container)), size_(std::size(container)) {}

  /** @brief The first element. @return A pointer to it. */
  constexpr T *data() const noexcept { return data_; }
  /** @brief The number of elements. @return It. */
  constexpr std::size_t size() const noexcept { return size_; }
  /** @brief Whether the view has no element. @return true when size() is 0. */
  constexpr bool empty() const noexcept { return size_ == 0; }
  /** @brief Start of the elements. @return data(). */
  constexpr T *begin() const noexcept { return data_; }
  /** @brief End of the elements. @return data() + size(). */
  constexpr T *end() const noexcept { return data_ + size_; }
  /**
   * @brief Element @p i, unchecked.
   * @param i Index, below size().
   * @return A reference to it.
   */
  constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }

private:
  T *data_ = nullptr;
  std::size_t size_ = 0;
};

/**
 * @brief A model's configuration, read once with trm_model_info() / trm_model_info_double().
 *
 * The fields carry the names of trm_model_info()'s keys (see there for their meaning).
 */
struct Config {
  int64_t hidden_size = 0;            /**< Width D of the states. */
  int64_t num_heads = 0;              /**< Attention heads. */
  int64_t L_layers = 0;               /**< Blocks of the tiny network. */
  int64_t H_cycles = 0;               /**< Answer updates per supervision step. */
  int64_t L_cycles = 0;               /**< Latent updates per answer update. */
  int64_t seq_len = 0;                /**< Tokens of a puzzle. */
  int64_t vocab_size = 0;             /**< Token ids are in [0, vocab_size). */
  int64_t num_puzzle_identifiers = 0; /**< Puzzle ids are in [0, num_puzzle_identifiers). */
  int64_t puzzle_emb_ndim = 0;        /**< Width of the puzzle embedding, 0 without one. */
  int64_t puzzle_emb_len = 0;         /**< P, the rows of the puzzle prefix. */
  int64_t halt_max_steps = 0;         /**< Supervision steps by default. */
  int64_t mlp_t = 0;                  /**< 1 when the token mixer is an MLP instead of attention. */
  int64_t no_ACT_continue = 0;        /**< 1 when halting looks at q_halt alone. */
  int64_t pos_encodings = 0;          /**< 0 none, 1 rope, 2 learned. */
  int64_t state_len = 0;              /**< S = seq_len + P, the rows of y and z. */
  int64_t head_dim = 0;               /**< hidden_size / num_heads. */
  int64_t inter_size = 0;             /**< Width of the SwiGLU. */
  int64_t inter_t_size = 0;           /**< Width of the token-MLP SwiGLU, 0 without mlp_t. */
  int64_t param_count = 0;            /**< Number of parameters. */
  int64_t isa = 0;                    /**< Matrix kernel: 0 scalar, 1 AVX2, 2 AVX-512, 3 NEON. */
  double rms_norm_eps = 0;            /**< RMSNorm epsilon. */
  double rope_theta = 0;              /**< RoPE base. */
  double expansion = 0;               /**< SwiGLU expansion, 0 when the file does not give it. */
};

class Session;

/**
 * @brief A loaded model (owns a ::trm_model). Move-only; immutable once loaded.
 *
 * Like the C model, one Model may be used by any number of threads at once.
 */
class Model {
public:
  /**
   * @brief Loads a model file (trm_model_load()).
   * @param path The file.
   * @throws Error ::TRM_E_IO, ::TRM_E_FORMAT, ::TRM_E_UNSUPPORTED, ::TRM_E_NOMEM, ::TRM_E_INVALID.
   */
  explicit Model(const std::string &path) {
    trm_model *raw = nullptr;
    detail::check(trm_model_load(path.c_str(), &raw));
    model_.reset(raw, trm_model_free);
  }

  /**
   * @brief Loads a model from the bytes of a model file (trm_model_load_memory()).
   * @param data The file's bytes; they may be freed once this returns.
   * @param size Their number.
   * @return The model.
   * @throws Error As the constructor, without ::TRM_E_IO.
   */
  static Model from_memory(const void *data, std::size_t size) {
    trm_model *raw = nullptr;
    detail::check(trm_model_load_memory(data, size, &raw));
    return Model(std::shared_ptr<trm_model>(raw, trm_model_free));
  }

  /** @brief Moves the model; @p other is left empty (its calls throw ::TRM_E_INVALID). @param other The source. */
  Model(Model &&other) noexcept = default;
  /** @brief Moves the model; the one held before is released. @param other The source. @return *this. */
  Model &operator=(Model &&other) noexcept = default;
  Model(const Model &) = delete;            ///< Move-only.
  Model &operator=(const Model &) = delete; ///< Move-only.
  /** @brief Releases the model; it is freed once no session uses it either. */
  ~Model() = default;

  /**
   * @brief One integer fact (trm_model_info()).
   * @param key A key trm_model_info() knows, such as "seq_len".
   * @return Its value.
   * @throws Error ::TRM_E_INVALID for an unknown key.
   */
  int64_t info(const char *key) const {
    int64_t value = 0;
    detail::check(trm_model_info(model_.get(), key, &value));
    return value;
  }

  /**
   * @brief One real-valued fact (trm_model_info_double()).
   * @param key "rms_norm_eps", "rope_theta" or "expansion".
   * @return Its value.
   * @throws Error ::TRM_E_INVALID for an unknown key.
   */
  double info_double(const char *key) const {
    double value = 0;
    detail::check(trm_model_info_double(model_.get(), key, &value));
    return value;
  }

  /** @brief The whole configuration. @return Every key of trm_model_info() and trm_model_info_double(). */
  Config config() const {
    Config c;
    c.hidden_size = info("hidden_size");
    c.num_heads = info("num_heads");
    c.L_layers = info("L_layers");
    c.H_cycles = info("H_cycles");
    c.L_cycles = info("L_cycles");
    c.seq_len = info("seq_len");
    c.vocab_size = info("vocab_size");
    c.num_puzzle_identifiers = info("num_puzzle_identifiers");
    c.puzzle_emb_ndim = info("puzzle_emb_ndim");
    c.puzzle_emb_len = info("puzzle_emb_len");
    c.halt_max_steps = info("halt_max_steps");
    c.mlp_t = info("mlp_t");
    c.no_ACT_continue = info("no_ACT_continue");
    c.pos_encodings = info("pos_encodings");
    c.state_len = info("state_len");
    c.head_dim = info("head_dim");
    c.inter_size = info("inter_size");
    c.inter_t_size = info("inter_t_size");
    c.param_count = info("param_count");
    c.isa = info("isa");
    c.rms_norm_eps = info_double("rms_norm_eps");
    c.rope_theta = info_double("rope_theta");
    c.expansion = info_double("expansion");
    return c;
  }

  /** @brief Tokens of a puzzle. @return info("seq_len"). */
  std::size_t seq_len() const { return static_cast<std::size_t>(info("seq_len")); }
  /** @brief Size of the vocabulary. @return info("vocab_size"). */
  std::size_t vocab_size() const { return static_cast<std::size_t>(info("vocab_size")); }
  /** @brief Width of the states. @return info("hidden_size"). */
  std::size_t hidden_size() const { return static_cast<std::size_t>(info("hidden_size")); }
  /** @brief Rows of y and z. @return info("state_len"). */
  std::size_t state_len() const { return static_cast<std::size_t>(info("state_len")); }
  /** @brief Supervision steps by default. @return info("halt_max_steps"). */
  int64_t halt_max_steps() const { return info("halt_max_steps"); }

  /**
   * @brief Creates a session of @p batch empty slots on this model.
   * @param batch Slots, >= 1.
   * @return The session; it keeps the model alive.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_NOMEM.
   */
  Session session(std::size_t batch = 1) const;

  /** @brief The C handle, for calls this header does not wrap. @return It (NULL when moved from). */
  const trm_model *get() const noexcept { return model_.get(); }

private:
  explicit Model(std::shared_ptr<trm_model> model) noexcept : model_(std::move(model)) {}
  friend class Session;
  std::shared_ptr<trm_model> model_;
};

/**
 * @brief What one trm_refine() call did: the fields of ::trm_event, without @c size.
 */
struct Event {
  trm_event_kind kind = TRM_EVENT_NONE; /**< What the last network call of the unit was. */
  int64_t step = 0;                     /**< 1-based supervision step of the unit. */
  int32_t cycle = 0;                    /**< 1-based H-cycle within the step. */
  int32_t call = 0;                     /**< 1-based network call within the cycle. */
  int64_t calls = 0;                    /**< Network calls the session has made so far. */
  std::size_t active = 0;               /**< Slots that will run in the next step. */
  std::size_t halted = 0;               /**< Slots that halted at the end of this unit. */

  /** @brief An empty event. */
  Event() = default;
  /** @brief Copies a C event. @param ev What trm_refine() filled. */
  explicit Event(const trm_event &ev) noexcept
      : kind(ev.kind), step(ev.step), cycle(ev.cycle), call(ev.call), calls(ev.calls), active(ev.active),
        halted(ev.halted) {}
};

/** @brief A slot's decoded answer (trm_session_answer()). */
struct Answer {
  std::vector<int32_t> tokens;   /**< seq_len token ids: the argmax per position. */
  std::vector<float> confidence; /**< seq_len softmax probabilities of those tokens. */
};

/** @brief A slot's halting head (trm_session_q()). */
struct QValues {
  float q_halt = 0;     /**< The model's logit that its answer is right. */
  float q_continue = 0; /**< The continue logit. */
};

/**
 * @brief A batch of puzzles being refined (owns a ::trm_session). Move-only; one thread at a time.
 */
class Session {
public:
  /**
   * @brief Creates a session of @p batch empty slots (trm_session_create()).
   * @param model The model; the session keeps it alive.
   * @param batch Slots, >= 1.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_NOMEM.
   */
  Session(const Model &model, std::size_t batch) : model_(model.model_) {
    trm_session *raw = nullptr;
    detail::check(trm_session_create(model_.get(), batch, &raw));
    session_.reset(raw);
    batch_ = batch;
    seq_len_ = static_cast<std::size_t>(model.info("seq_len"));
    vocab_size_ = static_cast<std::size_t>(model.info("vocab_size"));
    state_floats_ = static_cast<std::size_t>(model.info("state_len") * model.info("hidden_size"));
  }

  /** @brief Moves the session; @p other is left empty (its calls throw ::TRM_E_INVALID). @param other The source. */
  Session(Session &&other) noexcept = default;
  /** @brief Moves the session; the one held before is freed. @param other The source. @return *this. */
  Session &operator=(Session &&other) noexcept {
    // the old session goes before the reference to its model
    session_ = std::move(other.session_);
    model_ = std::move(other.model_);
    batch_ = other.batch_;
    seq_len_ = other.seq_len_;
    vocab_size_ = other.vocab_size_;
    state_floats_ = other.state_floats_;
    return *this;
  }
  Session(const Session &) = delete;            ///< Move-only.
  Session &operator=(const Session &) = delete; ///< Move-only.
  /** @brief Frees the session (trm_session_free()). */
  ~Session() = default;

  /** @brief Number of slots. @return The batch size. */
  std::size_t batch() const noexcept { return batch_; }
  /** @brief Tokens of a puzzle. @return The model's seq_len. */
  std::size_t seq_len() const noexcept { return seq_len_; }
  /** @brief Floats of one y or z. @return state_len * hidden_size. */
  std::size_t state_size() const noexcept { return state_floats_; }

  /**
   * @brief Sets an option (trm_session_set_option()).
   * @param opt The option.
   * @param value Its value.
   * @return *this, to chain settings.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_NOMEM.
   */
  Session &set_option(trm_option opt, int64_t value) {
    detail::check(trm_session_set_option(session_.get(), opt, value));
    return *this;
  }

  /**
   * @brief Reads an option (trm_session_get_option()).
   * @param opt The option.
   * @return Its value (for ::TRM_OPT_THREADS the resolved count).
   * @throws Error ::TRM_E_INVALID.
   */
  int64_t option(trm_option opt) const {
    int64_t value = 0;
    detail::check(trm_session_get_option(session_.get(), opt, &value));
    return value;
  }

  /** @brief Sets ::TRM_OPT_YIELD. @param unit The unit of one refine step. @return *this. */
  Session &set_yield(trm_yield unit) { return set_option(TRM_OPT_YIELD, unit); }
  /** @brief Sets ::TRM_OPT_MAX_STEPS. @param steps Steps after which a slot halts, >= 1. @return *this. */
  Session &set_max_steps(int64_t steps) { return set_option(TRM_OPT_MAX_STEPS, steps); }
  /** @brief Sets ::TRM_OPT_HALT. @param rule When slots halt. @return *this. */
  Session &set_halt(trm_halt rule) { return set_option(TRM_OPT_HALT, rule); }
  /** @brief Sets ::TRM_OPT_THREADS. @param threads Worker threads, 0 for one per CPU. @return *this. */
  Session &set_threads(int64_t threads) { return set_option(TRM_OPT_THREADS, threads); }

  /**
   * @brief Gives a slot its puzzle and resets its state (trm_session_set_input()).
   * @param slot 0 .. batch()-1.
   * @param tokens seq_len() token ids.
   * @param puzzle_id Row of the puzzle-embedding table.
   * @throws Error ::TRM_E_INVALID.
   */
  void set_input(std::size_t slot, View<const int32_t> tokens, int32_t puzzle_id = 0) {
    detail::check(trm_session_set_input(session_.get(), slot, tokens.data(), tokens.size(), puzzle_id));
  }

  /**
   * @brief Gives a slot its puzzle from a braced list: `session.set_input(0, {1, 2, 3, 4})`.
   * @param slot 0 .. batch()-1.
   * @param tokens seq_len() token ids.
   * @param puzzle_id Row of the puzzle-embedding table.
   * @throws Error ::TRM_E_INVALID.
   */
  void set_input(std::size_t slot, std::initializer_list<int32_t> tokens, int32_t puzzle_id = 0) {
    set_input(slot, View<const int32_t>(tokens.begin(), tokens.size()), puzzle_id);
  }

  /**
   * @brief Runs one unit of the recursion (trm_refine()).
   * @param event Receives what happened, when a unit ran.
   * @return true when a unit ran, false when no slot was left to run (::TRM_HALTED).
   * @throws Error ::TRM_E_INVALID.
   */
  bool refine_once(Event &event) {
    trm_event ev = TRM_EVENT_INIT;
    trm_status status = detail::check(trm_refine(session_.get(), &ev));
    if (status == TRM_HALTED) return false;
    event = Event(ev);
    return true;
  }

  class Refinement;

  /**
   * @brief The rest of the recursion as a range of events, one trm_refine() call per element.
   *
   * Iterating calls trm_refine() once per element, until it returns ::TRM_HALTED (the range
   * then ends; no event is made for it). Breaking out of the loop leaves the session as
   * it is. The range is single-pass and refers to this session, which must outlive it.
   * @return The range, in the session's current unit (::TRM_OPT_YIELD).
   */
  Refinement refine();

  /**
   * @brief As refine(), after setting ::TRM_OPT_YIELD to @p unit (the setting stays).
   * @param unit ::TRM_YIELD_CALL, ::TRM_YIELD_CYCLE or ::TRM_YIELD_STEP.
   * @return The range.
   * @throws Error ::TRM_E_INVALID for a bad unit.
   */
  Refinement refine(trm_yield unit);

  /**
   * @brief A slot's state (trm_session_slot_state()).
   * @param slot 0 .. batch()-1.
   * @return ::TRM_SLOT_EMPTY, ::TRM_SLOT_RUNNING or ::TRM_SLOT_HALTED.
   * @throws Error ::TRM_E_INVALID.
   */
  trm_slot_state slot_state(std::size_t slot) const {
    trm_slot_state state = TRM_SLOT_EMPTY;
    detail::check(trm_session_slot_state(session_.get(), slot, &state, nullptr));
    return state;
  }

  /**
   * @brief Supervision steps a slot has completed since its input was set.
   * @param slot 0 .. batch()-1.
   * @return The count.
   * @throws Error ::TRM_E_INVALID.
   */
  int64_t steps(std::size_t slot) const {
    int64_t steps = 0;
    detail::check(trm_session_slot_state(session_.get(), slot, nullptr, &steps));
    return steps;
  }

  /**
   * @brief A slot's decoded answer (trm_session_answer()).
   * @param slot 0 .. batch()-1.
   * @return Tokens and confidences, seq_len() each.
   * @throws Error ::TRM_E_INVALID, or ::TRM_E_STATE for a slot without input.
   */
  Answer answer(std::size_t slot) const {
    Answer a;
    a.tokens.resize(seq_len_);
    a.confidence.resize(seq_len_);
    answer_into(slot, a.tokens, a.confidence);
    return a;
  }

  /**
   * @brief A slot's decoded answer, into the caller's buffers.
   * @param slot 0 .. batch()-1.
   * @param tokens At least seq_len() entries (or empty: not wanted).
   * @param confidence At least seq_len() entries (or empty: not wanted).
   * @throws Error ::TRM_E_INVALID (also for a buffer too small), or ::TRM_E_STATE.
   */
  void answer_into(std::size_t slot, View<int32_t> tokens, View<float> confidence) const {
    // the smaller of the wanted buffers: the library says so if it is below seq_len
    std::size_t n = SIZE_MAX;
    if (!tokens.empty()) n = tokens.size();
    if (!confidence.empty()) n = std::min(n, confidence.size());
    if (n == SIZE_MAX) n = seq_len_;
    detail::check(trm_session_answer(session_.get(), slot, tokens.empty() ? nullptr : tokens.data(),
                                     confidence.empty() ? nullptr : confidence.data(), n));
  }

  /**
   * @brief A slot's halting head (trm_session_q()).
   * @param slot 0 .. batch()-1.
   * @return q_halt and q_continue.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_STATE.
   */
  QValues q(std::size_t slot) const {
    QValues q;
    detail::check(trm_session_q(session_.get(), slot, &q.q_halt, &q.q_continue));
    return q;
  }

  /**
   * @brief A slot's output logits (trm_session_logits()).
   * @param slot 0 .. batch()-1.
   * @return seq_len rows of vocab_size floats, row-major.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_STATE.
   */
  std::vector<float> logits(std::size_t slot) const {
    std::vector<float> out(seq_len_ * vocab_size_);
    detail::check(trm_session_logits(session_.get(), slot, out.data(), out.size()));
    return out;
  }

  /**
   * @brief A copy of a slot's y or z (trm_session_latent()).
   * @param slot 0 .. batch()-1.
   * @param which ::TRM_LATENT_Y or ::TRM_LATENT_Z.
   * @return state_len rows of hidden_size floats, row-major.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_STATE.
   */
  std::vector<float> latent(std::size_t slot, trm_latent which) const {
    std::vector<float> out(state_floats_);
    latent_into(slot, which, out);
    return out;
  }

  /**
   * @brief A copy of a slot's y or z, into the caller's buffer.
   * @param slot 0 .. batch()-1.
   * @param which ::TRM_LATENT_Y or ::TRM_LATENT_Z.
   * @param out At least state_size() floats.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_STATE.
   */
  void latent_into(std::size_t slot, trm_latent which, View<float> out) const {
    detail::check(trm_session_latent(session_.get(), slot, which, out.data(), out.size()));
  }

  /**
   * @brief Overwrites a slot's y or z (trm_session_set_latent()); steps and halting are kept.
   * @param slot 0 .. batch()-1.
   * @param which ::TRM_LATENT_Y or ::TRM_LATENT_Z.
   * @param values Exactly state_size() finite floats.
   * @throws Error ::TRM_E_INVALID or ::TRM_E_STATE.
   */
  void set_latent(std::size_t slot, trm_latent which, View<const float> values) {
    detail::check(trm_session_set_latent(session_.get(), slot, which, values.data(), values.size()));
  }

  /** @brief The C handle, for calls this header does not wrap. @return It (NULL when moved from). */
  trm_session *get() const noexcept { return session_.get(); }

private:
  /** @brief Frees a ::trm_session; the deleter of the owning pointer. */
  struct Free {
    /** @brief Frees it. @param s The session. */
    void operator()(trm_session *s) const noexcept { trm_session_free(s); }
  };
  std::shared_ptr<trm_model> model_; // declared first: destroyed after the session
  std::unique_ptr<trm_session, Free> session_;
  std::size_t batch_ = 0, seq_len_ = 0, vocab_size_ = 0, state_floats_ = 0;
};

/**
 * @brief The range Session::refine() returns: `for (const trm::Event &ev : session.refine()) ...`
 *
 * begin() runs the first unit; each increment runs the next; the iterator equals end()
 * once trm_refine() returned ::TRM_HALTED. Single-pass: call begin() once.
 */
class Session::Refinement {
public:
  /** @brief Marks the end of the range. */
  struct Sentinel {};

  /** @brief Input iterator over the events; advancing it runs the recursion. */
  class Iterator {
  public:
    using iterator_category = std::input_iterator_tag; ///< Single-pass.
    using value_type = Event;                          ///< What it yields.
    using difference_type = std::ptrdiff_t;            ///< Required of iterators.
    using pointer = const Event *;                     ///< Required of iterators.
    using reference = const Event &;                   ///< Required of iterators.

    /** @brief The event of the unit that ran last. @return It. */
    reference operator*() const noexcept { return range_->event_; }
    /** @brief Member access to the event. @return A pointer to it. */
    pointer operator->() const noexcept { return &range_->event_; }
    /** @brief Runs the next unit. @return *this. @throws Error as Session::refine_once(). */
    Iterator &operator++() {
      range_->advance();
      return *this;
    }
    /** @brief Runs the next unit (the old position is not kept: single-pass). @throws Error as operator++(). */
    void operator++(int) { range_->advance(); }
    /** @brief Whether the range has ended. @return true after ::TRM_HALTED. */
    bool operator==(Sentinel) const noexcept { return range_->done_; }
    /** @brief Whether the range goes on. @return false after ::TRM_HALTED. */
    bool operator!=(Sentinel) const noexcept { return !range_->done_; }

  private:
    friend class Refinement;
    explicit Iterator(Refinement *range) noexcept : range_(range) {}
    Refinement *range_;
  };

  /** @brief Runs the first unit. @return An iterator at its event, or at the end. @throws Error as Session::refine_once(). */
  Iterator begin() {
    advance();
    return Iterator(this);
  }
  /** @brief The end. @return The sentinel. */
  Sentinel end() const noexcept { return {}; }

private:
  friend class Session;
  explicit Refinement(Session &session) noexcept : session_(&session) {}
  void advance() {
    if (!done_) done_ = !session_->refine_once(event_);
  }
  Session *session_;
  Event event_;
  bool done_ = false;
};

inline Session::Refinement Session::refine() { return Refinement(*this); }

inline Session::Refinement Session::refine(trm_yield unit) {
  set_yield(unit);
  return Refinement(*this);
}

inline Session Model::session(std::size_t batch) const { return Session(*this, batch); }

/** @brief The library's version (trm_version_string()). @return "MAJOR.MINOR.PATCH". */
inline std::string version() { return trm_version_string(); }

} // namespace trm

#endif /* TRM_HPP */
