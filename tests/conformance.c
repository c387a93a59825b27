/* Conformance against the reference TRM code (tests/conformance/README.md).
 *
 *   conformance MODEL.safetensors CASE_DIR [TOLERANCE]
 *
 * CASE_DIR holds the reference's outputs as .npy files. Step 0 runs free from H_init / L_init;
 * each later step k starts from the reference state after step k-1 (set with
 * trm_session_set_latent) and runs one supervision step through trm_refine. Every slot and every
 * step is compared: max abs error on y (z_H), z (z_L), q_halt and q_continue, and on the logits
 * relative to the largest reference logit of that slot and step. Fails above TOLERANCE (1e-3). */
#include "npy.h"
#include "trm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                                                \
  do {                                                                                                             \
    trm_status st_ = (call);                                                                                       \
    if (st_ < 0) {                                                                                                 \
      fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, trm_status_string(st_),           \
              trm_last_error());                                                                                   \
      exit(1);                                                                                                     \
    }                                                                                                              \
  } while (0)

static npy_array load(const char *dir, const char *name, char dtype, size_t ndim) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  npy_array a;
  if (npy_read(path, &a) != 0) exit(1);
  if (a.dtype != dtype || a.ndim != ndim) {
    fprintf(stderr, "%s: expected %zu dimensions of %c\n", path, ndim, dtype);
    exit(1);
  }
  return a;
}

static void expect_dim(const npy_array *a, size_t axis, int64_t value, const char *what) {
  if (a->shape[axis] != (size_t)value) {
    fprintf(stderr, "reference %s has %zu along axis %zu, the model says %lld\n", what, a->shape[axis], axis,
            (long long)value);
    exit(1);
  }
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
  }
  return worst;
}

static double max_abs(const float *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
  return m;
}

typedef struct worst {
  double y, z, q, logits;
} worst;

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.safetensors CASE_DIR [TOLERANCE]\n", argv[0]);
    return 2;
  }
  double tolerance = argc > 3 ? atof(argv[3]) : 1e-3;
  trm_model *m;
  CHECK(trm_model_load(argv[1], &m));
  int64_t seq_len, vocab, S, D;
  CHECK(trm_model_info(m, "seq_len", &seq_len));
  CHECK(trm_model_info(m, "vocab_size", &vocab));
  CHECK(trm_model_info(m, "state_len", &S));
  CHECK(trm_model_info(m, "hidden_size", &D));

  const char *dir = argv[2];
  npy_array inputs = load(dir, "inputs", 'i', 2), ids = load(dir, "puzzle_identifiers", 'i', 1);
  npy_array logits = load(dir, "logits", 'f', 4), q_halt = load(dir, "q_halt", 'f', 2);
  npy_array q_cont = load(dir, "q_continue", 'f', 2), z_H = load(dir, "z_H", 'f', 4), z_L = load(dir, "z_L", 'f', 4);
  size_t B = inputs.shape[0], K = logits.shape[0];
  expect_dim(&inputs, 1, seq_len, "inputs");
  expect_dim(&logits, 1, (int64_t)B, "logits");
  expect_dim(&logits, 2, seq_len, "logits");
  expect_dim(&logits, 3, vocab, "logits");
  expect_dim(&z_H, 2, S, "z_H");
  expect_dim(&z_H, 3, D, "z_H");
  expect_dim(&z_L, 2, S, "z_L");
  expect_dim(&z_L, 3, D, "z_L");

  trm_session *s;
  CHECK(trm_session_create(m, B, &s));
  CHECK(trm_session_set_option(s, TRM_OPT_MAX_STEPS, (int64_t)K));
  const int32_t *tok = inputs.data, *pid = ids.data;
  for (size_t b = 0; b < B; b++) CHECK(trm_session_set_input(s, b, tok + b * (size_t)seq_len, (size_t)seq_len, pid[b]));

  size_t state = (size_t)(S * D), nlog = (size_t)(seq_len * vocab);
  float *buf = malloc(state * sizeof(float)), *lbuf = malloc(nlog * sizeof(float));
  const float *ref_y = z_H.data, *ref_z = z_L.data, *ref_logits = logits.data;
  const float *ref_qh = q_halt.data, *ref_qc = q_cont.data;
  worst w = {0, 0, 0, 0};
  int failed = 0;
  for (size_t k = 0; k < K; k++) {
    if (k > 0)
      for (size_t b = 0; b < B; b++) {
        CHECK(trm_session_set_latent(s, b, TRM_LATENT_Y, ref_y + ((k - 1) * B + b) * state, state));
        CHECK(trm_session_set_latent(s, b, TRM_LATENT_Z, ref_z + ((k - 1) * B + b) * state, state));
      }
    trm_event ev = TRM_EVENT_INIT;
    CHECK(trm_refine(s, &ev));
    if (ev.kind != TRM_EVENT_STEP) {
      fprintf(stderr, "step %zu: trm_refine did not finish a supervision step\n", k);
      return 1;
    }
    for (size_t b = 0; b < B; b++) {
      size_t at = k * B + b;
      worst here;
      CHECK(trm_session_latent(s, b, TRM_LATENT_Y, buf, state));
      here.y = max_abs_diff(buf, ref_y + at * state, state);
      CHECK(trm_session_latent(s, b, TRM_LATENT_Z, buf, state));
      here.z = max_abs_diff(buf, ref_z + at * state, state);
      float qh, qc;
      CHECK(trm_session_q(s, b, &qh, &qc));
      here.q = fmax(fabs((double)qh - ref_qh[at]), fabs((double)qc - ref_qc[at]));
      CHECK(trm_session_logits(s, b, lbuf, nlog));
      here.logits = max_abs_diff(lbuf, ref_logits + at * nlog, nlog) / fmax(max_abs(ref_logits + at * nlog, nlog), 1e-30);
      if (!(here.y <= tolerance && here.z <= tolerance && here.q <= tolerance && here.logits <= tolerance)) {
        fprintf(stderr, "step %zu slot %zu: error y %.3g z %.3g q %.3g logits(rel) %.3g above %.1g\n", k, b, here.y,
                here.z, here.q, here.logits, tolerance);
        failed = 1;
      }
      w.y = fmax(w.y, here.y);
      w.z = fmax(w.z, here.z);
      w.q = fmax(w.q, here.q);
      w.logits = fmax(w.logits, here.logits);
    }
  }
  int64_t isa;
  CHECK(trm_model_info(m, "isa", &isa));
  static const char *isa_names[] = {"scalar", "avx2", "avx512", "neon"};
  printf("conformance %s [%s]: %zu steps x %zu slots, worst error y %.2e z %.2e q %.2e logits(rel) %.2e: %s\n", dir,
         isa >= 0 && isa < 4 ? isa_names[isa] : "?", K, B,
         w.y, w.z, w.q, w.logits, failed ? "FAIL" : "ok");
  free(buf);
  free(lbuf);
  free(inputs.data);
  free(ids.data);
  free(logits.data);
  free(q_halt.data);
  free(q_cont.data);
  free(z_H.data);
  free(z_L.data);
  trm_session_free(s);
  trm_model_free(m);
  return failed;
}
