/* Writes the seed corpora of the fuzz targets that take model files or call sequences
 * (tests/fuzz/corpus/{load,safetensors_header,session}/), from tests/model_builder.c: small valid
 * models of every kind the loader takes, and near-valid ones that each break one rule.
 *   make fuzz-corpus   (rebuilds this program and rewrites those files)
 * The .npy seeds come from make_npy_corpus.py. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model_builder.h"

static const char *out_dir = "tests/fuzz/corpus";

static void write_file(const char *target, const char *name, const void *data, size_t size) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
  FILE *fp = fopen(path, "wb");
  if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
    fprintf(stderr, "make_corpus: cannot write %s\n", path);
    exit(1);
  }
}

/* A model file for both the loader and the container targets. */
static void write_model(const char *name, unsigned char *file, size_t size) {
  write_file("load", name, file, size);
  write_file("safetensors_header", name, file, size);
  free(file);
}

/* The tiny configuration the seeds start from: a few KB per file. */
static void tiny(mb_config *c) {
  mb_default_config(c);
  c->hidden_size = 8;
  c->num_heads = 2;
  c->L_layers = 1;
  c->seq_len = 4;
  c->vocab_size = 5;
  c->puzzle_emb_ndim = 8;
  c->num_puzzle_identifiers = 2;
  c->inter_override = 8;
  c->inter_t_override = 8;
}

static mb_model *build(const mb_config *c) {
  mb_model *m = mb_build(c);
  if (c->inter_override > 0) mb_set_meta(m, "expansion", NULL);
  return m;
}

static void emit(const char *name, mb_model *m) {
  size_t size;
  unsigned char *file = mb_serialize(m, &size);
  write_model(name, file, size);
  mb_free(m);
}

static void valid_models(void) {
  mb_config c;
  tiny(&c);
  emit("rope_f32.safetensors", build(&c));

  mb_model *m = build(&c);
  mb_convert_all(m, "BF16");
  emit("rope_bf16.safetensors", m);

  m = build(&c);
  mb_convert_all(m, "F16");
  emit("rope_f16.safetensors", m);

  m = build(&c); /* every dtype at once */
  mb_convert(mb_find(m, "embed_tokens.embedding_weight"), "BF16");
  mb_convert(mb_find(m, "lm_head.weight"), "F16");
  emit("mixed_dtypes.safetensors", m);

  tiny(&c);
  c.mlp_t = true;
  c.pos_encodings = "learned";
  c.puzzle_emb_ndim = 12; /* two prefix rows, the second half padding */
  c.L_layers = 2;
  c.num_heads = 1;
  m = build(&c);
  mb_set_meta(m, "no_ACT_continue", "false");
  emit("mlpt_learned_padded.safetensors", m);

  tiny(&c);
  c.pos_encodings = "none";
  c.puzzle_emb_ndim = 0;
  c.num_puzzle_identifiers = 1;
  c.H_cycles = 1;
  c.L_cycles = 1;
  m = build(&c);
  mb_set_meta(m, "rms_norm_eps", "1e-6");
  mb_set_meta(m, "rope_theta", "500.5");
  emit("none_no_puzzle.safetensors", m);

  tiny(&c); /* the reference's own width from the expansion factor (256), in F16 to stay small */
  c.inter_override = 0;
  c.hidden_size = 4;
  c.num_heads = 1;
  c.puzzle_emb_ndim = 4;
  m = build(&c);
  mb_convert_all(m, "F16");
  emit("expansion_f16.safetensors", m);
}

