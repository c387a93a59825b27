/**
 * @file trm.h
 * @brief libtrm: run Tiny Recursive Models (TRM) from C, one recursion step at a time.
 *
 * The whole public C API of libtrm. A ::trm_model is loaded once from a model file
 * (safetensors, see FORMAT.md), never changes afterwards and may be shared by any
 * number of threads. A ::trm_session holds the state of a batch of puzzles (the answer
 * y and the latent z of every slot) and belongs to one thread at a time.
 * trm_refine() advances the recursion of every running slot by one unit and returns,
 * so the host can look at the answer or the latent, change them, or stop.
 *
 * Every function that can fail returns a ::trm_status. Nothing aborts, exits or prints.
 * A failed call leaves its objects as they were and records a human-readable reason,
 * readable with trm_last_error() on the same thread.
 *
 * Until version 1.0 the ABI may still change; the SONAME carries the ABI major.
 */
#ifndef TRM_H
#define TRM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Marks the symbols libtrm exports; everything else in the library is hidden. */
#if defined(_WIN32)
#define TRM_API
#elif defined(__GNUC__) || defined(__clang__)
#define TRM_API __attribute__((visibility("default")))
#else
#define TRM_API
#endif

/** @brief Major version of the library (the ABI major once it reaches 1). */
#define TRM_VERSION_MAJOR 0
/** @brief Minor version of the library. */
#define TRM_VERSION_MINOR 1
/** @brief Patch version of the library. */
#define TRM_VERSION_PATCH 0

/**
 * @brief A loaded model: configuration and weights. Immutable once loaded.
 *
 * Any number of threads may use one model at once (to create sessions and read its info).
 */
typedef struct trm_model trm_model;

/**
 * @brief The state of a batch of puzzles being refined. One thread at a time.
 *
 * A session has `batch` slots. Each slot holds one puzzle (its tokens and puzzle id),
 * the answer state y and the latent z (both [state_len, hidden_size] floats), and how
 * many supervision steps it has run.
 */
typedef struct trm_session trm_session;

/** @brief Result of every call that can fail. */
typedef enum trm_status {
  TRM_OK = 0,             /**< Success. */
  TRM_HALTED = 1,         /**< trm_refine(): every slot that has an input has halted; nothing was run. */
  TRM_E_INVALID = -1,     /**< An argument is invalid (NULL, out of range, wrong length). */
  TRM_E_NOMEM = -2,       /**< An allocation failed. */
  TRM_E_IO = -3,          /**< A file could not be opened or read. */
  TRM_E_FORMAT = -4,      /**< A model file is malformed or inconsistent with its configuration. */
  TRM_E_UNSUPPORTED = -5, /**< Well-formed, but uses something this version does not implement. */
  TRM_E_STATE = -6        /**< The call is not allowed in the object's current state. */
} trm_status;

/** @brief Session options, set with trm_session_set_option(). */
typedef enum trm_option {
  /** How far one trm_refine() call advances: a ::trm_yield value. Default ::TRM_YIELD_STEP. */
  TRM_OPT_YIELD = 1,
  /** Supervision steps after which a slot halts, >= 1. Default: the model's halt_max_steps. */
  TRM_OPT_MAX_STEPS = 2,
  /** When a slot halts: a ::trm_halt value. Default ::TRM_HALT_FIXED. */
  TRM_OPT_HALT = 3,
  /**
   * Worker threads used by trm_refine(), >= 0; 0 means one per CPU the process may use.
   * Default 1. Results are bitwise identical for every thread count. Setting it allocates
   * the threads and their work memory; trm_refine() itself never allocates.
   */
  TRM_OPT_THREADS = 4
} trm_option;

/** @brief Values of ::TRM_OPT_YIELD: the unit of work of one trm_refine() call. */
typedef enum trm_yield {
  TRM_YIELD_CALL = 0,  /**< One call of the tiny network: one latent update or one answer update. */
  TRM_YIELD_CYCLE = 1, /**< One H-cycle: L_cycles latent updates, then one answer update. */
  TRM_YIELD_STEP = 2   /**< One whole supervision step: H_cycles cycles (the default). */
} trm_yield;

