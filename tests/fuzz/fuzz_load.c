/* Fuzz target: a model file, loaded from memory and (through a memfd) from a file, which must
 * agree. A failed load must leave *out untouched and say why; a model that loads must answer
 * every trm_model_info key consistently and run one network call on a fixed input. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

static const char *const int_keys[] = {
    "hidden_size", "num_heads",   "L_layers",     "H_cycles",       "L_cycles",        "seq_len",
    "vocab_size",  "num_puzzle_identifiers",      "puzzle_emb_ndim", "puzzle_emb_len", "halt_max_steps",
    "mlp_t",       "no_ACT_continue",             "pos_encodings",   "state_len",      "head_dim",
    "inter_size",  "inter_t_size", "param_count", "isa"};
/* indices into int_keys */
enum {
  K_HIDDEN, K_HEADS, K_LAYERS, K_H, K_L, K_SEQ, K_VOCAB, K_IDS, K_PUZZLE_NDIM, K_PUZZLE_LEN, K_HALT, K_MLP_T,
  K_NO_ACT, K_POS, K_STATE, K_HEAD_DIM, K_INTER, K_INTER_T, K_PARAMS, K_ISA, N_INT_KEYS
};

/* A loaded model stays cheap to run only when its shapes are small; a large one is valid but
 * would only make the fuzzer slow. Rough multiply-adds of one network call. */
static double call_cost(const int64_t *v) {
  double D = (double)v[K_HIDDEN], L = (double)v[K_LAYERS], S = (double)v[K_STATE];
  double inter = (double)v[K_INTER], inter_t = (double)v[K_INTER_T];
  double per_row = 4 * D * D + 3 * D * inter + 2 * S * D + 3 * inter_t;
  return L * S * per_row;
}

static trm_status load_through_file(const uint8_t *data, size_t size, trm_model **out, int *skipped) {
  *skipped = 1;
  int fd = memfd_create("fuzz_load", 0);
  if (fd < 0) return TRM_OK;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) {
      close(fd);
      return TRM_OK;
    }
    done += (size_t)n;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  trm_status st = trm_model_load(path, out);
  close(fd);
  *skipped = 0;
  return st;
}

