/* One deep-supervision step (TRM-SPEC.md sections 5 and 7; the reference's
 * TinyRecursiveReasoningModel_ACTV1_Inner.forward and ACTLossHead): H_cycles - 1 cycles without
 * gradient, the last cycle with it, the heads on y, the loss, and the backward pass into every
 * weight and into the batch's puzzle-embedding rows. The carry y, z leaves detached. */
#include "train.h"

#include <string.h>

void trm_tr_carry_reset(const trm_tr_params *p, float *y, float *z, size_t b) {
  size_t S = (size_t)p->cfg.state_len, D = (size_t)p->cfg.hidden_size;
  for (size_t s = 0; s < S; s++) {
    memcpy(y + (b * S + s) * D, p->H_init, D * sizeof *y);
    memcpy(z + (b * S + s) * D, p->L_init, D * sizeof *z);
  }
}

static trm_status check_batch(const trm_tr_params *p, const trm_tr_work *w, const trm_tr_batch *batch) {
  const trm_config *c = &p->cfg;
  if (!batch->tokens || !batch->labels || (c->puzzle_emb_ndim > 0 && !batch->puzzle_ids))
    return trm_fail(TRM_E_INVALID, "training batch: tokens, labels or puzzle ids missing");
  if (batch->B < 1 || batch->B > w->batch)
    return trm_fail(TRM_E_INVALID, "training batch of %zu puzzles; the work memory holds 1 to %zu", batch->B,
                    w->batch);
  size_t seq = (size_t)c->seq_len;
  for (size_t i = 0; i < batch->B * seq; i++)
    if (batch->tokens[i] < 0 || batch->tokens[i] >= c->vocab_size)
      return trm_fail(TRM_E_INVALID, "token %d at %zu is outside [0, %lld)", (int)batch->tokens[i], i,
                      (long long)c->vocab_size);
  if (c->puzzle_emb_ndim > 0)
    for (size_t b = 0; b < batch->B; b++)
      if (batch->puzzle_ids[b] < 0 || batch->puzzle_ids[b] >= c->num_puzzle_identifiers)
        return trm_fail(TRM_E_INVALID, "puzzle id %d of puzzle %zu is outside [0, %lld)", (int)batch->puzzle_ids[b],
                        b, (long long)c->num_puzzle_identifiers);
  return TRM_OK;
}

trm_status trm_tr_step(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_work *w, const trm_tr_batch *batch,
                       float *y, float *z, trm_tr_dense *g, uint8_t *exact, trm_tr_loss *loss) {
  trm_status st = check_batch(p, w, batch);
  if (st != TRM_OK) return st;
  const trm_config *c = &p->cfg;
  size_t B = batch->B, S = (size_t)c->state_len, D = (size_t)c->hidden_size, n = B * S * D;
  size_t Lc = (size_t)c->L_cycles;
  trm_tr_embed(p, B, batch->tokens, batch->puzzle_ids, w->x);

  /* H_cycles - 1 cycles without gradient: the first tape serves as scratch */
  for (int64_t h = 0; h + 1 < c->H_cycles; h++) {
    for (size_t l = 0; l < Lc; l++) trm_tr_f_forward(ctx, p, w, B, z, y, w->x, &w->tapes[0], z);
    trm_tr_f_forward(ctx, p, w, B, y, z, NULL, &w->tapes[0], y);
  }
  /* the last cycle, recorded */
  for (size_t l = 0; l < Lc; l++) trm_tr_f_forward(ctx, p, w, B, z, y, w->x, &w->tapes[l], z);
  trm_tr_f_forward(ctx, p, w, B, y, z, NULL, &w->tapes[Lc], y);

  trm_tr_heads(ctx, p, B, y, w->logits, w->q);
  st = trm_tr_loss_eval(w->logits, w->q, batch->labels, B, (size_t)c->seq_len, (size_t)c->vocab_size,
                        batch->ignore_label, batch->q_continue_target, batch->loss_scale, w->dlogits, w->dq, exact,
                        loss);
  if (st != TRM_OK) return st;

  /* backward: heads, then y = f(y, z_L): the incoming y is detached, so only z_L receives the
   * gradient of y + z_L; then each z_i = f(z_{i-1}, y + x), whose injection passes its gradient
   * to x (y is detached) and whose z_{i-1} receives it too (z_0 is the detached carry). */
  trm_tr_heads_backward(ctx, p, w, B, y, w->dlogits, w->dq, g, w->dy);
  trm_tr_f_backward(ctx, p, w, B, &w->tapes[Lc], g, w->dy);
  memset(w->dx, 0, n * sizeof *w->dx);
  for (size_t l = Lc; l-- > 0;) {
    trm_tr_f_backward(ctx, p, w, B, &w->tapes[l], g, w->dy);
    for (size_t i = 0; i < n; i++) w->dx[i] += w->dy[i];
  }
  trm_tr_embed_backward(p, B, batch->tokens, w->dx, g, w->dpuzzle);
  return TRM_OK;
}