/* Near-valid: one rule broken in a valid tiny model. */
static void broken_models(void) {
  mb_config c;
  tiny(&c);
  size_t size;
  unsigned char *file;

  mb_model *m = build(&c);
  file = mb_serialize(m, &size);
  write_model("truncated_data.safetensors", file, size); /* written whole, then cut below */
  file = mb_serialize(m, &size);
  write_file("load", "truncated_data.safetensors", file, size - 40);
  write_file("safetensors_header", "truncated_data.safetensors", file, size - 40);
  free(file);

  file = mb_serialize(m, &size);
  mb_put_le64(file, mb_header_len(file) + 1000000); /* header length past the end */
  write_model("bad_header_length.safetensors", file, size);

  file = mb_serialize(m, &size);
  mb_replace_in_header(&file, &size, "\"format_version\":\"1\"", "\"format_version\":\"2\"");
  write_model("format_version_2.safetensors", file, size);

  file = mb_serialize(m, &size);
  mb_replace_in_header(&file, &size, "\"hidden_size\":\"8\"", "\"hidden_size\":8");
  write_model("metadata_not_string.safetensors", file, size);

  file = mb_serialize(m, &size);
  mb_replace_in_header(&file, &size, "\"__metadata__\":{", "\"__metadata__\":{\"k\\u00e9\\ud83d\\ude00\":\"\\n\\t\\\"\",");
  write_model("metadata_escapes.safetensors", file, size);
  mb_free(m);

  m = build(&c);
  mb_remove(m, "q_head.bias");
  emit("missing_tensor.safetensors", m);

  m = build(&c);
  mb_duplicate(m, "H_init", "extra.weight");
  emit("unknown_tensor.safetensors", m);

  m = build(&c);
  mb_set(mb_find(m, "lm_head.weight"), 3, 0.0f / 0.0f);
  emit("nan_weight.safetensors", m);

  m = build(&c);
  mb_retype_raw(mb_find(m, "H_init"), "I32", 4);
  emit("int_dtype.safetensors", m);

  m = build(&c);
  mb_tensor *t = mb_find(m, "L_init");
  t->override_offsets = true;
  t->begin = 0;
  t->end = t->nbytes;
  emit("overlapping_offsets.safetensors", m);

  m = build(&c);
  mb_set_meta(m, "expansion", "1e300");
  emit("huge_expansion.safetensors", m);

  m = build(&c);
  mb_set_meta(m, "seq_len", "65536");
  emit("long_seq.safetensors", m);

  /* bare containers for the header parser */
  static const char *const headers[] = {
      "{}",
      "{\"__metadata__\":{}}",
      "{\"a\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}",
      "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,0,3],\"data_offsets\":[0,0]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}",
      "{\"__metadata__\":{\"x\":\"[[[[[[[[\"},\"t\":{\"data_offsets\":[0,8],\"shape\":[2],\"dtype\":\"F32\"}} ",
      "{\"\\ud800\":1}",
      "[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615,2],\"data_offsets\":[0,8]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5e3],\"data_offsets\":[0,8]}}",
  };
  static const unsigned char data[16] = {0, 0, 128, 63, 0, 124, 0, 252, 1, 2, 3, 4, 0, 0, 192, 127};
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "header_%02zu.safetensors", i);
    file = mb_file_from_parts(headers[i], strlen(headers[i]), data, sizeof data, &size);
    write_file("safetensors_header", name, file, size);
    free(file);
  }
}

/* Call sequences for fuzz_session: world, batch, then (opcode, arguments...)*. Opcodes are
 * fuzz_session.c's: 0 option, 1 input, 3 refine, 5 latent, 6 set_latent, 7 outputs, 8 new
 * session, 9 NULLs and info. */
static void session_seeds(void) {
  static const unsigned char steps[] = {0, 1, 1, 0, 0, 1, 2, 3, 4, 0, 3, 4, 7, 0, 0, 3, 4, 3, 4, 3, 4, 7, 0, 0};
  static const unsigned char calls[] = {1, 2, 0, 1, 0, 1, 1, 2, 3, 0, 1, 1, 3, 2, 1, 0, 0, 0, 0, 1, 3, 4, 3, 4,
                                        3, 4, 6, 1, 0, 3, 5, 40, 200, 3, 4, 7, 1, 0, 1, 1, 1, 2, 3, 0};
  static const unsigned char latents[] = {2, 3, 1, 0, 0, 0, 0, 0, 6, 0, 0, 2, 1, 16, 2, 200, 6, 0, 1, 0, 225,
                                          6, 0, 4, 0, 0, 5, 0, 0, 5, 9, 16, 5, 0, 3, 3, 4, 7, 0, 0, 5, 0, 1};
  static const unsigned char misuse[] = {0, 3, 3, 4, 5, 0, 0, 7, 2, 0, 1, 210, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0,
                                         0, 0, 0, 1, 0, 0, 245, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 250, 3, 2, 3, 3,
                                         0, 4, 0, 0, 4, 5, 9, 5, 's', 'e', 'q', '_', 'l', 8, 2, 8, 7, 3, 4};
  static const unsigned char refill[] = {1, 3, 0, 1, 0, 0, 3, 1, 1, 2, 3, 0, 1, 1, 0, 1, 2, 3, 1, 1, 1, 0, 0, 0,
                                         0, 0, 1, 0, 1, 3, 2, 2, 2, 3, 0, 4, 3, 4, 0, 2, 3, 0, 3, 1, 1, 3, 4, 3,
                                         3, 3, 4, 0, 2, 1, 3, 4, 3, 4, 3, 4, 3, 4, 7, 2, 255};
  write_file("session", "steps", steps, sizeof steps);
  write_file("session", "calls_and_threads", calls, sizeof calls);
  write_file("session", "latents", latents, sizeof latents);
  write_file("session", "misuse", misuse, sizeof misuse);
  write_file("session", "refill_q_halt", refill, sizeof refill);
}

int main(int argc, char **argv) {
  if (argc > 1) out_dir = argv[1];
  valid_models();
  broken_models();
  session_seeds();
  return 0;
}
