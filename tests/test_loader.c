/* Unit tests (Check) for loading models: trm_model_load, trm_model_load_memory, trm_model_info.
 *
 * Good files of every configuration the format allows, and bad files of every kind the loader
 * must refuse: each refusal must give the documented status, leave *out untouched, and name
 * what was wrong in trm_last_error(). Ends with a deterministic fuzz loop. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_builder.h"
#include "trm.h"

/* ---- helpers ---- */

static max_align_t sentinel_object;
#define SENTINEL ((trm_model *)(void *)&sentinel_object)

/* Makes the thread's last error a known message, so a later check sees a fresh one. */
static void reset_error(void) {
  int64_t v;
  ck_assert_int_eq(trm_model_info(NULL, "hidden_size", &v), TRM_E_INVALID);
}

static const char *reset_message(void) { return "trm_model_info: NULL argument"; }

/* Loads bytes that must fail with `want`, leaving the out pointer as it was, with a fresh
 * message that contains `needle` (and `needle2`, when given). */
static void expect_bytes_fail(const unsigned char *buf, size_t size, trm_status want, const char *needle,
                              const char *needle2) {
  reset_error();
  trm_model *out = SENTINEL;
  trm_status st = trm_model_load_memory(buf, size, &out);
  const char *msg = trm_last_error();
  ck_assert_msg(st == want, "status %d (%s), want %d; message: %s", (int)st, trm_status_string(st), (int)want, msg);
  ck_assert_msg(out == SENTINEL, "a failed load changed *out");
  ck_assert_msg(msg[0] != '\0', "empty error message");
  ck_assert_msg(strcmp(msg, reset_message()) != 0, "the failed load left no message of its own");
  if (needle) ck_assert_msg(strstr(msg, needle) != NULL, "message '%s' does not mention '%s'", msg, needle);
  if (needle2) ck_assert_msg(strstr(msg, needle2) != NULL, "message '%s' does not mention '%s'", msg, needle2);
}

/* As expect_bytes_fail, for a built model, from memory and from a file; the file's message must
 * also name the path. */
static void expect_model_fail2(const mb_model *mb, trm_status want, const char *needle, const char *needle2) {
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  expect_bytes_fail(buf, size, want, needle, needle2);

  char *path = mb_write_temp(buf, size);
  ck_assert_ptr_nonnull(path);
  reset_error();
  trm_model *out = SENTINEL;
  trm_status st = trm_model_load(path, &out);
  const char *msg = trm_last_error();
  ck_assert_msg(st == want, "from a file: status %d, want %d; message: %s", (int)st, (int)want, msg);
  ck_assert(out == SENTINEL);
  ck_assert_msg(strstr(msg, path) != NULL, "message '%s' does not name the file", msg);
  if (needle) ck_assert_msg(strstr(msg, needle) != NULL, "message '%s' does not mention '%s'", msg, needle);
  unlink(path);
  free(path);
  free(buf);
}

static void expect_model_fail(const mb_model *mb, trm_status want, const char *needle) {
  expect_model_fail2(mb, want, needle, NULL);
}

static trm_model *load_built(const mb_model *mb) {
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  trm_model *m = NULL;
  trm_status st = trm_model_load_memory(buf, size, &m);
  ck_assert_msg(st == TRM_OK, "load failed: %s: %s", trm_status_string(st), trm_last_error());
  ck_assert_ptr_nonnull(m);
  free(buf);
  return m;
}

static mb_model *build_default(void) {
  mb_config c;
  mb_default_config(&c);
  return mb_build(&c);
}

static int64_t info(const trm_model *m, const char *key) {
  int64_t v = -12345;
  trm_status st = trm_model_info(m, key, &v);
  ck_assert_msg(st == TRM_OK, "trm_model_info('%s'): %s", key, trm_last_error());
  return v;
}

/* Runs `steps` supervision steps on one puzzle; returns y then z of slot 0 (malloc'd, 2*S*D floats). */
static float *run_model(const trm_model *m, int steps, int32_t puzzle_id, size_t *n_out) {
  int64_t seq = info(m, "seq_len"), vocab = info(m, "vocab_size");
  size_t n = (size_t)(info(m, "state_len") * info(m, "hidden_size"));
  int32_t tokens[64];
  ck_assert_int_le(seq, 64);
  for (int64_t i = 0; i < seq; i++) tokens[i] = (int32_t)((i * 3 + 1) % vocab);
  trm_session *s = NULL;
  ck_assert_int_eq(trm_session_create(m, 1, &s), TRM_OK);
  ck_assert_int_eq(trm_session_set_input(s, 0, tokens, (size_t)seq, puzzle_id), TRM_OK);
  for (int i = 0; i < steps; i++) ck_assert_int_eq(trm_refine(s, NULL), TRM_OK);
  float *out = malloc(2 * n * sizeof *out);
  ck_assert_ptr_nonnull(out);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Y, out, n), TRM_OK);
  ck_assert_int_eq(trm_session_latent(s, 0, TRM_LATENT_Z, out + n, n), TRM_OK);
  trm_session_free(s);
  *n_out = 2 * n;
  return out;
}

static void assert_same_floats(const float *a, const float *b, size_t n) {
  ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "results differ");
}

/* Both models compute bitwise the same states for the same puzzle. */
static void assert_same_results(const trm_model *a, const trm_model *b, int32_t puzzle_id) {
  size_t na, nb;
  float *ra = run_model(a, 2, puzzle_id, &na), *rb = run_model(b, 2, puzzle_id, &nb);
  ck_assert_uint_eq(na, nb);
  assert_same_floats(ra, rb, na);
  free(ra);
  free(rb);
}

static uint64_t total_elements(const mb_model *mb) {
  uint64_t n = 0;
  for (size_t i = 0; i < mb->n_tensors; i++) n += mb_numel(&mb->tensors[i]);
  return n;
}

/* Checks every documented info key against the builder's configuration. */
static void check_infos(const trm_model *m, const mb_model *mb) {
  const mb_config *c = &mb->cfg;
  ck_assert_int_eq(info(m, "hidden_size"), c->hidden_size);
  ck_assert_int_eq(info(m, "num_heads"), c->num_heads);
  ck_assert_int_eq(info(m, "L_layers"), c->L_layers);
  ck_assert_int_eq(info(m, "H_cycles"), c->H_cycles);
  ck_assert_int_eq(info(m, "L_cycles"), c->L_cycles);
  ck_assert_int_eq(info(m, "seq_len"), c->seq_len);
  ck_assert_int_eq(info(m, "vocab_size"), c->vocab_size);
  ck_assert_int_eq(info(m, "puzzle_emb_ndim"), c->puzzle_emb_ndim);
  if (c->puzzle_emb_ndim > 0) ck_assert_int_eq(info(m, "num_puzzle_identifiers"), c->num_puzzle_identifiers);
  ck_assert_int_eq(info(m, "puzzle_emb_len"), mb->P);
  ck_assert_int_eq(info(m, "halt_max_steps"), c->halt_max_steps);
  ck_assert_int_eq(info(m, "mlp_t"), c->mlp_t ? 1 : 0);
  ck_assert_int_eq(info(m, "no_ACT_continue"), 1);
  int64_t pos = !strcmp(c->pos_encodings, "none") ? 0 : !strcmp(c->pos_encodings, "rope") ? 1 : 2;
  ck_assert_int_eq(info(m, "pos_encodings"), pos);
  ck_assert_int_eq(info(m, "state_len"), c->seq_len + mb->P);
  ck_assert_int_eq(info(m, "head_dim"), c->hidden_size / c->num_heads);
  ck_assert_int_eq(info(m, "inter_size"), mb->inter);
  ck_assert_int_eq(info(m, "inter_t_size"), c->mlp_t ? mb->inter_t : 0);
  ck_assert_int_eq(info(m, "param_count"), (int64_t)total_elements(mb));
  double d;
  ck_assert_int_eq(trm_model_info_double(m, "rms_norm_eps", &d), TRM_OK);
  ck_assert_double_eq_tol(d, 1e-5, 1e-12);
  ck_assert_int_eq(trm_model_info_double(m, "rope_theta", &d), TRM_OK);
  ck_assert_double_eq_tol(d, 10000.0, 1e-9);
  ck_assert_int_eq(trm_model_info_double(m, "expansion", &d), TRM_OK);
  ck_assert_double_eq_tol(d, c->expansion, 1e-12);
}