/** @brief Values of ::TRM_OPT_HALT: when a running slot stops. */
typedef enum trm_halt {
  /** After max_steps supervision steps, as the reference evaluates. The default. */
  TRM_HALT_FIXED = 0,
  /**
   * Also early, at the end of a step where q_halt > 0 (or, for models trained with
   * no_ACT_continue = false, where q_halt > q_continue), as the reference trains.
   */
  TRM_HALT_Q = 1
} trm_halt;

/** @brief Which recurrent state of a slot to read or write. */
typedef enum trm_latent {
  TRM_LATENT_Y = 0, /**< The answer state y (z_H in the reference code). */
  TRM_LATENT_Z = 1  /**< The latent reasoning state z (z_L in the reference code). */
} trm_latent;

/** @brief What the last trm_refine() call finished with. */
typedef enum trm_event_kind {
  TRM_EVENT_NONE = 0,   /**< Nothing ran (trm_refine() returned ::TRM_HALTED). */
  TRM_EVENT_LATENT = 1, /**< A latent update z = f(z, y + x). */
  TRM_EVENT_ANSWER = 2, /**< An answer update y = f(y, z) that did not end a supervision step. */
  TRM_EVENT_STEP = 3    /**< The answer update that ended a supervision step; halting was decided. */
} trm_event_kind;

/** @brief Slot states, as reported by trm_session_slot_state(). */
typedef enum trm_slot_state {
  TRM_SLOT_EMPTY = 0,   /**< No input yet. */
  TRM_SLOT_RUNNING = 1, /**< Has an input and will run in the next supervision step. */
  TRM_SLOT_HALTED = 2   /**< Has halted; costs no compute until trm_session_set_input() gives it a new puzzle. */
} trm_slot_state;

/**
 * @brief What one trm_refine() call did. ABI-extensible: the caller sets @c size.
 *
 * Set @c size to sizeof(trm_event) (or use ::TRM_EVENT_INIT) before the call. Later
 * versions only append fields, and fill only those that fit within @c size.
 * The counters are the session's position in the recursion after the call.
 */
typedef struct trm_event {
  size_t size;         /**< Set by the caller: sizeof(trm_event). */
  trm_event_kind kind; /**< What the last network call of this unit was. */
  /** 1-based number of the session's supervision step this unit belongs to; when nothing ran,
   *  the number of steps the session has begun. */
  int64_t step;
  int32_t cycle;       /**< 1-based H-cycle within that step, 1..H_cycles. */
  int32_t call;        /**< 1-based network call within that cycle, 1..L_cycles+1 (L_cycles+1 is the answer update). */
  int64_t calls;       /**< Network calls (over all running slots counted once) made by the session so far. */
  size_t active;       /**< Slots that will run in the next supervision step (running, not halted). */
  size_t halted;       /**< Slots that halted at the end of this unit (non-zero only for ::TRM_EVENT_STEP). */
} trm_event;

/** @brief Initialiser for a ::trm_event: `trm_event ev = TRM_EVENT_INIT;` */
#define TRM_EVENT_INIT {sizeof(trm_event), TRM_EVENT_NONE, 0, 0, 0, 0, 0, 0}

/**
 * @brief A static English name for a status, such as "TRM_E_FORMAT: malformed model file".
 * @param s Any value; unknown values give "unknown status".
 * @return A string that lives as long as the program.
 */
TRM_API const char *trm_status_string(trm_status s);

/**
 * @brief The library's version.
 * @return "MAJOR.MINOR.PATCH", a static string.
 */
TRM_API const char *trm_version_string(void);

/**
 * @brief This thread's detailed message for its last failed libtrm call.
 *
 * Names what was wrong: which argument, tensor, byte offset or limit. Successful calls
 * leave it unchanged. The string stays valid until this thread's next failing call.
 * @return The message, or "" if no call has failed on this thread.
 */
TRM_API const char *trm_last_error(void);

/**
 * @brief Memory functions a host supplies in place of the C library's (see trm_set_allocator()).
 *
 * Every allocation libtrm makes goes through them: models, sessions, work buffers, thread
 * pools. Allocations inside the C library itself (a FILE's buffer while a model file is read,
 * thread stacks) are not the library's and still use the C library.
 */