static void run_once(const trm_model *m, const int64_t *v) {
  int64_t seq = v[K_SEQ], vocab = v[K_VOCAB];
  trm_session *s = NULL;
  trm_status st = trm_session_create(m, 1, &s);
  if (st == TRM_E_NOMEM) return;
  FUZZ_CHECK(st == TRM_OK && s != NULL, "session on a loaded model");
  int32_t *tokens = malloc((size_t)seq * sizeof *tokens);
  FUZZ_CHECK(tokens != NULL, "malloc");
  for (int64_t i = 0; i < seq; i++) tokens[i] = (int32_t)(i % vocab);
  FUZZ_CHECK(trm_session_set_input(s, 0, tokens, (size_t)seq, 0) == TRM_OK, "set_input with valid tokens");
  FUZZ_CHECK(trm_session_set_option(s, TRM_OPT_YIELD, TRM_YIELD_CALL) == TRM_OK, "yield one call");
  trm_event ev = TRM_EVENT_INIT;
  FUZZ_CHECK(trm_refine(s, &ev) == TRM_OK, "refine");
  FUZZ_CHECK(ev.kind == TRM_EVENT_LATENT && ev.step == 1 && ev.cycle == 1 && ev.call == 1 && ev.calls == 1,
             "the first call is the first latent update");
  float *conf = malloc((size_t)seq * sizeof *conf);
  FUZZ_CHECK(conf != NULL, "malloc");
  FUZZ_CHECK(trm_session_answer(s, 0, tokens, conf, (size_t)seq) == TRM_OK, "answer");
  for (int64_t i = 0; i < seq; i++) FUZZ_CHECK(tokens[i] >= 0 && tokens[i] < vocab, "answer token in vocab");
  float q[2];
  FUZZ_CHECK(trm_session_q(s, 0, &q[0], &q[1]) == TRM_OK, "q");
  if (seq * vocab <= (1 << 16)) {
    float *logits = malloc((size_t)(seq * vocab) * sizeof *logits);
    FUZZ_CHECK(logits != NULL, "malloc");
    FUZZ_CHECK(trm_session_logits(s, 0, logits, (size_t)(seq * vocab)) == TRM_OK, "logits");
    free(logits);
  }
  free(conf);
  free(tokens);
  trm_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char sentinel;
  trm_model *m = (trm_model *)&sentinel, *from_file = (trm_model *)&sentinel;
  trm_status st = trm_model_load_memory(data ? data : (const uint8_t *)"", size, &m);
  FUZZ_CHECK(fuzz_known_status(st) && st != TRM_HALTED && st != TRM_E_IO && st != TRM_E_STATE,
             "load_memory's status");
  int skipped;
  trm_status st_file = load_through_file(data, size, &from_file, &skipped);
  if (!skipped) FUZZ_CHECK(st_file == st, "loading from a file and from memory give the same status");
  if (st != TRM_OK) {
    FUZZ_CHECK(m == (trm_model *)&sentinel, "a failed load leaves *out untouched");
    FUZZ_CHECK(trm_last_error()[0] != '\0', "a failed load says why");
    if (st_file == TRM_OK && from_file != (trm_model *)&sentinel) trm_model_free(from_file);
    return 0;
  }
  FUZZ_CHECK(m != NULL && m != (trm_model *)&sentinel, "a loaded model");

  int64_t v[N_INT_KEYS];
  for (size_t i = 0; i < N_INT_KEYS; i++) {
    FUZZ_CHECK(trm_model_info(m, int_keys[i], &v[i]) == TRM_OK, int_keys[i]);
    if (!skipped) {
      int64_t w;
      FUZZ_CHECK(trm_model_info(from_file, int_keys[i], &w) == TRM_OK && w == v[i], "file and memory agree");
    }
  }
  int64_t unused;
  FUZZ_CHECK(trm_model_info(m, "no_such_key", &unused) == TRM_E_INVALID, "unknown key");
  double eps, theta, expansion;
  FUZZ_CHECK(trm_model_info_double(m, "rms_norm_eps", &eps) == TRM_OK && eps > 0, "rms_norm_eps");
  FUZZ_CHECK(trm_model_info_double(m, "rope_theta", &theta) == TRM_OK && theta > 0, "rope_theta");
  FUZZ_CHECK(trm_model_info_double(m, "expansion", &expansion) == TRM_OK && expansion >= 0, "expansion");
  /* what the keys mean: TRM-SPEC.md section 1 and trm.h */
  FUZZ_CHECK(v[K_HEAD_DIM] * v[K_HEADS] == v[K_HIDDEN], "head_dim * num_heads = hidden_size");
  FUZZ_CHECK(v[K_STATE] == v[K_SEQ] + v[K_PUZZLE_LEN], "state_len = seq_len + puzzle_emb_len");
  FUZZ_CHECK(v[K_PUZZLE_LEN] * v[K_HIDDEN] >= v[K_PUZZLE_NDIM], "the puzzle embedding fits its prefix");
  FUZZ_CHECK(v[K_MLP_T] >= 0 && v[K_MLP_T] <= 1 && (v[K_MLP_T] == 0) == (v[K_INTER_T] == 0),
             "inter_t_size is 0 exactly without mlp_t");
  FUZZ_CHECK(v[K_POS] >= 0 && v[K_POS] <= 2 && v[K_NO_ACT] >= 0 && v[K_NO_ACT] <= 1 && v[K_ISA] >= 0 && v[K_ISA] <= 3,
             "enumerated keys");
  for (int k = K_HIDDEN; k <= K_HALT; k++)
    if (k != K_PUZZLE_NDIM && k != K_PUZZLE_LEN) FUZZ_CHECK(v[k] >= 1, int_keys[k]);
  FUZZ_CHECK(v[K_INTER] >= 1 && v[K_HEAD_DIM] >= 1, "widths are positive");
  FUZZ_CHECK(v[K_PARAMS] > 0 && (uint64_t)v[K_PARAMS] * 2 <= size, "param_count: every parameter came from the file");

  if (call_cost(v) <= 2e6) run_once(m, v);
  trm_model_free(m);
  if (!skipped) trm_model_free(from_file);
  return 0;
}