static void check_good_config(const mb_config *c) {
  mb_model *mb = mb_build(c);
  trm_model *m = load_built(mb);
  check_infos(m, mb);
  size_t n;
  float *r = run_model(m, 1, 0, &n);
  for (size_t i = 0; i < n; i++) ck_assert(isfinite(r[i]));
  free(r);
  trm_model_free(m);
  mb_free(mb);
}

/* ---- good files ---- */

START_TEST(test_builder_widths) {
  /* the builder's SwiGLU width follows the spec, Python's round included */
  ck_assert_int_eq(mb_round_half_even(0.5), 0);
  ck_assert_int_eq(mb_round_half_even(1.5), 2);
  ck_assert_int_eq(mb_round_half_even(2.5), 2);
  ck_assert_int_eq(mb_round_half_even(256.5), 256);
  ck_assert_int_eq(mb_round_half_even(257.5), 258);
  ck_assert_int_eq(mb_round_half_even(2.4), 2);
  ck_assert_int_eq(mb_swiglu_width(4, 512), 1536);   /* paper: hidden 512, expansion 4 */
  ck_assert_int_eq(mb_swiglu_width(4, 97), 512);     /* round(258.67) = 259 -> 512 */
  ck_assert_int_eq(mb_swiglu_width(4, 96), 256);     /* exactly 256 */
  ck_assert_int_eq(mb_swiglu_width(2, 16), 256);
  ck_assert_int_eq(mb_swiglu_width(24.046875, 16), 256); /* round(256.5) = 256 */
  ck_assert_int_eq(mb_swiglu_width(24.140625, 16), 512); /* 257.5 -> 258 */
}
END_TEST

START_TEST(test_load_default_rope) {
  mb_config c;
  mb_default_config(&c);
  check_good_config(&c);
}
END_TEST

START_TEST(test_load_learned) {
  mb_config c;
  mb_default_config(&c);
  c.pos_encodings = "learned";
  check_good_config(&c);
}
END_TEST

START_TEST(test_load_none) {
  mb_config c;
  mb_default_config(&c);
  c.pos_encodings = "none";
  check_good_config(&c);
}
END_TEST

START_TEST(test_load_mlp_t) {
  mb_config c;
  mb_default_config(&c);
  c.mlp_t = true;
  c.pos_encodings = "none";
  check_good_config(&c);
  c.L_layers = 1;
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 1;
  check_good_config(&c);
}
END_TEST

START_TEST(test_load_no_puzzle_emb) {
  mb_config c;
  mb_default_config(&c);
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 1;
  mb_model *mb = mb_build(&c);
  ck_assert_ptr_null(mb_find(mb, "puzzle_emb.weights"));
  trm_model *m = load_built(mb);
  check_infos(m, mb);
  ck_assert_int_eq(info(m, "puzzle_emb_len"), 0);
  ck_assert_int_eq(info(m, "state_len"), c.seq_len);
  trm_model_free(m);
  /* num_puzzle_identifiers is optional */
  mb_set_meta(mb, "num_puzzle_identifiers", NULL);
  m = load_built(mb);
  ck_assert_int_eq(info(m, "num_puzzle_identifiers"), 1);
  trm_model_free(m);
  mb_free(mb);
}
END_TEST

START_TEST(test_load_puzzle_padding) {
  /* puzzle_emb_len 0 resolves to ceil(20 / 16) = 2 rows, the second zero-padded after 4 values */
  mb_config c;
  mb_default_config(&c);
  c.puzzle_emb_ndim = 20;
  c.pos_encodings = "learned";
  mb_model *a = mb_build(&c);
  ck_assert_int_eq(a->P, 2);
  trm_model *ma = load_built(a);
  check_infos(ma, a);
  ck_assert_int_eq(info(ma, "state_len"), 8);

  /* the same model with a 32-wide table whose extra 12 columns are zero must compute the same */
  c.puzzle_emb_ndim = 32;
  mb_model *b = mb_build(&c);
  ck_assert_int_eq(b->P, 2);
  mb_tensor *ta = mb_find(a, "puzzle_emb.weights"), *tb = mb_find(b, "puzzle_emb.weights");
  for (size_t r = 0; r < 2; r++)
    for (size_t j = 0; j < 32; j++) mb_set(tb, r * 32 + j, j < 20 ? mb_get(ta, r * 20 + j) : 0.0f);
  trm_model *mbm = load_built(b);
  assert_same_results(ma, mbm, 0);
  assert_same_results(ma, mbm, 1);
  trm_model_free(mbm);
  mb_free(b);

  /* an explicit prefix longer than needed */
  c.puzzle_emb_ndim = 20;
  c.puzzle_emb_len = 3;
  mb_model *d = mb_build(&c);
  trm_model *md = load_built(d);
  ck_assert_int_eq(info(md, "puzzle_emb_len"), 3);
  ck_assert_int_eq(info(md, "state_len"), 9);
  trm_model_free(md);
  mb_free(d);

  trm_model_free(ma);
  mb_free(a);
}
END_TEST

/* A model stored in `dtype` equals the F32 model holding the same (rounded) values. */
static void check_half_dtype(const char *dtype) {
  mb_config c;
  mb_default_config(&c);
  mb_model *f32 = mb_build(&c), *half = mb_build(&c);
  for (size_t i = 0; i < f32->n_tensors; i++) mb_round_to(&f32->tensors[i], dtype);
  mb_convert_all(half, dtype);
  ck_assert_str_eq(mb_find(half, "lm_head.weight")->dtype, dtype);
  trm_model *a = load_built(f32), *b = load_built(half);
  ck_assert_int_eq(info(a, "param_count"), info(b, "param_count"));
  assert_same_results(a, b, 1);
  trm_model_free(a);
  trm_model_free(b);
  mb_free(f32);
  mb_free(half);
}

START_TEST(test_load_bf16) { check_half_dtype("BF16"); }
END_TEST

START_TEST(test_load_f16) {
  /* includes values small enough to be F16 subnormals */
  mb_config c;
  mb_default_config(&c);
  mb_model *probe = mb_build(&c);
  mb_tensor *t = mb_find(probe, "L_level.layers.0.mlp.down_proj.weight");
  mb_convert(t, "F16");
  size_t subnormal = 0;
  for (size_t i = 0; i < mb_numel(t); i++) {
    float v = mb_get(t, i);
    if (v != 0.0f && fabsf(v) < 6.103515625e-05f) subnormal++;
  }
  ck_assert_uint_gt(subnormal, 0);
  mb_free(probe);
  check_half_dtype("F16");
}
END_TEST

START_TEST(test_load_mixed_dtypes) {
  /* real checkpoints mix dtypes, e.g. bfloat16 H_init / L_init next to float32 weights */
  mb_config c;
  mb_default_config(&c);
  mb_model *ref = mb_build(&c), *mixed = mb_build(&c);
  const char *bf[] = {"H_init", "L_init", "lm_head.weight"};
  const char *hf[] = {"embed_tokens.embedding_weight", "L_level.layers.1.mlp.gate_up_proj.weight"};
  for (size_t i = 0; i < 3; i++) {
    mb_round_to(mb_find(ref, bf[i]), "BF16");
    mb_convert(mb_find(mixed, bf[i]), "BF16");
  }
  for (size_t i = 0; i < 2; i++) {
    mb_round_to(mb_find(ref, hf[i]), "F16");
    mb_convert(mb_find(mixed, hf[i]), "F16");
  }
  trm_model *a = load_built(ref), *b = load_built(mixed);
  assert_same_results(a, b, 0);
  trm_model_free(a);
  trm_model_free(b);
  mb_free(ref);
  mb_free(mixed);
}
END_TEST