typedef struct trm_allocator {
  size_t size; /**< sizeof(trm_allocator), so that later versions can add fields. */
  /** Returns @p size bytes aligned for any type, or NULL. Required. */
  void *(*malloc_fn)(void *user, size_t size);
  /** Returns @p size bytes aligned to @p alignment (a power of two, at most 64), or NULL.
   *  Optional: when NULL, libtrm aligns blocks from malloc_fn itself, at a cost of up to
   *  128 bytes per block. */
  void *(*aligned_alloc_fn)(void *user, size_t alignment, size_t size);
  /** Frees a block malloc_fn or aligned_alloc_fn returned (never NULL). Required. */
  void (*free_fn)(void *user, void *ptr);
  void *user; /**< Passed to each function as is. */
} trm_allocator;

/**
 * @brief Makes libtrm allocate through the host's functions, or the C library's again.
 *
 * Process-wide, and safe to call at any time from any thread: every block remembers the
 * functions that allocated it and is freed with them, so models and sessions made before a
 * change stay valid. The host's free_fn must therefore stay callable until the models and
 * sessions created while it was installed are freed. When an allocation fails, the call that
 * needed it returns ::TRM_E_NOMEM, frees what it had taken and leaves no handle behind.
 * @param allocator The functions (copied), or NULL to restore malloc/aligned_alloc/free.
 * @return ::TRM_OK, or ::TRM_E_INVALID (size too small, or malloc_fn or free_fn NULL).
 */
TRM_API trm_status trm_set_allocator(const trm_allocator *allocator);

/**
 * @brief Loads a model from a file (safetensors with libtrm metadata; see FORMAT.md).
 *
 * Every byte is checked: header bounds, tensor offsets and overlaps, dtypes, shapes
 * against the configuration, missing and unknown tensors, non-finite weights.
 * @param path File name.
 * @param out Receives the new model on success; untouched on failure.
 * @return ::TRM_OK, ::TRM_E_INVALID, ::TRM_E_IO, ::TRM_E_FORMAT, ::TRM_E_UNSUPPORTED or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_model_load(const char *path, trm_model **out);

/**
 * @brief Loads a model from a buffer holding a whole model file.
 *
 * The model copies what it needs: the caller may free @p data once this returns.
 * @param data The file's bytes.
 * @param size Their number.
 * @param out Receives the new model on success; untouched on failure.
 * @return As trm_model_load(), without ::TRM_E_IO.
 */
TRM_API trm_status trm_model_load_memory(const void *data, size_t size, trm_model **out);

/**
 * @brief Frees a model.
 *
 * Every session created from it must have been freed first.
 * @param m The model, or NULL (nothing happens).
 */
TRM_API void trm_model_free(trm_model *m);

/**
 * @brief Reads one integer fact about a model.
 *
 * Keys are the reference configuration names: "hidden_size", "num_heads", "L_layers",
 * "H_cycles", "L_cycles", "seq_len", "vocab_size", "num_puzzle_identifiers",
 * "puzzle_emb_ndim", "puzzle_emb_len" (the resolved prefix length P), "halt_max_steps",
 * "mlp_t" (0/1), "no_ACT_continue" (0/1), "pos_encodings" (0 none, 1 rope, 2 learned);
 * and derived sizes: "state_len" (S = seq_len + P), "head_dim", "inter_size" (SwiGLU
 * width), "inter_t_size" (token-MLP SwiGLU width, 0 without mlp_t), "param_count";
 * and "isa", the matrix kernel the weights were packed for (0 scalar, 1 AVX2, 2 AVX-512,
 * 3 NEON): the best the CPU has, or a lower one named by the environment variable
 * TRM_ISA=scalar|avx2|avx512|neon when the model was loaded.
 * @param m The model.
 * @param key One of the names above.
 * @param value Receives the value.
 * @return ::TRM_OK, or ::TRM_E_INVALID for NULL arguments or an unknown key.
 */
TRM_API trm_status trm_model_info(const trm_model *m, const char *key, int64_t *value);

/**
 * @brief Reads one real-valued fact about a model.
 * @param m The model.
 * @param key "rms_norm_eps", "rope_theta", or "expansion" (0 when the file does not give it).
 * @param value Receives the value.
 * @return ::TRM_OK, or ::TRM_E_INVALID for NULL arguments or an unknown key.
 */
