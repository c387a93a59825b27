/* Test helper: builds libtrm model files (safetensors + libtrm metadata, see docs/FORMAT.md) in
 * memory, with deterministic pseudo-random weights.
 *
 * A built model is an editable list of named tensors and metadata entries. Tests change them
 * (drop, rename, reshape, convert the dtype, poison a value, override data_offsets, remove a
 * metadata key) and then serialise the result to the bytes of a model file. */
#ifndef TRM_TEST_MODEL_BUILDER_H
#define TRM_TEST_MODEL_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { MB_MAX_DIMS = 8, MB_NAME_MAX = 160 };

/* The configuration of a generated model (reference names, see TRM-SPEC.md section 1). */
typedef struct mb_config {
  int64_t hidden_size;
  int64_t num_heads;
  int64_t L_layers;
  int64_t H_cycles, L_cycles;
  int64_t seq_len, vocab_size;
  int64_t puzzle_emb_ndim;
  int64_t puzzle_emb_len;         /* as configured: 0 resolves to ceil(ndim / hidden) */
  int64_t num_puzzle_identifiers; /* rows of the puzzle table */
  const char *pos_encodings;      /* "rope", "learned" or "none" */
  bool mlp_t;
  int64_t halt_max_steps;
  double expansion;               /* SwiGLU factor; written to the metadata */
  uint64_t seed;                  /* weight generator seed */
  double weight_scale;            /* weights are uniform in [-0.5, 0.5] * weight_scale / sqrt(fan_in) */
  int64_t inter_override;         /* > 0: channel-MLP width to use instead of the computed one */
  int64_t inter_t_override;       /* > 0: token-MLP width to use instead of the computed one */
} mb_config;

/* One tensor of the file. Data is stored little-endian in the tensor's dtype. */
typedef struct mb_tensor {
  char name[MB_NAME_MAX];
  char dtype[24];
  size_t ndim;
  uint64_t shape[MB_MAX_DIMS];
  unsigned char *data;
  size_t nbytes;
  /* when set, the header carries these data_offsets instead of the real ones */
  bool override_offsets;
  uint64_t begin, end;
} mb_tensor;

typedef struct mb_meta {
  char *key, *value;
} mb_meta;

typedef struct mb_model {
  mb_config cfg;
  int64_t P, S;          /* resolved prefix length and state length */
  int64_t inter, inter_t; /* SwiGLU widths used for the weights (inter_t 0 without mlp_t) */
  mb_tensor *tensors;
  size_t n_tensors, cap_tensors;
  mb_meta *meta;
  size_t n_meta, cap_meta;
} mb_model;

/* Tiny defaults: hidden 16, 2 heads, 2 layers, H 2, L 2, seq_len 6, vocab 5, puzzle_emb_ndim 16,
 * puzzle_emb_len 0 (P = 1), 2 puzzle ids, rope, attention, halt_max_steps 4, expansion 2. */
void mb_default_config(mb_config *c);

/* Python's round() (half to even) of a double, as an integer. */
int64_t mb_round_half_even(double v);
/* The reference SwiGLU width: 256 * ceil(round(expansion * n * 2/3) / 256). */
int64_t mb_swiglu_width(double expansion, int64_t n);

/* Builds every tensor and metadata entry the configuration implies. Aborts on out of memory. */
mb_model *mb_build(const mb_config *c);
void mb_free(mb_model *m);

/* ---- tensors ---- */

mb_tensor *mb_find(mb_model *m, const char *name);
/* Size in bytes of one element of a dtype this builder can encode (F32, F16, BF16, F64); 0 otherwise. */
size_t mb_dtype_size(const char *dtype);
uint64_t mb_numel(const mb_tensor *t);
/* Element i as a float (the tensor's dtype must be F32, F16, BF16 or F64). */
float mb_get(const mb_tensor *t, size_t i);
/* Element i, stored in the tensor's dtype (rounded to nearest even for F16/BF16). */
void mb_set(mb_tensor *t, size_t i, float v);
/* Converts the tensor's data to another encodable dtype, value by value. */
void mb_convert(mb_tensor *t, const char *dtype);
/* Converts every tensor. */
void mb_convert_all(mb_model *m, const char *dtype);
/* Rounds each value to what the dtype can hold, keeping the tensor in F32. */
void mb_round_to(mb_tensor *t, const char *dtype);
/* Sets only the dtype string, keeping the bytes (for unknown dtype names). */
void mb_set_dtype_name(mb_tensor *t, const char *dtype);
/* Sets the dtype string and resizes the data to element-count x elem_size zero bytes (for dtypes
 * the builder cannot encode, such as I32). */
void mb_retype_raw(mb_tensor *t, const char *dtype, size_t elem_size);
/* New shape; the data is resized (zero-filled where it grows) to the shape in the current dtype. */
void mb_reshape(mb_tensor *t, size_t ndim, const uint64_t *shape);
/* Appends a tensor of zeros. */
mb_tensor *mb_add(mb_model *m, const char *name, const char *dtype, size_t ndim, const uint64_t *shape);
/* Appends a copy of the named tensor under new_name (which may equal the old name). */
mb_tensor *mb_duplicate(mb_model *m, const char *name, const char *new_name);
bool mb_remove(mb_model *m, const char *name);
bool mb_rename(mb_model *m, const char *name, const char *new_name);

/* ---- metadata ---- */

/* Sets (or with value NULL removes) a metadata entry. */
void mb_set_meta(mb_model *m, const char *key, const char *value);
void mb_set_meta_int(mb_model *m, const char *key, int64_t value);
const char *mb_get_meta(const mb_model *m, const char *key);

/* ---- files ---- */

/* The file's bytes (malloc'd; caller frees). The header is padded with spaces to a multiple of 8. */
unsigned char *mb_serialize(const mb_model *m, size_t *size);
/* A file from an arbitrary header text and data area (malloc'd). */
unsigned char *mb_file_from_parts(const char *header, size_t header_len, const void *data, size_t data_len,
                                  size_t *size);
/* The header length field of a file (its first 8 bytes, little-endian). */
uint64_t mb_header_len(const unsigned char *file);
void mb_put_le64(unsigned char *p, uint64_t v);
/* Replaces the first occurrence of `from` inside the JSON header of *file with `to`, fixing the
 * header length (the data area moves with it). *file is reallocated. Returns false if absent. */
bool mb_replace_in_header(unsigned char **file, size_t *size, const char *from, const char *to);

/* Writes bytes to a new temporary file; returns its path (malloc'd) or NULL. */
char *mb_write_temp(const void *data, size_t size);

/* ---- deterministic randomness for tests ---- */

typedef struct mb_rng {
  uint64_t state;
} mb_rng;

void mb_rng_seed(mb_rng *r, uint64_t seed);
uint64_t mb_rng_next(mb_rng *r);
/* Uniform in [0, 1). */
double mb_rng_uniform(mb_rng *r);
/* Uniform integer in [0, n). */
uint64_t mb_rng_below(mb_rng *r, uint64_t n);

#endif
