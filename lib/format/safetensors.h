/* The safetensors container: an 8-byte header length, a JSON header, raw tensor data.
 * This reader trusts nothing: every length, offset and dimension is checked before use. */
#ifndef TRM_SAFETENSORS_H
#define TRM_SAFETENSORS_H

#include "../internal.h"

enum { ST_MAX_DIMS = 8 };

typedef enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_UNSUPPORTED } st_dtype;

typedef struct st_tensor {
  char *name;
  st_dtype dtype;
  char dtype_name[16];      /* as written in the file, for messages */
  size_t ndim;
  uint64_t shape[ST_MAX_DIMS];
  uint64_t numel;
  const uint8_t *data;      /* points into the caller's buffer */
  uint64_t begin, end;      /* byte range within the data area */
  bool used;                /* set by the model loader to find unknown tensors */
} st_tensor;

typedef struct st_meta {
  char *key, *value;
} st_meta;

typedef struct st_file {
  st_tensor *tensors;
  size_t n_tensors;
  st_meta *meta;
  size_t n_meta;
} st_file;

/* Parses and validates the container in buf (which must outlive the st_file's use).
 * On failure returns TRM_E_FORMAT / TRM_E_UNSUPPORTED / TRM_E_NOMEM with trm_last_error set,
 * and *out is left empty. */
TRM_HIDDEN trm_status st_parse(const uint8_t *buf, size_t size, st_file *out);
TRM_HIDDEN void st_free(st_file *f);
TRM_HIDDEN st_tensor *st_find(const st_file *f, const char *name);
TRM_HIDDEN const char *st_meta_get(const st_file *f, const char *key);

/* Converts a tensor's elements to float32 (F32, F16 and BF16). */
TRM_HIDDEN void st_to_f32(const st_tensor *t, float *out);

#endif