TRM_API trm_status trm_model_info_double(const trm_model *m, const char *key, double *value);

/**
 * @brief Creates a session of @p batch slots, all empty. Allocates all the memory it needs.
 * @param m The model; it must outlive the session.
 * @param batch Number of slots, >= 1.
 * @param out Receives the session on success; untouched on failure.
 * @return ::TRM_OK, ::TRM_E_INVALID or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_session_create(const trm_model *m, size_t batch, trm_session **out);

/**
 * @brief Frees a session and its threads.
 * @param s The session, or NULL (nothing happens).
 */
TRM_API void trm_session_free(trm_session *s);

/**
 * @brief Sets a ::trm_option.
 *
 * May be called at any time between other calls on the session. A lower
 * ::TRM_OPT_MAX_STEPS halts running slots that already reached it at the next step's start.
 * @param s The session.
 * @param opt The option.
 * @param value Its new value (see ::trm_option for each option's range).
 * @return ::TRM_OK, ::TRM_E_INVALID (unknown option or value out of range) or
 *         ::TRM_E_NOMEM (threads could not be made; the old setting stays).
 */
TRM_API trm_status trm_session_set_option(trm_session *s, trm_option opt, int64_t value);

/**
 * @brief Reads a ::trm_option's current value (for ::TRM_OPT_THREADS, the resolved count).
 * @param s The session.
 * @param opt The option.
 * @param value Receives its value.
 * @return ::TRM_OK or ::TRM_E_INVALID.
 */
TRM_API trm_status trm_session_get_option(const trm_session *s, trm_option opt, int64_t *value);

/**
 * @brief Gives a slot its puzzle and resets it: y = H_init, z = L_init on every row, step 0.
 *
 * Allowed at any time. If the session is in the middle of a supervision step (yield unit
 * smaller than a step), the slot joins at the start of the next step; the others run on.
 * @param s The session.
 * @param slot 0 .. batch-1.
 * @param tokens @p n_tokens token ids, each in [0, vocab_size).
 * @param n_tokens Must equal seq_len.
 * @param puzzle_id Row of the puzzle-embedding table, in [0, num_puzzle_identifiers).
 *                  Models without puzzle embeddings ignore it (their num_puzzle_identifiers
 *                  is 1 unless the file says otherwise).
 * @return ::TRM_OK or ::TRM_E_INVALID (nothing changed).
 */
TRM_API trm_status trm_session_set_input(trm_session *s, size_t slot, const int32_t *tokens,
                                         size_t n_tokens, int32_t puzzle_id);

/**
 * @brief Advances every running slot by one unit (::TRM_OPT_YIELD) of the recursion.
 *
 * All running slots move in lockstep through a supervision step: L_cycles latent updates
 * z = f(z, y + x) then one answer update y = f(y, z), H_cycles times. At the end of a
 * step each slot's step count grows by one and halting is decided (::TRM_OPT_HALT).
 * Halted slots cost nothing. Allocates nothing.
 * @param s The session.
 * @param ev NULL, or an event whose @c size the caller has set; receives what happened.
 * @return ::TRM_OK when a unit ran (even if it halted the last slot), ::TRM_HALTED when
 *         no slot was left to run (nothing ran), ::TRM_E_INVALID for bad arguments.
 */
TRM_API trm_status trm_refine(trm_session *s, trm_event *ev);

/**
 * @brief Reads a slot's state and how many supervision steps it has completed.
 * @param s The session.
 * @param slot 0 .. batch-1.
 * @param state Receives a ::trm_slot_state (may be NULL).
 * @param steps Receives the step count (may be NULL).
 * @return ::TRM_OK or ::TRM_E_INVALID.
 */
TRM_API trm_status trm_session_slot_state(const trm_session *s, size_t slot,
                                          trm_slot_state *state, int64_t *steps);

