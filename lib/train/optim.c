/* The reference trainer's optimisers (pretrain.py): AdamATan2 for the dense weights, signSGD for
 * the puzzle embeddings, the warm-up + cosine learning rate, and the EMA of weights. The update
 * arithmetic is float32 as the reference's kernels do it for float32 parameters; the scalar
 * factors are formed in double first, as there. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double trm_tr_lr(int64_t step, double base_lr, int64_t warmup, int64_t total, double min_ratio) {
  if (step < warmup) return base_lr * (double)step / (double)(warmup > 1 ? warmup : 1);
  double span = (double)(total - warmup > 1 ? total - warmup : 1);
  double progress = (double)(step - warmup) / span;
  const double pi = 3.14159265358979323846;
  double cosine = (1.0 - min_ratio) * 0.5 * (1.0 + cos(pi * 0.5 * 2.0 * progress));
  return base_lr * (min_ratio + (cosine > 0 ? cosine : 0.0));
}

/* PyTorch's lerp for weights below 0.5: v0 + t (v1 - v0) as two fused multiply-adds. */
static float lerp(float v0, float v1, float t) { return fmaf(t, v1, fmaf(-t, v0, v0)); }

void trm_tr_adam_atan2(float *p, const float *g, float *m, float *v, size_t n, int64_t step, double lr,
                       double beta1, double beta2, double weight_decay) {
  float step_size = (float)lr, decay = (float)(1.0 - lr * weight_decay);
  float bc1_reciprocal = (float)(1.0 / (1.0 - pow(beta1, (double)step)));
  float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)step));
  float one_minus_b1 = (float)(1.0 - beta1), one_minus_b2 = (float)(1.0 - beta2);
  for (size_t i = 0; i < n; i++) {
    float param = p[i] * decay;
    m[i] = lerp(m[i], g[i], one_minus_b1);
    v[i] = lerp(v[i], g[i] * g[i], one_minus_b2);
    float denom = sqrtf(v[i]) / bc2_sqrt;
    p[i] = param - step_size * atan2f(bc1_reciprocal * m[i], denom);
  }
}

void trm_tr_adamw(float *p, const float *g, float *m, float *v, size_t n, int64_t step, double lr, double beta1,
                  double beta2, double weight_decay, double eps) {
  float decay = (float)(1.0 - lr * weight_decay);
  float step_size = (float)(lr / (1.0 - pow(beta1, (double)step)));
  float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)step));
  float one_minus_b1 = (float)(1.0 - beta1), b2 = (float)beta2, one_minus_b2 = (float)(1.0 - beta2);
  for (size_t i = 0; i < n; i++) {
    float param = p[i] * decay;
    m[i] = lerp(m[i], g[i], one_minus_b1);
    v[i] = v[i] * b2 + one_minus_b2 * g[i] * g[i];
    float denom = sqrtf(v[i]) / bc2_sqrt + (float)eps;
    p[i] = param - step_size * (m[i] / denom);
  }
}

void trm_tr_ema(float *shadow, const float *p, size_t n, double mu) {
  float a = (float)(1.0 - mu), b = (float)mu;
  for (size_t i = 0; i < n; i++) shadow[i] = a * p[i] + b * shadow[i];
}

typedef struct id_index {
  int32_t id;
  size_t index;
} id_index;

static int by_id_then_index(const void *x, const void *y) {
  const id_index *a = x, *b = y;
  if (a->id != b->id) return a->id < b->id ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

trm_status trm_tr_signsgd_rows(float *table, size_t n_rows, size_t ndim, const int32_t *ids, const float *dpuzzle,
                               size_t B, double lr, double weight_decay) {
  for (size_t b = 0; b < B; b++)
    if (ids[b] < 0 || (size_t)ids[b] >= n_rows)
      return trm_fail(TRM_E_INVALID, "puzzle id %d of batch row %zu is outside [0, %zu)", (int)ids[b], b, n_rows);
  id_index *order = trm_alloc_zero(B, sizeof *order);
  float *sum = trm_alloc_zero(ndim ? ndim : 1, sizeof *sum);
  if (!order || !sum) {
    trm_release(order);
    trm_release(sum);
    return trm_fail(TRM_E_NOMEM, "out of memory for the puzzle-embedding update");
  }
  for (size_t b = 0; b < B; b++) order[b] = (id_index){ids[b], b};
  qsort(order, B, sizeof *order, by_id_then_index); /* rows of one id are summed in batch order */
  float decay = (float)(1.0 - lr * weight_decay), step = (float)lr;
  for (size_t i = 0; i < B;) {
    int32_t id = order[i].id;
    memset(sum, 0, ndim * sizeof *sum);
    for (; i < B && order[i].id == id; i++)
      for (size_t j = 0; j < ndim; j++) sum[j] += dpuzzle[order[i].index * ndim + j];
    float *row = table + (size_t)id * ndim;
    for (size_t j = 0; j < ndim; j++) {
      float sign = (float)((sum[j] > 0) - (sum[j] < 0));
      row[j] = row[j] * decay - step * sign;
    }
  }
  trm_release(order);
  trm_release(sum);
  return TRM_OK;
}
