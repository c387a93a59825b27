/* Runs two deep-supervision steps of the training engine on a libtrm model file and writes the
 * second step's loss, logits, q and every gradient as JSON, for tools/grad_torch.py to compare
 * with PyTorch autograd. The batch is deterministic and written out too:
 *
 *   test_grad_dump MODEL.safetensors OUT.json [BATCH]
 *
 * Puzzle b has tokens (7 i + 3 b + 1) mod vocab, labels (5 i + b + 2) mod vocab with every
 * fifth label ignored (-100), puzzle id b mod num_puzzle_identifiers; the loss scale is 1/B. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

static void write_floats(FILE *f, const char *name, const float *v, size_t n, bool comma) {
  fprintf(f, "  \"%s\": [", name);
  for (size_t i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? "," : "", (double)v[i]);
  fprintf(f, "]%s\n", comma ? "," : "");
}

static void write_ints(FILE *f, const char *name, const int32_t *v, size_t n) {
  fprintf(f, "  \"%s\": [", name);
  for (size_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", (int)v[i]);
  fprintf(f, "],\n");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.safetensors OUT.json [BATCH]\n", argv[0]);
    return 2;
  }
  size_t B = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 4;
  if (B < 1 || B > 4096) {
    fprintf(stderr, "batch must be 1..4096\n");
    return 2;
  }
  trm_tr_params p;
  if (trm_tr_params_load(argv[1], &p) != TRM_OK) {
    fprintf(stderr, "%s\n", trm_last_error());
    return 1;
  }
  const trm_config *c = &p.cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, seq = (size_t)c->seq_len, V = (size_t)c->vocab_size;
  size_t n = B * S * D, ndim = (size_t)c->puzzle_emb_ndim;
  trm_tr_ctx ctx;
  trm_tr_work w;
  if (trm_tr_ctx_init(&ctx, 1) != TRM_OK || trm_tr_work_init(&ctx, &p, B, &w) != TRM_OK) {
    fprintf(stderr, "%s\n", trm_last_error());
    return 1;
  }
  int32_t *tokens = calloc(B * seq, sizeof *tokens), *labels = calloc(B * seq, sizeof *labels);
  int32_t *ids = calloc(B, sizeof *ids);
  float *y = calloc(n, sizeof *y), *z = calloc(n, sizeof *z), *gdata = calloc(p.floats, sizeof *gdata);
  if (!tokens || !labels || !ids || !y || !z || !gdata) return 1;
  for (size_t b = 0; b < B; b++) {
    ids[b] = (int32_t)(b % (size_t)c->num_puzzle_identifiers);
    for (size_t i = 0; i < seq; i++) {
      tokens[b * seq + i] = (int32_t)((7 * i + 3 * b + 1) % V);
      labels[b * seq + i] = i % 5 == 4 ? -100 : (int32_t)((5 * i + b + 2) % V);
    }
    trm_tr_carry_reset(&p, y, z, b);
  }
  trm_tr_dense g;
  trm_tr_dense_view(&p, gdata, &g);
  trm_tr_batch batch = {.B = B, .tokens = tokens, .labels = labels, .puzzle_ids = ids, .ignore_label = -100,
                        .loss_scale = 1.0 / (double)B};
  trm_tr_loss L;
  uint8_t *exact = calloc(B, 1);
  if (!exact) return 1;
  for (int step = 0; step < 2; step++) {
    memset(gdata, 0, p.floats * sizeof *gdata);
    if (trm_tr_step(&ctx, &p, &w, &batch, y, z, &g, exact, &L) != TRM_OK) {
      fprintf(stderr, "%s\n", trm_last_error());
      return 1;
    }
  }
  FILE *f = fopen(argv[2], "w");
  if (!f) {
    perror(argv[2]);
    return 1;
  }
  fprintf(f, "{\n  \"batch\": %zu,\n  \"loss_scale\": %.17g,\n", B, 1.0 / (double)B);
  fprintf(f, "  \"lm_loss\": %.17g,\n  \"q_halt_loss\": %.17g,\n  \"total\": %.17g,\n", L.lm_loss, L.q_halt_loss,
          L.total);
  write_ints(f, "tokens", tokens, B * seq);
  write_ints(f, "labels", labels, B * seq);
  write_ints(f, "puzzle_ids", ids, B);
  write_floats(f, "logits", w.logits, B * seq * V, true);
  write_floats(f, "q", w.q, 2 * B, true);
  write_floats(f, "y", y, n, true);
  if (ndim > 0) write_floats(f, "grad:puzzle_emb.local_weights", w.dpuzzle, B * ndim, true);
  for (size_t t = 0; t < p.n_tensors; t++) {
    char name[120];
    snprintf(name, sizeof name, "grad:%s", p.tensors[t].name);
    size_t cnt = p.tensors[t].rows * (p.tensors[t].cols ? p.tensors[t].cols : 1);
    write_floats(f, name, gdata + p.tensors[t].offset, cnt, t + 1 < p.n_tensors);
  }
  fprintf(f, "}\n");
  fclose(f);
  trm_tr_dense_view_free(&g);
  trm_tr_work_free(&w);
  trm_tr_ctx_free(&ctx);
  trm_tr_params_free(&p);
  free(tokens);
  free(labels);
  free(ids);
  free(y);
  free(z);
  free(gdata);
  free(exact);
  return 0;
}