/**
 * @brief The output logits of a slot, computed from its current answer state y.
 *
 * logits = (y lm_head^T) without the P prefix rows: seq_len rows of vocab_size, row-major.
 * @param s The session.
 * @param slot 0 .. batch-1.
 * @param out Buffer of at least @p n floats.
 * @param n Must be >= seq_len * vocab_size.
 * @return ::TRM_OK, ::TRM_E_INVALID, or ::TRM_E_STATE if the slot has no input.
 */
TRM_API trm_status trm_session_logits(const trm_session *s, size_t slot, float *out, size_t n);

/**
 * @brief The decoded answer of a slot: argmax token per position, and its confidence.
 *
 * Confidence is the softmax probability of the chosen token. Ties pick the lowest id.
 * @param s The session.
 * @param slot 0 .. batch-1.
 * @param tokens Receives seq_len token ids (may be NULL).
 * @param confidence Receives seq_len probabilities (may be NULL).
 * @param n Must be >= seq_len.
 * @return ::TRM_OK, ::TRM_E_INVALID, or ::TRM_E_STATE if the slot has no input.
 */
TRM_API trm_status trm_session_answer(const trm_session *s, size_t slot, int32_t *tokens,
                                      float *confidence, size_t n);

/**
 * @brief The halting head of a slot: [q_halt, q_continue] = y[0] q_head^T + q_bias.
 * @param s The session.
 * @param slot 0 .. batch-1.
 * @param q_halt Receives q_halt, the model's logit that its answer is right (may be NULL).
 * @param q_continue Receives q_continue (may be NULL).
 * @return ::TRM_OK, ::TRM_E_INVALID, or ::TRM_E_STATE if the slot has no input.
 */
TRM_API trm_status trm_session_q(const trm_session *s, size_t slot, float *q_halt, float *q_continue);

/**
 * @brief Copies a slot's y or z: state_len rows of hidden_size floats, row-major.
 * @param s The session.
 * @param slot 0 .. batch-1.
 * @param which ::TRM_LATENT_Y or ::TRM_LATENT_Z.
 * @param out Receives the values.
 * @param n Must be >= state_len * hidden_size.
 * @return ::TRM_OK, ::TRM_E_INVALID, or ::TRM_E_STATE if the slot has no input.
 */
TRM_API trm_status trm_session_latent(const trm_session *s, size_t slot, trm_latent which,
                                      float *out, size_t n);

/**
 * @brief Overwrites a slot's y or z; the slot's step count and halting state are kept.
 * @param s The session.
 * @param slot 0 .. batch-1.
 * @param which ::TRM_LATENT_Y or ::TRM_LATENT_Z.
 * @param in state_len * hidden_size floats, row-major.
 * @param n Must equal state_len * hidden_size; every value must be finite.
 * @return ::TRM_OK, ::TRM_E_INVALID (nothing changed), or ::TRM_E_STATE if the slot has no input.
 */
TRM_API trm_status trm_session_set_latent(trm_session *s, size_t slot, trm_latent which,
                                          const float *in, size_t n);


/* ======================================================================================== */
/* Training                                                                                  */
/* ======================================================================================== */

/**
 * @brief A trainer: a model's weights being trained by the paper's method (TRM-SPEC.md
 *        section 7), its optimiser state, EMA weights, data and the batch carried across steps.
 *
 * One thread at a time. Every step is deterministic for a seed and bitwise the same for every
 * thread count; a checkpoint saved with trm_trainer_save_checkpoint() resumes bitwise exactly.
 */
typedef struct trm_trainer trm_trainer;

/** @brief Optimisers for the dense weights (::TRM_TRAIN_OPTIMIZER). */
typedef enum trm_optimizer {
  TRM_OPTIMIZER_ADAM_ATAN2 = 0, /**< AdamATan2, as the reference trainer (the default). */
  TRM_OPTIMIZER_ADAMW = 1       /**< PyTorch's AdamW (uses ::TRM_TRAIN_EPS). */
} trm_optimizer;

/** @brief Data augmentations applied on the fly to every sample drawn (::TRM_TRAIN_AUGMENT). */
typedef enum trm_augment {
  /** Sudoku for seq_len 81 / vocab 11, dihedral for square mazes (seq_len n*n, vocab 6), else none. The default. */
  TRM_AUGMENT_AUTO = 0,
  TRM_AUGMENT_NONE = 1,     /**< Samples as given. */
  /** Digit permutation, band/stack and row/column-in-band shuffles, transpose (81 tokens: 0 pad, 1 blank, 2..10 digits). */
  TRM_AUGMENT_SUDOKU = 2,
  TRM_AUGMENT_DIHEDRAL = 3  /**< One of the 8 rotations/reflections of a square grid of seq_len tokens. */
} trm_augment;