START_TEST(test_load_tensor_order) {
  /* the header's order of tensors (and of their data) does not matter */
  mb_model *a = build_default(), *b = build_default();
  for (size_t i = 0; i < b->n_tensors / 2; i++) {
    mb_tensor tmp = b->tensors[i];
    b->tensors[i] = b->tensors[b->n_tensors - 1 - i];
    b->tensors[b->n_tensors - 1 - i] = tmp;
  }
  trm_model *ma = load_built(a), *mbm = load_built(b);
  assert_same_results(ma, mbm, 1);
  trm_model_free(ma);
  trm_model_free(mbm);
  mb_free(a);
  mb_free(b);
}
END_TEST

START_TEST(test_load_path_equals_memory) {
  mb_model *mb = build_default();
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  char *path = mb_write_temp(buf, size);
  ck_assert_ptr_nonnull(path);
  trm_model *a = NULL, *b = NULL;
  ck_assert_int_eq(trm_model_load(path, &a), TRM_OK);
  ck_assert_int_eq(trm_model_load_memory(buf, size, &b), TRM_OK);
  check_infos(a, mb);
  assert_same_results(a, b, 0);
  trm_model_free(a);
  trm_model_free(b);
  unlink(path);
  free(path);
  free(buf);
  mb_free(mb);
}
END_TEST

START_TEST(test_load_memory_copies) {
  /* the caller may overwrite and free the buffer once trm_model_load_memory returns */
  mb_model *mb = build_default();
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  trm_model *m = NULL;
  ck_assert_int_eq(trm_model_load_memory(buf, size, &m), TRM_OK);
  size_t n1, n2;
  float *before = run_model(m, 2, 1, &n1);
  memset(buf, 0xA5, size);
  free(buf);
  void *noise = malloc(size); /* likely to reuse the freed block */
  ck_assert_ptr_nonnull(noise);
  memset(noise, 0x7F, size);
  float *after = run_model(m, 2, 1, &n2);
  ck_assert_uint_eq(n1, n2);
  assert_same_floats(before, after, n1);
  check_infos(m, mb);
  free(noise);
  free(before);
  free(after);
  trm_model_free(m);
  mb_free(mb);
}
END_TEST

START_TEST(test_info_keys) {
  mb_model *mb = build_default();
  trm_model *m = load_built(mb);
  check_infos(m, mb);
  ck_assert_int_eq(info(m, "state_len"), 7);
  ck_assert_int_eq(info(m, "head_dim"), 8);
  ck_assert_int_eq(info(m, "inter_size"), 256);
  ck_assert_int_eq(info(m, "puzzle_emb_len"), 1);

  int64_t v = 99;
  reset_error();
  ck_assert_int_eq(trm_model_info(m, "no_such_key", &v), TRM_E_INVALID);
  ck_assert_int_eq(v, 99);
  ck_assert_ptr_nonnull(strstr(trm_last_error(), "no_such_key"));
  ck_assert_int_eq(trm_model_info(m, "", &v), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info(m, "Hidden_Size", &v), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info(m, "rms_norm_eps", &v), TRM_E_INVALID); /* a double key */
  ck_assert_int_eq(trm_model_info(m, NULL, &v), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info(m, "hidden_size", NULL), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info(NULL, "hidden_size", &v), TRM_E_INVALID);
  ck_assert_int_eq(v, 99);

  double d = 7.0;
  ck_assert_int_eq(trm_model_info_double(m, "hidden_size", &d), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info_double(m, "nope", &d), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info_double(m, NULL, &d), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info_double(m, "expansion", NULL), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_info_double(NULL, "expansion", &d), TRM_E_INVALID);
  ck_assert(d == 7.0);
  trm_model_free(m);
  trm_model_free(NULL);
  mb_free(mb);
}
END_TEST

START_TEST(test_info_pos_and_mlp_t) {
  mb_config c;
  mb_default_config(&c);
  const char *pos[] = {"none", "rope", "learned"};
  for (int i = 0; i < 3; i++) {
    c.pos_encodings = pos[i];
    mb_model *mb = mb_build(&c);
    trm_model *m = load_built(mb);
    ck_assert_int_eq(info(m, "pos_encodings"), i);
    trm_model_free(m);
    mb_free(mb);
  }
  c.pos_encodings = "none";
  c.mlp_t = true;
  mb_model *mb = mb_build(&c);
  trm_model *m = load_built(mb);
  ck_assert_int_eq(info(m, "mlp_t"), 1);
  ck_assert_int_eq(info(m, "inter_t_size"), mb_swiglu_width(2.0, 7));
  ck_assert_int_eq(info(m, "param_count"), (int64_t)total_elements(mb));
  trm_model_free(m);
  mb_free(mb);
}
END_TEST

