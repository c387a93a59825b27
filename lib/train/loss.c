/* The reference's loss head (models/losses.py, ACTLossHead with stablemax_cross_entropy), in
 * double precision as the reference computes log_stablemax in float64. */
#include "train.h"

#include <math.h>

/* s(x) and s'(x) of stablemax, with the reference's epsilon of 1e-30 below zero. */
static double stablemax_s(double x) { return x < 0 ? 1.0 / (1.0 - x + 1e-30) : x + 1.0; }
static double stablemax_ds(double x) {
  if (x >= 0) return 1.0;
  double r = 1.0 / (1.0 - x + 1e-30);
  return r * r;
}

/* -log(s(x_c) / sum s): its gradient is s'(x_j) / sum s, minus s'(x_c) / s(x_c) at j = c. */
double trm_tr_stablemax_xent(const float *x, size_t n, int32_t label, double *grad) {
  double total = 0.0;
  for (size_t j = 0; j < n; j++) total += stablemax_s((double)x[j]);
  double s_label = stablemax_s((double)x[label]);
  if (grad) {
    for (size_t j = 0; j < n; j++) grad[j] = stablemax_ds((double)x[j]) / total;
    grad[label] -= stablemax_ds((double)x[label]) / s_label;
  }
  return -log(s_label / total);
}

/* PyTorch's binary_cross_entropy_with_logits: max(x, 0) - x t + log(1 + e^-|x|). */
double trm_tr_bce_logits(double x, double target, double *grad) {
  if (grad) *grad = 1.0 / (1.0 + exp(-x)) - target;
  return (x > 0 ? x : 0.0) - x * target + log1p(exp(-fabs(x)));
}

trm_status trm_tr_loss_eval(const float *logits, const float *q, const int32_t *labels, size_t B, size_t seq,
                            size_t V, int32_t ignore_label, const float *q_continue_target, double scale,
                            float *dlogits, float *dq, uint8_t *exact, trm_tr_loss *out) {
  for (size_t i = 0; i < B * seq; i++)
    if (labels[i] != ignore_label && (labels[i] < 0 || (size_t)labels[i] >= V))
      return trm_fail(TRM_E_INVALID, "label %d at position %zu is outside [0, %zu) and is not the ignore label %d",
                      (int)labels[i], i, V, (int)ignore_label);
  trm_tr_loss L = {0};
  enum { STACK_V = 64 };
  double grad_stack[STACK_V], *grad = grad_stack;
  double *grad_heap = NULL;
  if (V > STACK_V) {
    grad_heap = trm_alloc_zero(V, sizeof(double));
    if (!grad_heap) return trm_fail(TRM_E_NOMEM, "out of memory for the loss");
    grad = grad_heap;
  }
  for (size_t b = 0; b < B; b++) {
    size_t count = 0, correct = 0;
    for (size_t t = 0; t < seq; t++) count += labels[b * seq + t] != ignore_label;
    double divisor = count > 0 ? (double)count : 1.0;
    double lm = 0.0;
    for (size_t t = 0; t < seq; t++) {
      const float *x = logits + (b * seq + t) * V;
      float *dx = dlogits + (b * seq + t) * V;
      int32_t label = labels[b * seq + t];
      if (label == ignore_label) {
        for (size_t v = 0; v < V; v++) dx[v] = 0.0f;
        continue;
      }
      size_t best = 0; /* argmax, the first of equal maxima */
      for (size_t v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
      correct += best == (size_t)label;
      lm += trm_tr_stablemax_xent(x, V, label, grad) / divisor;
      for (size_t v = 0; v < V; v++) dx[v] = (float)(scale * grad[v] / divisor);
    }
    bool is_exact = correct == count;
    if (exact) exact[b] = is_exact;
    double g_halt, g_cont = 0.0;
    L.lm_loss += lm;
    L.q_halt_loss += trm_tr_bce_logits((double)q[2 * b], is_exact ? 1.0 : 0.0, &g_halt);
    if (q_continue_target) L.q_continue_loss += trm_tr_bce_logits((double)q[2 * b + 1], q_continue_target[b], &g_cont);
    dq[2 * b] = (float)(scale * 0.5 * g_halt);
    dq[2 * b + 1] = (float)(scale * 0.5 * g_cont);
    L.valid_tokens += count;
    L.correct_tokens += correct;
    L.exact += is_exact;
  }
  L.total = L.lm_loss + 0.5 * (L.q_halt_loss + L.q_continue_loss);
  trm_release(grad_heap);
  if (out) *out = L;
  return TRM_OK;
}