/** @brief Which weights a saved or exported model holds. */
typedef enum trm_weights {
  TRM_WEIGHTS_EMA = 0, /**< The EMA of the weights (the trained weights while the EMA is off). The default. */
  TRM_WEIGHTS_RAW = 1  /**< The weights the optimiser updates. */
} trm_weights;

/**
 * @brief Training options, set with trm_trainer_set_option() (all values are doubles; integer
 *        options take integral values). The config-text key of each is given in quotes.
 */
typedef enum trm_train_option {
  TRM_TRAIN_LR = 1,                  /**< "lr": base learning rate, >= 0. Default 1e-4. */
  TRM_TRAIN_LR_MIN_RATIO = 2,        /**< "lr_min_ratio": cosine floor as a fraction of lr, [0, 1]. Default 1 (constant after warm-up). */
  TRM_TRAIN_WARMUP_STEPS = 3,        /**< "warmup_steps": linear warm-up from 0, >= 0. Default 2000. */
  TRM_TRAIN_TOTAL_STEPS = 4,         /**< "total_steps": the cosine schedule's end, >= 0 (0: no decay). Default 0. */
  TRM_TRAIN_WEIGHT_DECAY = 5,        /**< "weight_decay": decoupled, >= 0. Default 0.1. */
  TRM_TRAIN_BETA1 = 6,               /**< "beta1", [0, 1). Default 0.9. */
  TRM_TRAIN_BETA2 = 7,               /**< "beta2", [0, 1). Default 0.95. */
  TRM_TRAIN_EPS = 8,                 /**< "eps": AdamW's epsilon, > 0. Default 1e-8. */
  TRM_TRAIN_EMA = 9,                 /**< "ema": EMA rate mu in [0, 1); 0 turns the EMA off. Default 0.999. Before the first step only. */
  TRM_TRAIN_PUZZLE_EMB_LR = 10,      /**< "puzzle_emb_lr": signSGD lr of the puzzle embeddings, >= 0. Default 1e-2. */
  TRM_TRAIN_PUZZLE_EMB_WEIGHT_DECAY = 11, /**< "puzzle_emb_weight_decay", >= 0. Default 0.1. */
  TRM_TRAIN_OPTIMIZER = 12,          /**< "optimizer": a ::trm_optimizer ("adam_atan2" or "adamw" in text). Before the first step only. */
  TRM_TRAIN_BATCH = 13,              /**< "batch": slots trained together, [1, 65536]. Default 32. Before the first step only. */
  TRM_TRAIN_THREADS = 14,            /**< "threads": worker threads, >= 0, 0 = one per CPU. Default 1. Results do not depend on it. */
  TRM_TRAIN_SEED = 15,               /**< "seed": integer in [0, 2^53]: weight initialisation (config text only), data order, augmentations, halting exploration. Default 0. Before the first step only. */
  TRM_TRAIN_HALT_EXPLORATION = 16,   /**< "halt_exploration_prob": probability of a random minimum of [2, halt_max_steps] steps, [0, 1]. Default 0.1. */
  TRM_TRAIN_HALT_MAX_STEPS = 17,     /**< "halt_max_steps": supervision steps after which a sample is replaced, [1, 1024]; saved into models. Default: the model's. */
  TRM_TRAIN_AUGMENT = 18             /**< "augment": a ::trm_augment ("auto", "none", "sudoku", "dihedral" in text). Before the first step only. */
} trm_train_option;

/**
 * @brief What one training step did. ABI-extensible: the caller sets @c size
 *        (sizeof(trm_train_metrics), or use ::TRM_TRAIN_METRICS_INIT).
 *
 * Loss and accuracies are over every slot of the step; the halted_* fields over the slots that
 * halted at its end (their samples are replaced at the next step), as the reference reports.
 */