START_TEST(test_optional_metadata) {
  mb_model *mb = build_default();
  mb_set_meta(mb, "rms_norm_eps", "1e-6");
  mb_set_meta(mb, "rope_theta", "500");
  mb_set_meta(mb, "forward_dtype", "bfloat16");
  trm_model *m = load_built(mb);
  double d;
  ck_assert_int_eq(trm_model_info_double(m, "rms_norm_eps", &d), TRM_OK);
  ck_assert_double_eq_tol(d, 1e-6, 1e-15);
  ck_assert_int_eq(trm_model_info_double(m, "rope_theta", &d), TRM_OK);
  ck_assert_double_eq_tol(d, 500.0, 1e-12);
  trm_model_free(m);

  const char *truths[] = {"true", "True", "1"}, *falses[] = {"false", "False", "0"};
  for (int i = 0; i < 3; i++) {
    mb_set_meta(mb, "no_ACT_continue", truths[i]);
    m = load_built(mb);
    ck_assert_int_eq(info(m, "no_ACT_continue"), 1);
    trm_model_free(m);
    mb_set_meta(mb, "no_ACT_continue", falses[i]);
    m = load_built(mb);
    ck_assert_int_eq(info(m, "no_ACT_continue"), 0);
    trm_model_free(m);
  }
  mb_free(mb);

  /* mlp_t accepts the same spellings */
  mb_config c;
  mb_default_config(&c);
  c.mlp_t = true;
  for (int i = 0; i < 3; i++) {
    mb = mb_build(&c);
    mb_set_meta(mb, "mlp_t", truths[i]);
    m = load_built(mb);
    ck_assert_int_eq(info(m, "mlp_t"), 1);
    trm_model_free(m);
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_expansion_optional) {
  /* without 'expansion' the widths come from the weights alone */
  mb_config c;
  mb_default_config(&c);
  c.inter_override = 512;
  mb_model *mb = mb_build(&c);
  mb_set_meta(mb, "expansion", NULL);
  trm_model *m = load_built(mb);
  ck_assert_int_eq(info(m, "inter_size"), 512);
  ck_assert_int_eq(info(m, "param_count"), (int64_t)total_elements(mb));
  trm_model_free(m);
  mb_free(mb);
}
END_TEST

START_TEST(test_expansion_round_half_even) {
  /* expansion * 16 * 2/3 = 256.5 exactly: Python's round gives 256, so inter = 256, not 512 */
  mb_config c;
  mb_default_config(&c);
  c.expansion = 24.046875;
  mb_model *mb = mb_build(&c);
  ck_assert_int_eq(mb->inter, 256);
  ck_assert_str_eq(mb_get_meta(mb, "expansion"), "24.046875");
  trm_model *m = load_built(mb);
  ck_assert_int_eq(info(m, "inter_size"), 256);
  trm_model_free(m);
  mb_free(mb);
  c.inter_override = 512;
  mb = mb_build(&c);
  expect_model_fail(mb, TRM_E_FORMAT, "expansion");
  mb_free(mb);
}
END_TEST

START_TEST(test_rope_odd_head_dim_ok_without_rope) {
  /* head_dim 1 is fine without rope */
  mb_config c;
  mb_default_config(&c);
  c.num_heads = 16;
  c.pos_encodings = "none";
  mb_model *mb = mb_build(&c);
  trm_model *m = load_built(mb);
  ck_assert_int_eq(info(m, "head_dim"), 1);
  trm_model_free(m);
  mb_free(mb);
}
END_TEST

/* ---- bad containers ---- */

START_TEST(test_bad_null_args) {
  mb_model *mb = build_default();
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  trm_model *out = SENTINEL;
  reset_error();
  ck_assert_int_eq(trm_model_load_memory(NULL, size, &out), TRM_E_INVALID);
  ck_assert(out == SENTINEL);
  ck_assert_str_ne(trm_last_error(), reset_message());
  ck_assert_int_eq(trm_model_load_memory(buf, size, NULL), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_load_memory(NULL, 0, &out), TRM_E_INVALID);
  ck_assert_int_eq(trm_model_load(NULL, &out), TRM_E_INVALID);
  ck_assert(out == SENTINEL);
  ck_assert_int_eq(trm_model_load("x.safetensors", NULL), TRM_E_INVALID);
  free(buf);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_missing_file) {
  trm_model *out = SENTINEL;
  reset_error();
  const char *path = "/nonexistent-dir-for-trm-tests/model.safetensors";
  ck_assert_int_eq(trm_model_load(path, &out), TRM_E_IO);
  ck_assert(out == SENTINEL);
  ck_assert_ptr_nonnull(strstr(trm_last_error(), path));
}
END_TEST

START_TEST(test_bad_directory) {
  /* A directory is not a readable model file: TRM_E_IO ("A file could not be opened or read"),
   * not an attempt to allocate whatever size ftell() reports for it. */
  trm_model *out = SENTINEL;
  reset_error();
  trm_status st = trm_model_load("/", &out);
  ck_assert_msg(st == TRM_E_IO, "loading a directory: %s (%s)", trm_status_string(st), trm_last_error());
  ck_assert(out == SENTINEL);
}
END_TEST

START_TEST(test_bad_empty_file) {
  unsigned char byte = 0;
  expect_bytes_fail(&byte, 0, TRM_E_FORMAT, NULL, NULL);
  char *path = mb_write_temp(&byte, 0);
  ck_assert_ptr_nonnull(path);
  trm_model *out = SENTINEL;
  ck_assert_int_eq(trm_model_load(path, &out), TRM_E_FORMAT);
  ck_assert(out == SENTINEL);
  unlink(path);
  free(path);
}
END_TEST

START_TEST(test_bad_short) {
  unsigned char bytes[8] = {2, 0, 0, 0, 0, 0, 0, 0};
  for (size_t n = 1; n < 8; n++) expect_bytes_fail(bytes, n, TRM_E_FORMAT, NULL, NULL);
  expect_bytes_fail(bytes, 8, TRM_E_FORMAT, "header", NULL); /* length 2, but no header bytes */
}
END_TEST

START_TEST(test_bad_header_length) {
  mb_model *mb = build_default();
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  uint64_t hl = mb_header_len(buf);
  const uint64_t lengths[] = {0,
                              1,
                              size - 8 + 1,
                              size,
                              (uint64_t)1 << 32,
                              (uint64_t)1 << 63,
                              UINT64_MAX,
                              UINT64_MAX - 7,
                              hl + 1,
                              hl - 1};
  for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
    mb_put_le64(buf, lengths[i]);
    expect_bytes_fail(buf, size, TRM_E_FORMAT, NULL, NULL);
  }
  mb_put_le64(buf, (uint64_t)1 << 63);
  expect_bytes_fail(buf, size, TRM_E_FORMAT, "header length", NULL);
  mb_put_le64(buf, 0);
  expect_bytes_fail(buf, size, TRM_E_FORMAT, "header length", NULL);
  free(buf);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_header_over_limit) {
  /* a header longer than 64 MiB is refused even when the file holds it */
  size_t hl = ((size_t)64 << 20) + 8, size = 8 + hl;
  unsigned char *buf = malloc(size);
  ck_assert_ptr_nonnull(buf);
  mb_put_le64(buf, hl);
  memset(buf + 8, ' ', hl);
  buf[8] = '{';
  buf[9] = '}';
  expect_bytes_fail(buf, size, TRM_E_FORMAT, "header length", NULL);
  free(buf);
}
END_TEST

START_TEST(test_bad_truncated) {
  /* every proper prefix of a valid file fails cleanly */
  mb_config c;
  mb_default_config(&c);
  c.L_layers = 1;
  c.hidden_size = 8;
  mb_model *mb = mb_build(&c);
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  trm_model *m = NULL;
  ck_assert_int_eq(trm_model_load_memory(buf, size, &m), TRM_OK);
  trm_model_free(m);
  for (size_t n = 0; n < size; n++) {
    unsigned char *copy = malloc(n ? n : 1); /* exactly n bytes, so over-reads are caught by tools */
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, n);
    trm_model *out = SENTINEL;
    trm_status st = trm_model_load_memory(copy, n, &out);
    ck_assert_msg(st == TRM_E_FORMAT, "prefix of %zu bytes: %s", n, trm_status_string(st));
    ck_assert_msg(out == SENTINEL, "prefix of %zu bytes changed *out", n);
    ck_assert(trm_last_error()[0] != '\0');
    free(copy);
  }
  free(buf);
  mb_free(mb);
}
END_TEST

/* A file whose header is `header` and whose data area is the default model's. */
static void expect_header_fail(const char *header, const char *needle) {
  mb_model *mb = build_default();
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  uint64_t hl = mb_header_len(buf);
  size_t fsize;
  unsigned char *file = mb_file_from_parts(header, strlen(header), buf + 8 + hl, size - 8 - hl, &fsize);
  expect_bytes_fail(file, fsize, TRM_E_FORMAT, needle, NULL);
  free(file);
  free(buf);
  mb_free(mb);
}

/* The default model's header with `from` replaced by `to`, which must fail with `want`. */
static void expect_patched_fail(const char *from, const char *to, trm_status want, const char *needle) {
  mb_model *mb = build_default();
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  ck_assert_msg(mb_replace_in_header(&buf, &size, from, to), "'%s' not in the header", from);
  expect_bytes_fail(buf, size, want, needle, NULL);
  free(buf);
  mb_free(mb);
}

