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
  const uint8_t *data;      /* into the caller's buffer when it holds the whole file, else NULL */
  uint64_t begin, end;      /* byte range within the data area */
  size_t elem_size;         /* bytes per element */
  bool used;                /* set by the model loader to find unknown tensors */
} st_tensor;

typedef struct st_meta {
  char *key, *value;
} st_meta;

typedef struct st_file {
  uint64_t data_start;      /* file offset of the data area: 8 + header length */
  st_tensor *tensors;
  size_t n_tensors;
  st_meta *meta;
  size_t n_meta;
} st_file;

enum { ST_MAX_HEADER = 64 << 20 };

/* The header length a file's first 8 bytes give, checked against the file's size and the limit.
 * The caller then needs 8 + that many bytes of the file for st_parse. */
TRM_HIDDEN trm_status st_header_length(const uint8_t first8[8], uint64_t file_size, uint64_t *header_len);

/* Parses and validates the container. head holds the file's first head_len bytes: at least the
 * 8-byte length and the header, or the whole file (then each tensor's data pointer is set and
 * must outlive the st_file's use). On failure returns TRM_E_FORMAT / TRM_E_UNSUPPORTED /
 * TRM_E_NOMEM with trm_last_error set, and *out is left empty. */
TRM_HIDDEN trm_status st_parse(const uint8_t *head, size_t head_len, uint64_t file_size, st_file *out);
TRM_HIDDEN void st_free(st_file *f);
TRM_HIDDEN st_tensor *st_find(const st_file *f, const char *name);
TRM_HIDDEN const char *st_meta_get(const st_file *f, const char *key);

/* Converts count little-endian elements of a dtype (F32, F16, BF16) to float32. src may be the
 * upper end of out itself (in-place widening): each element is read before out overwrites it. */
TRM_HIDDEN void st_convert(st_dtype dtype, const uint8_t *src, size_t count, float *out);

#endif