typedef struct trm_train_metrics {
  size_t size;              /**< Set by the caller. */
  int64_t step;             /**< Training steps done, this one included. */
  uint64_t samples;         /**< Samples drawn from the data so far. */
  double epoch;             /**< samples / data count. */
  double lr;                /**< Learning rate of this step. */
  double loss;              /**< Mean over slots of lm_loss + 0.5 q_halt_loss. */
  double lm_loss;           /**< Mean over slots of the mean stablemax cross-entropy of its valid tokens. */
  double q_halt_loss;       /**< Mean over slots of BCE(q_halt, exact). */
  double token_accuracy;    /**< Valid tokens whose argmax is right / valid tokens. */
  double exact_accuracy;    /**< Slots whose every valid token is right / slots. */
  double q_halt_accuracy;   /**< Slots where (q_halt > 0) equals exactness / slots. */
  size_t halted;            /**< Slots that halted at the end of this step. */
  double halted_exact_accuracy; /**< Exact among the halted slots (0 when none halted). */
  double halted_mean_steps; /**< Mean supervision steps the halted slots ran (0 when none). */
} trm_train_metrics;

/** @brief Initialiser: `trm_train_metrics m = TRM_TRAIN_METRICS_INIT;` */
#define TRM_TRAIN_METRICS_INIT {sizeof(trm_train_metrics), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/**
 * @brief Creates a trainer of a new, randomly initialised model from a configuration text.
 *
 * The text holds `key = value` lines (blank lines and `#` comments allowed; a later line
 * overrides an earlier one). Model keys: hidden_size, num_heads (default 1 with mlp_t, else
 * required), L_layers, H_cycles, L_cycles, seq_len, vocab_size (required), expansion (default 4),
 * puzzle_emb_ndim (default 0), puzzle_emb_len (0 = resolve), num_puzzle_identifiers (default 1),
 * pos_encodings (rope|learned|none, default rope; none with mlp_t), mlp_t (true|false),
 * halt_max_steps (default 16), rms_norm_eps, rope_theta. Every ::trm_train_option by its key.
 * Weights are initialised as the reference does, from the seed.
 * @param config The text (NUL-terminated).
 * @param out Receives the trainer; untouched on failure.
 * @return ::TRM_OK, ::TRM_E_INVALID (unknown key, bad value: the message names the line) or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_trainer_create(const char *config, trm_trainer **out);

/**
 * @brief Creates a trainer that continues training a model file's weights.
 * @param model_path A libtrm model file (checked as trm_model_load() does).
 * @param options NULL, or a text of `key = value` lines of ::trm_train_option keys only.
 * @param out Receives the trainer; untouched on failure.
 * @return As trm_model_load(), or ::TRM_E_INVALID for a bad option.
 */
TRM_API trm_status trm_trainer_create_from_model(const char *model_path, const char *options, trm_trainer **out);

/**
 * @brief Frees a trainer.
 * @param t The trainer, or NULL (nothing happens).
 */
TRM_API void trm_trainer_free(trm_trainer *t);

/**
 * @brief Sets a ::trm_train_option.
 * @param t The trainer.
 * @param opt The option.
 * @param value Its value (integral for integer options).
 * @return ::TRM_OK, ::TRM_E_INVALID (unknown option or value out of range), ::TRM_E_STATE (an
 *         option that is fixed once the first step has run) or ::TRM_E_NOMEM (threads).
 */
TRM_API trm_status trm_trainer_set_option(trm_trainer *t, trm_train_option opt, double value);

/**
 * @brief Reads a ::trm_train_option.
 * @param t The trainer.
 * @param opt The option.
 * @param value Receives its value.
 * @return ::TRM_OK or ::TRM_E_INVALID.
 */
TRM_API trm_status trm_trainer_get_option(const trm_trainer *t, trm_train_option opt, double *value);

/**
 * @brief Reads an integer fact: the model keys of trm_model_info() (not "isa"), and "step"
 *        (training steps done), "samples" (samples drawn), "data_count" (samples held).
 * @param t The trainer.
 * @param key The name.
 * @param value Receives the value.
 * @return ::TRM_OK or ::TRM_E_INVALID.
 */
TRM_API trm_status trm_trainer_info(const trm_trainer *t, const char *key, int64_t *value);