START_TEST(test_bad_json) {
  const char *headers[] = {
      "{\"__metadata__\":{\"format\":\"libtrm}}",            /* unterminated string */
      "{\"__metadata__\" {\"format\":\"libtrm\"}}",          /* missing colon */
      "{\"__metadata__\":{\"format\" \"libtrm\"}}",          /* missing colon in metadata */
      "{\"__metadata__\":{\"format\":\"libtrm\"}",           /* unclosed object */
      "{\"__metadata__\":{\"format\":\"libtrm\",}}",         /* trailing comma */
      "{\"__metadata__\":{\"format\":\"libtrm\"}} x",        /* trailing bytes */
      "{\"__metadata__\":{\"format\":\"libtrm\"}}}",         /* trailing brace */
      "{\"__metadata__\":{\"format\":libtrm}}",              /* bare word */
      "{\"__metadata__\":{\"format\":\"lib\\qtrm\"}}",       /* bad escape */
      "{\"__metadata__\":{\"format\":\"lib\\u00\"}}",        /* short \u escape */
      "{\"__metadata__\":{\"format\":\"lib\\u0000trm\"}}",   /* NUL */
      "{\"__metadata__\":{\"format\":\"\\ud800\"}}",         /* unpaired surrogate */
      "{\"__metadata__\":{\"format\":\"a\tb\"}}",            /* raw control character */
      "{\"__metadata__\":{\"format\":1}}",                   /* metadata value not a string */
      "{\"__metadata__\":{\"format\":{\"a\":\"b\"}}}",       /* metadata value an object */
      "{\"__metadata__\":[]}",
      "{\"__metadata__\":{}, \"__metadata__\":{}}",          /* twice */
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}",            /* no data_offsets */
      "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",   /* no shape */
      "{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}",       /* no dtype */
      "{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999999]}}",
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", /* 9 dims */
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
      "{\"x\":[]}",
      "{\"x\":\"F32\"}",
      "[]",
      "\"abc\"",
      "null",
      "{}",
      "  ",
      "{\"__metadata__\":{\"format\":\"libtrm\"}",
  };
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) expect_header_fail(headers[i], NULL);

  /* nesting too deep */
  char deep[1024];
  size_t n = 0;
  n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"x\":");
  for (int i = 0; i < 200; i++) deep[n++] = '[';
  for (int i = 0; i < 200; i++) deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = '\0';
  expect_header_fail(deep, NULL);
  n = 0;
  n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"__metadata__\":");
  for (int i = 0; i < 100; i++) n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"a\":");
  for (int i = 0; i < 101; i++) deep[n++] = '}';
  deep[n] = '\0';
  expect_header_fail(deep, NULL);

  /* trailing bytes after a valid header of a valid model */
  mb_model *mb = build_default();
  size_t size;
  unsigned char *buf = mb_serialize(mb, &size);
  uint64_t hl = mb_header_len(buf);
  char *text = malloc(hl + 16);
  ck_assert_ptr_nonnull(text);
  memcpy(text, buf + 8, hl);
  size_t tl = hl;
  while (tl > 0 && text[tl - 1] == ' ') tl--;
  memcpy(text + tl, " x", 3);
  size_t fsize;
  unsigned char *file = mb_file_from_parts(text, tl + 2, buf + 8 + hl, size - 8 - hl, &fsize);
  expect_bytes_fail(file, fsize, TRM_E_FORMAT, "after the header", NULL);
  free(file);
  /* ... while padding spaces, tabs and newlines are fine */
  memcpy(text + tl, " \n\t\r ", 6);
  file = mb_file_from_parts(text, tl + 5, buf + 8 + hl, size - 8 - hl, &fsize);
  trm_model *m = NULL;
  ck_assert_int_eq(trm_model_load_memory(file, fsize, &m), TRM_OK);
  trm_model_free(m);
  free(file);
  free(text);
  free(buf);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_duplicate_tensor) {
  mb_model *mb = build_default();
  ck_assert_ptr_nonnull(mb_duplicate(mb, "q_head.bias", "q_head.bias"));
  expect_model_fail2(mb, TRM_E_FORMAT, "q_head.bias", "twice");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_duplicate_metadata) {
  expect_patched_fail("\"source\":\"tests/model_builder.c\"", "\"format\":\"libtrm\"", TRM_E_FORMAT, "format");
  expect_patched_fail("\"source\":\"tests/model_builder.c\"", "\"hidden_size\":\"16\"", TRM_E_FORMAT, "hidden_size");
}
END_TEST

START_TEST(test_bad_overlapping_offsets) {
  mb_model *mb = build_default();
  /* find H_init's real offsets and make L_init share them */
  uint64_t off = 0, begin = 0;
  for (size_t i = 0; i < mb->n_tensors; i++) {
    if (!strcmp(mb->tensors[i].name, "H_init")) begin = off;
    off += mb->tensors[i].nbytes;
  }
  mb_tensor *t = mb_find(mb, "L_init");
  t->override_offsets = true;
  t->begin = begin;
  t->end = begin + t->nbytes;
  expect_model_fail2(mb, TRM_E_FORMAT, "H_init", "L_init");
  /* a partial overlap: shifted by one element */
  t->begin = begin + 4;
  t->end = begin + 4 + t->nbytes;
  expect_model_fail2(mb, TRM_E_FORMAT, "overlap", "L_init");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_offsets_out_of_range) {
  mb_model *mb = build_default();
  uint64_t data_size = 0;
  for (size_t i = 0; i < mb->n_tensors; i++) data_size += mb->tensors[i].nbytes;
  mb_tensor *t = mb_find(mb, "lm_head.weight");
  t->override_offsets = true;
  t->begin = data_size - t->nbytes + 4;
  t->end = data_size + 4;
  expect_model_fail2(mb, TRM_E_FORMAT, "lm_head.weight", NULL);
  t->begin = UINT64_MAX - t->nbytes;
  t->end = UINT64_MAX;
  expect_model_fail2(mb, TRM_E_FORMAT, "lm_head.weight", NULL);
  t->begin = ((uint64_t)1 << 63) + 8;
  t->end = t->begin + t->nbytes; /* wraps around nowhere, far outside */
  expect_model_fail2(mb, TRM_E_FORMAT, "lm_head.weight", NULL);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_offsets_length) {
  mb_model *mb = build_default();
  uint64_t off = 0, begin = 0;
  for (size_t i = 0; i < mb->n_tensors; i++) {
    if (!strcmp(mb->tensors[i].name, "q_head.weight")) begin = off;
    off += mb->tensors[i].nbytes;
  }
  mb_tensor *t = mb_find(mb, "q_head.weight");
  t->override_offsets = true;
  t->begin = begin;
  t->end = begin + t->nbytes - 4; /* one element short */
  expect_model_fail2(mb, TRM_E_FORMAT, "q_head.weight", "bytes");
  t->end = begin + t->nbytes - 1; /* not even whole elements */
  expect_model_fail2(mb, TRM_E_FORMAT, "q_head.weight", NULL);
  t->begin = begin;
  t->end = begin;
  expect_model_fail2(mb, TRM_E_FORMAT, "q_head.weight", NULL);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_offsets_reversed) {
  mb_model *mb = build_default();
  uint64_t off = 0, begin = 0;
  for (size_t i = 0; i < mb->n_tensors; i++) {
    if (!strcmp(mb->tensors[i].name, "H_init")) begin = off;
    off += mb->tensors[i].nbytes;
  }
  mb_tensor *t = mb_find(mb, "H_init");
  t->override_offsets = true;
  t->begin = begin + t->nbytes;
  t->end = begin;
  expect_model_fail2(mb, TRM_E_FORMAT, "H_init", NULL);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_unknown_dtype) {
  mb_model *mb = build_default();
  mb_set_dtype_name(mb_find(mb, "L_init"), "Q7");
  expect_model_fail2(mb, TRM_E_FORMAT, "L_init", "Q7");
  mb_set_dtype_name(mb_find(mb, "L_init"), "f32"); /* names are case-sensitive */
  expect_model_fail2(mb, TRM_E_FORMAT, "L_init", NULL);
  mb_set_dtype_name(mb_find(mb, "L_init"), "");
  expect_model_fail2(mb, TRM_E_FORMAT, "L_init", NULL);
  mb_set_dtype_name(mb_find(mb, "L_init"), "F32_THIS_IS_A_VERY_LONG_DTYPE_NAME");
  expect_model_fail2(mb, TRM_E_FORMAT, "L_init", NULL);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_unsupported_dtype) {
  mb_model *mb = build_default();
  mb_convert(mb_find(mb, "L_level.layers.0.mlp.down_proj.weight"), "F64");
  expect_model_fail2(mb, TRM_E_UNSUPPORTED, "L_level.layers.0.mlp.down_proj.weight", "F64");
  mb_free(mb);
  /* other safetensors dtypes with the right byte counts */
  const char *names[] = {"I32", "U32", "I16", "U16", "I8", "U8", "BOOL", "I64"};
  const size_t bytes[] = {4, 4, 2, 2, 1, 1, 1, 8};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    mb = build_default();
    mb_retype_raw(mb_find(mb, "q_head.bias"), names[i], bytes[i]);
    expect_model_fail2(mb, TRM_E_UNSUPPORTED, "q_head.bias", names[i]);
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_bad_shape) {
  struct {
    const char *name;
    size_t ndim;
    uint64_t shape[3];
  } cases[] = {
      {"lm_head.weight", 2, {5, 17}},
      {"lm_head.weight", 2, {16, 5}},
      {"lm_head.weight", 1, {80}},
      {"embed_tokens.embedding_weight", 2, {6, 16}},
      {"H_init", 2, {1, 16}},
      {"H_init", 1, {15}},
      {"L_init", 0, {0}},
      {"q_head.bias", 1, {3}},
      {"q_head.weight", 2, {16, 2}},
      {"puzzle_emb.weights", 2, {2, 8}},
      {"L_level.layers.1.self_attn.qkv_proj.weight", 2, {16, 48}},
      {"L_level.layers.0.self_attn.o_proj.weight", 3, {16, 16, 1}},
      {"L_level.layers.1.mlp.down_proj.weight", 2, {256, 16}},
      {"L_level.layers.0.mlp.gate_up_proj.weight", 2, {512, 17}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mb_model *mb = build_default();
    mb_tensor *t = mb_find(mb, cases[i].name);
    ck_assert_ptr_nonnull(t);
    mb_reshape(t, cases[i].ndim, cases[i].shape);
    expect_model_fail(mb, TRM_E_FORMAT, cases[i].name);
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_bad_swiglu_shapes) {
  /* gate_up with an odd row count cannot be split into gate and up halves */
  mb_model *mb = build_default();
  uint64_t odd[2] = {511, 16};
  mb_reshape(mb_find(mb, "L_level.layers.0.mlp.gate_up_proj.weight"), 2, odd);
  expect_model_fail(mb, TRM_E_FORMAT, "L_level.layers.0.mlp.gate_up_proj.weight");
  mb_free(mb);

  /* layers of different widths */
  mb = build_default();
  mb_set_meta(mb, "expansion", NULL);
  uint64_t gu[2] = {1024, 16}, down[2] = {16, 512};
  mb_reshape(mb_find(mb, "L_level.layers.1.mlp.gate_up_proj.weight"), 2, gu);
  mb_reshape(mb_find(mb, "L_level.layers.1.mlp.down_proj.weight"), 2, down);
  expect_model_fail(mb, TRM_E_FORMAT, "L_level.layers.1.mlp.gate_up_proj.weight");
  mb_free(mb);

  /* down_proj disagreeing with gate_up */
  mb = build_default();
  mb_set_meta(mb, "expansion", NULL);
  mb_reshape(mb_find(mb, "L_level.layers.0.mlp.down_proj.weight"), 2, down);
  expect_model_fail(mb, TRM_E_FORMAT, "L_level.layers.0.mlp.down_proj.weight");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_inter_vs_expansion) {
  mb_config c;
  mb_default_config(&c);
  c.inter_override = 512;
  mb_model *mb = mb_build(&c);
  expect_model_fail2(mb, TRM_E_FORMAT, "expansion", "512");
  mb_free(mb);

  /* the expansion in the metadata changed instead of the weights */
  mb = build_default();
  mb_set_meta(mb, "expansion", "30");
  expect_model_fail(mb, TRM_E_FORMAT, "expansion");
  mb_free(mb);

  /* the token MLP's width too */
  mb_default_config(&c);
  c.mlp_t = true;
  c.inter_t_override = 512;
  mb = mb_build(&c);
  expect_model_fail2(mb, TRM_E_FORMAT, "mlp_t", "expansion");
  mb_set_meta(mb, "expansion", NULL); /* without expansion, any width loads */
  trm_model *m = load_built(mb);
  ck_assert_int_eq(info(m, "inter_t_size"), 512);
  trm_model_free(m);
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_missing_tensor) {
  /* every tensor is required: drop each in turn */
  mb_config configs[3];
  for (int k = 0; k < 3; k++) mb_default_config(&configs[k]);
  configs[1].pos_encodings = "learned";
  configs[2].mlp_t = true;
  for (int k = 0; k < 3; k++) {
    mb_model *ref = mb_build(&configs[k]);
    for (size_t i = 0; i < ref->n_tensors; i++) {
      mb_model *mb = mb_build(&configs[k]);
      const char *name = ref->tensors[i].name;
      ck_assert(mb_remove(mb, name));
      expect_model_fail(mb, TRM_E_FORMAT, name);
      mb_free(mb);
    }
    mb_free(ref);
  }
}
END_TEST

START_TEST(test_bad_unknown_tensor) {
  mb_model *mb = build_default();
  uint64_t shape[1] = {2};
  mb_add(mb, "extra.weight", "F32", 1, shape);
  expect_model_fail2(mb, TRM_E_FORMAT, "extra.weight", NULL);
  mb_free(mb);

  /* a learned-position table in a rope model */
  mb = build_default();
  uint64_t pos[2] = {7, 16};
  mb_add(mb, "embed_pos.embedding_weight", "F32", 2, pos);
  expect_model_fail(mb, TRM_E_FORMAT, "embed_pos.embedding_weight");
  mb_free(mb);

  /* a layer beyond L_layers */
  mb = build_default();
  mb_duplicate(mb, "L_level.layers.1.mlp.down_proj.weight", "L_level.layers.2.mlp.down_proj.weight");
  expect_model_fail(mb, TRM_E_FORMAT, "L_level.layers.2.mlp.down_proj.weight");
  mb_free(mb);

  /* a reference prefix left in the name */
  mb = build_default();
  mb_rename(mb, "lm_head.weight", "_orig_mod.model.inner.lm_head.weight");
  expect_model_fail(mb, TRM_E_FORMAT, "lm_head.weight");
  mb_free(mb);

  /* a puzzle table in a model without puzzle embeddings */
  mb_config c;
  mb_default_config(&c);
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 1;
  mb = mb_build(&c);
  uint64_t table[2] = {1, 16};
  mb_add(mb, "puzzle_emb.weights", "F32", 2, table);
  expect_model_fail(mb, TRM_E_FORMAT, "puzzle_emb.weights");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_too_many_tensors) {
  mb_model *mb = build_default();
  uint64_t shape[1] = {0};
  for (int i = 0; i < 4100; i++) {
    char name[32];
    snprintf(name, sizeof name, "empty.%d", i);
    mb_add(mb, name, "F32", 1, shape);
  }
  expect_model_fail(mb, TRM_E_FORMAT, "tensors");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_missing_metadata) {
  const char *keys[] = {"format",   "format_version", "hidden_size",     "num_heads",      "L_layers",
                        "H_cycles", "L_cycles",       "seq_len",         "vocab_size",     "puzzle_emb_ndim",
                        "puzzle_emb_len", "pos_encodings", "mlp_t",      "halt_max_steps"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    mb_model *mb = build_default();
    mb_set_meta(mb, keys[i], NULL);
    expect_model_fail(mb, TRM_E_FORMAT, keys[i]);
    mb_free(mb);
  }
  /* no metadata at all */
  mb_model *mb = build_default();
  while (mb->n_meta) mb_set_meta(mb, mb->meta[0].key, NULL);
  expect_model_fail(mb, TRM_E_FORMAT, "format");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_metadata_integer) {
  const char *keys[] = {"hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "seq_len",
                        "vocab_size", "puzzle_emb_ndim", "puzzle_emb_len", "halt_max_steps",
                        "num_puzzle_identifiers"};
  const char *values[] = {"16.0", "abc", "", " 16", "+16", "0x10", "16 ", "1e1", "sixteen", "16abc", "--16", "\xef\xbc\x91\xef\xbc\x96"};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
      mb_model *mb = build_default();
      mb_set_meta(mb, keys[k], values[v]);
      size_t size;
      unsigned char *buf = mb_serialize(mb, &size);
      expect_bytes_fail(buf, size, TRM_E_FORMAT, keys[k], NULL);
      free(buf);
      mb_free(mb);
    }
  }
}
END_TEST