/**
 * @brief Gives the trainer its training data (copied; the caller may free its arrays).
 *
 * The samples are drawn in an order shuffled per epoch from the seed, each augmented on the fly
 * (::TRM_TRAIN_AUGMENT). Reading a data-set folder (.npy files) is the caller's job: `trm train`
 * does it. Replacing the data restarts the data order at its first sample; the slots keep the
 * samples they hold. After trm_trainer_load_checkpoint(), giving the same data (same values in
 * the same order) continues the checkpoint's data order exactly.
 * @param t The trainer.
 * @param inputs @p count x seq_len token ids in [0, vocab_size).
 * @param labels @p count x seq_len ids in [0, vocab_size), or @p ignore_label (not scored).
 * @param puzzle_ids @p count ids in [0, num_puzzle_identifiers), or NULL (all 0).
 * @param count Samples, >= 1.
 * @param ignore_label The label value excluded from the loss (the data set's ignore_label_id; -100 if none).
 * @return ::TRM_OK, ::TRM_E_INVALID (nothing changed; the message names the first bad value) or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_trainer_set_data(trm_trainer *t, const int32_t *inputs, const int32_t *labels,
                                        const int32_t *puzzle_ids, size_t count, int32_t ignore_label);

/**
 * @brief Runs one training step.
 *
 * Slots that halted (all of them at the first step) take the next samples of the data and
 * restart from y = H_init, z = L_init. Every slot then runs one supervision step (the last
 * H-cycle with gradient), the loss is backpropagated, each slot's step count grows, slots halt
 * when q_halt > 0 (unless a random minimum from ::TRM_TRAIN_HALT_EXPLORATION holds them) or at
 * halt_max_steps, and the optimiser, signSGD on the puzzle embeddings and the EMA update the weights.
 * @param t The trainer.
 * @param metrics NULL, or metrics whose @c size the caller has set; receives the step's figures.
 * @return ::TRM_OK, ::TRM_E_STATE (no data), ::TRM_E_NOMEM (first step: work memory) or
 *         ::TRM_E_INVALID (bad @p metrics size).
 */
TRM_API trm_status trm_trainer_step(trm_trainer *t, trm_train_metrics *metrics);

/**
 * @brief Writes the trained model as a libtrm model file that trm_model_load() reads.
 * @param t The trainer.
 * @param path The file (written to a temporary name, then renamed).
 * @param which ::TRM_WEIGHTS_EMA or ::TRM_WEIGHTS_RAW.
 * @return ::TRM_OK, ::TRM_E_INVALID, ::TRM_E_IO or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_trainer_save_model(const trm_trainer *t, const char *path, trm_weights which);

/**
 * @brief The trained model as an inference model (a copy: later steps do not change it).
 * @param t The trainer.
 * @param which ::TRM_WEIGHTS_EMA or ::TRM_WEIGHTS_RAW.
 * @param out Receives the model, to free with trm_model_free().
 * @return ::TRM_OK, ::TRM_E_INVALID or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_trainer_model(const trm_trainer *t, trm_weights which, trm_model **out);

/**
 * @brief Writes a checkpoint: configuration, options, weights, optimiser moments, EMA, step,
 *        the data order's position and the carried slots (their samples, y, z and step counts).
 *
 * A safetensors file (see TRAINING.md); the data itself is not in it, only its fingerprint.
 * @param t The trainer.
 * @param path The file (written to a temporary name, then renamed).
 * @return ::TRM_OK, ::TRM_E_INVALID, ::TRM_E_IO or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_trainer_save_checkpoint(const trm_trainer *t, const char *path);

/**
 * @brief Creates a trainer from a checkpoint. Given the same data, its steps are bitwise those
 *        the saved trainer would have run.
 * @param path The checkpoint file.
 * @param out Receives the trainer; untouched on failure.
 * @return ::TRM_OK, ::TRM_E_INVALID, ::TRM_E_IO, ::TRM_E_FORMAT or ::TRM_E_NOMEM.
 */
TRM_API trm_status trm_trainer_load_checkpoint(const char *path, trm_trainer **out);

#ifdef __cplusplus
}
#endif

#endif /* TRM_H */