START_TEST(test_bad_metadata_integer_whitespace) {
  /* FORMAT.md: "Integers are plain decimal." Leading tabs or newlines are not plain decimal
   * (strtoll alone would skip them). */
  const char *values[] = {"\t16", "\n16", "\r16", "\v16", "\f16"};
  for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
    mb_model *mb = build_default();
    mb_set_meta(mb, "hidden_size", values[v]);
    size_t size;
    unsigned char *buf = mb_serialize(mb, &size);
    expect_bytes_fail(buf, size, TRM_E_FORMAT, "hidden_size", NULL);
    free(buf);
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_bad_metadata_range) {
  struct {
    const char *key, *value;
  } cases[] = {
      {"hidden_size", "0"},      {"hidden_size", "-16"},       {"num_heads", "0"},
      {"num_heads", "-2"},       {"L_layers", "0"},            {"H_cycles", "0"},
      {"L_cycles", "0"},         {"seq_len", "0"},             {"vocab_size", "0"},
      {"halt_max_steps", "0"},   {"puzzle_emb_ndim", "-1"},    {"puzzle_emb_len", "-1"},
      {"num_puzzle_identifiers", "0"},
      /* absurd sizes: refused by the limits, before any allocation */
      {"hidden_size", "1000000000000"},
      {"hidden_size", "99999999999999999999999999"},
      {"hidden_size", "-99999999999999999999999999"},
      {"num_heads", "1000000000000"},
      {"L_layers", "1000000000000"},
      {"H_cycles", "1000000000000"},
      {"L_cycles", "1000000000000"},
      {"seq_len", "1000000000000"},
      {"vocab_size", "1000000000000"},
      {"halt_max_steps", "1000000000000"},
      {"puzzle_emb_ndim", "1000000000000"},
      {"puzzle_emb_len", "1000000000000"},
      {"num_puzzle_identifiers", "1000000000000"},
      {"seq_len", "9223372036854775807"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mb_model *mb = build_default();
    mb_set_meta(mb, cases[i].key, cases[i].value);
    size_t size;
    unsigned char *buf = mb_serialize(mb, &size);
    expect_bytes_fail(buf, size, TRM_E_FORMAT, cases[i].key, NULL);
    free(buf);
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_bad_huge_consistent_dims) {
  /* sizes at the ceilings with matching metadata: refused by shapes/limits without allocating
   * anything close to what the metadata implies */
  mb_model *mb = build_default();
  mb_set_meta(mb, "vocab_size", "1048576");
  expect_model_fail(mb, TRM_E_FORMAT, "embed_tokens.embedding_weight");
  mb_set_meta(mb, "vocab_size", "5");
  mb_set_meta(mb, "seq_len", "65536");
  expect_model_fail(mb, TRM_E_FORMAT, "state");
  mb_set_meta(mb, "seq_len", "6");
  mb_set_meta(mb, "L_layers", "256");
  expect_model_fail(mb, TRM_E_FORMAT, "L_level.layers.2.");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_heads) {
  mb_model *mb = build_default();
  mb_set_meta(mb, "num_heads", "3");
  expect_model_fail2(mb, TRM_E_FORMAT, "num_heads", "hidden_size");
  mb_set_meta(mb, "num_heads", "32");
  expect_model_fail(mb, TRM_E_FORMAT, "num_heads");
  mb_free(mb);
  /* rope needs an even head_dim */
  mb_config c;
  mb_default_config(&c);
  c.num_heads = 16;
  mb = mb_build(&c);
  expect_model_fail(mb, TRM_E_FORMAT, "rope");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_format_name) {
  const char *values[] = {"gguf", "LIBTRM", "libtrm ", "", "safetensors"};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    mb_model *mb = build_default();
    mb_set_meta(mb, "format", values[i]);
    expect_model_fail(mb, TRM_E_FORMAT, "format");
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_bad_format_version) {
  mb_model *mb = build_default();
  mb_set_meta(mb, "format_version", "2");
  expect_model_fail(mb, TRM_E_UNSUPPORTED, "format_version");
  mb_set_meta(mb, "format_version", "100");
  expect_model_fail(mb, TRM_E_UNSUPPORTED, "format_version");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_booleans_and_reals) {
  struct {
    const char *key, *value;
  } cases[] = {
      {"mlp_t", "yes"},          {"mlp_t", "TRUE"},           {"mlp_t", ""},
      {"mlp_t", "2"},            {"no_ACT_continue", "no"},   {"no_ACT_continue", "true "},
      {"rms_norm_eps", "0"},     {"rms_norm_eps", "-1e-5"},   {"rms_norm_eps", "abc"},
      {"rms_norm_eps", "nan"},   {"rms_norm_eps", "inf"},     {"rms_norm_eps", ""},
      {"rope_theta", "0"},       {"rope_theta", "1e999"},     {"rope_theta", "10000x"},
      {"expansion", "-2"},       {"expansion", "two"},        {"expansion", "0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mb_model *mb = build_default();
    mb_set_meta(mb, cases[i].key, cases[i].value);
    size_t size;
    unsigned char *buf = mb_serialize(mb, &size);
    expect_bytes_fail(buf, size, TRM_E_FORMAT, cases[i].key, NULL);
    free(buf);
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_bad_pos_encodings) {
  /* FORMAT.md allows rope, learned and none; anything else is refused (the library reports it as
   * an unsupported position encoding) */
  const char *values[] = {"alibi", "Rope", "", "rope "};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    mb_model *mb = build_default();
    mb_set_meta(mb, "pos_encodings", values[i]);
    size_t size;
    unsigned char *buf = mb_serialize(mb, &size);
    trm_model *out = SENTINEL;
    reset_error();
    trm_status st = trm_model_load_memory(buf, size, &out);
    ck_assert_msg(st == TRM_E_FORMAT || st == TRM_E_UNSUPPORTED, "pos_encodings '%s': %s", values[i],
                  trm_status_string(st));
    ck_assert(out == SENTINEL);
    ck_assert_ptr_nonnull(strstr(trm_last_error(), "pos_encodings"));
    free(buf);
    mb_free(mb);
  }
}
END_TEST

START_TEST(test_bad_nonfinite_weight) {
  const char *names[] = {"L_level.layers.1.mlp.down_proj.weight", "H_init", "q_head.bias",
                         "puzzle_emb.weights", "L_level.layers.0.self_attn.qkv_proj.weight"};
  const float values[] = {NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    for (size_t v = 0; v < 3; v++) {
      mb_model *mb = build_default();
      mb_tensor *t = mb_find(mb, names[i]);
      mb_set(t, mb_numel(t) - 1, values[v]);
      expect_model_fail2(mb, TRM_E_FORMAT, names[i], NULL);
      mb_free(mb);
    }
  }
  /* in half-precision storage too */
  const char *dtypes[] = {"BF16", "F16"};
  for (size_t d = 0; d < 2; d++) {
    for (size_t v = 0; v < 3; v++) {
      mb_model *mb = build_default();
      mb_tensor *t = mb_find(mb, "lm_head.weight");
      mb_convert(t, dtypes[d]);
      mb_set(t, 3, values[v]);
      ck_assert(!isfinite(mb_get(t, 3)));
      expect_model_fail2(mb, TRM_E_FORMAT, "lm_head.weight", NULL);
      mb_free(mb);
    }
  }
  /* a value too large for F16 becomes Inf: also refused */
  mb_model *mb = build_default();
  mb_tensor *t = mb_find(mb, "L_init");
  mb_convert(t, "F16");
  mb_set(t, 0, 1e6f);
  expect_model_fail(mb, TRM_E_FORMAT, "L_init");
  mb_free(mb);
}
END_TEST

START_TEST(test_bad_puzzle_config) {
  /* puzzle_emb_len set without a puzzle embedding */
  mb_config c;
  mb_default_config(&c);
  c.puzzle_emb_ndim = 0;
  c.puzzle_emb_len = 2;
  c.num_puzzle_identifiers = 1;
  mb_model *mb = mb_build(&c);
  expect_model_fail(mb, TRM_E_FORMAT, "puzzle_emb_len");
  mb_free(mb);

  /* a prefix too short for the embedding: 1 row of 16 cannot hold 20 values */
  mb_default_config(&c);
  c.puzzle_emb_ndim = 20;
  c.puzzle_emb_len = 1;
  mb = mb_build(&c);
  expect_model_fail(mb, TRM_E_FORMAT, "puzzle_emb");
  mb_free(mb);

  /* num_puzzle_identifiers disagreeing with the table */
  mb = build_default();
  mb_set_meta(mb, "num_puzzle_identifiers", "3");
  expect_model_fail(mb, TRM_E_FORMAT, "num_puzzle_identifiers");
  mb_free(mb);

  /* a table of the wrong width */
  mb = build_default();
  mb_set_meta(mb, "puzzle_emb_ndim", "12");
  expect_model_fail(mb, TRM_E_FORMAT, "puzzle_emb.weights");
  mb_free(mb);
}
END_TEST

/* ---- fuzzing ---- */

static bool is_error_status(trm_status st) {
  return st == TRM_E_FORMAT || st == TRM_E_UNSUPPORTED;
}

START_TEST(test_fuzz) {
  mb_config c;
  mb_default_config(&c);
  c.L_layers = 1;
  c.hidden_size = 8;
  mb_model *mb = mb_build(&c);
  size_t size;
  unsigned char *orig = mb_serialize(mb, &size);
  size_t hl = (size_t)mb_header_len(orig);
  unsigned char *buf = malloc(size);
  ck_assert_ptr_nonnull(buf);
  static const char alphabet[] = "{}[]\",:0123456789 \\u-.eE_FBIa";
  mb_rng r;
  mb_rng_seed(&r, 20251031);
  int ok = 0, failed = 0;
  for (int iter = 0; iter < 4000; iter++) {
    memcpy(buf, orig, size);
    size_t n = size;
    int mode = (int)mb_rng_below(&r, 5);
    int flips = 1 + (int)mb_rng_below(&r, 4);
    for (int k = 0; k < flips; k++) {
      size_t at;
      switch (mode) {
      case 0: /* anywhere */
        at = (size_t)mb_rng_below(&r, size);
        buf[at] ^= (unsigned char)(1u << mb_rng_below(&r, 8));
        break;
      case 1: /* a random byte in the header */
        at = 8 + (size_t)mb_rng_below(&r, hl);
        buf[at] = (unsigned char)mb_rng_below(&r, 256);
        break;
      case 2: /* a JSON-ish character in the header */
        at = 8 + (size_t)mb_rng_below(&r, hl);
        buf[at] = (unsigned char)alphabet[mb_rng_below(&r, sizeof alphabet - 1)];
        break;
      case 3: /* the length field */
        buf[mb_rng_below(&r, 8)] ^= (unsigned char)(1u << mb_rng_below(&r, 8));
        break;
      default: /* a digit in the header changed, then maybe truncated */
        at = 8 + (size_t)mb_rng_below(&r, hl);
        if (buf[at] >= '0' && buf[at] <= '9') buf[at] = (unsigned char)('0' + mb_rng_below(&r, 10));
        if (k == 0 && mb_rng_below(&r, 4) == 0) n = (size_t)mb_rng_below(&r, size);
        break;
      }
    }
    unsigned char *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, n);
    trm_model *out = SENTINEL;
    trm_status st = trm_model_load_memory(copy, n, &out);
    free(copy);
    if (st == TRM_OK) {
      ok++;
      ck_assert(out != SENTINEL && out != NULL);
      int64_t S;
      ck_assert_int_eq(trm_model_info(out, "state_len", &S), TRM_OK);
      if (ok % 50 == 1) { /* now and then, run it */
        trm_session *s = NULL;
        ck_assert_int_eq(trm_session_create(out, 1, &s), TRM_OK);
        trm_session_free(s);
      }
      trm_model_free(out);
    } else {
      failed++;
      ck_assert_msg(is_error_status(st), "iteration %d: status %s", iter, trm_status_string(st));
      ck_assert_msg(out == SENTINEL, "iteration %d: failed load changed *out", iter);
      ck_assert(trm_last_error()[0] != '\0');
    }
  }
  ck_assert_int_gt(ok, 0);
  ck_assert_int_gt(failed, 0);
  free(buf);
  free(orig);
  mb_free(mb);
}
END_TEST

static Suite *loader_suite(void) {
  Suite *s = suite_create("loader");
  TCase *good = tcase_create("good");
  tcase_set_timeout(good, 60);
  tcase_add_test(good, test_builder_widths);
  tcase_add_test(good, test_load_default_rope);
  tcase_add_test(good, test_load_learned);
  tcase_add_test(good, test_load_none);
  tcase_add_test(good, test_load_mlp_t);
  tcase_add_test(good, test_load_no_puzzle_emb);
  tcase_add_test(good, test_load_puzzle_padding);
  tcase_add_test(good, test_load_bf16);
  tcase_add_test(good, test_load_f16);
  tcase_add_test(good, test_load_mixed_dtypes);
  tcase_add_test(good, test_load_tensor_order);
  tcase_add_test(good, test_load_path_equals_memory);
  tcase_add_test(good, test_load_memory_copies);
  tcase_add_test(good, test_info_keys);
  tcase_add_test(good, test_info_pos_and_mlp_t);
  tcase_add_test(good, test_optional_metadata);
  tcase_add_test(good, test_expansion_optional);
  tcase_add_test(good, test_expansion_round_half_even);
  tcase_add_test(good, test_rope_odd_head_dim_ok_without_rope);
  suite_add_tcase(s, good);

  TCase *bad = tcase_create("bad");
  tcase_set_timeout(bad, 60);
  tcase_add_test(bad, test_bad_null_args);
  tcase_add_test(bad, test_bad_missing_file);
  tcase_add_test(bad, test_bad_directory);
  tcase_add_test(bad, test_bad_empty_file);
  tcase_add_test(bad, test_bad_short);
  tcase_add_test(bad, test_bad_header_length);
  tcase_add_test(bad, test_bad_header_over_limit);
  tcase_add_test(bad, test_bad_truncated);
  tcase_add_test(bad, test_bad_json);
  tcase_add_test(bad, test_bad_duplicate_tensor);
  tcase_add_test(bad, test_bad_duplicate_metadata);
  tcase_add_test(bad, test_bad_overlapping_offsets);
  tcase_add_test(bad, test_bad_offsets_out_of_range);
  tcase_add_test(bad, test_bad_offsets_length);
  tcase_add_test(bad, test_bad_offsets_reversed);
  tcase_add_test(bad, test_bad_unknown_dtype);
  tcase_add_test(bad, test_bad_unsupported_dtype);
  tcase_add_test(bad, test_bad_shape);
  tcase_add_test(bad, test_bad_swiglu_shapes);
  tcase_add_test(bad, test_bad_inter_vs_expansion);
  tcase_add_test(bad, test_bad_missing_tensor);
  tcase_add_test(bad, test_bad_unknown_tensor);
  tcase_add_test(bad, test_bad_too_many_tensors);
  tcase_add_test(bad, test_bad_missing_metadata);
  tcase_add_test(bad, test_bad_metadata_integer);
  tcase_add_test(bad, test_bad_metadata_integer_whitespace);
  tcase_add_test(bad, test_bad_metadata_range);
  tcase_add_test(bad, test_bad_huge_consistent_dims);
  tcase_add_test(bad, test_bad_heads);
  tcase_add_test(bad, test_bad_format_name);
  tcase_add_test(bad, test_bad_format_version);
  tcase_add_test(bad, test_bad_booleans_and_reals);
  tcase_add_test(bad, test_bad_pos_encodings);
  tcase_add_test(bad, test_bad_nonfinite_weight);
  tcase_add_test(bad, test_bad_puzzle_config);
  suite_add_tcase(s, bad);

  TCase *fuzz = tcase_create("fuzz");
  tcase_set_timeout(fuzz, 120);
  tcase_add_test(fuzz, test_fuzz);
  suite_add_tcase(s, fuzz);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(loader_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
