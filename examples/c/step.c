/* Step through a Tiny Recursive Model and print the answer after every supervision step.
 *
 *   step MODEL.safetensors [TOKEN ...]
 *
 * Without tokens it makes up a puzzle (token i = 1 + i mod (vocab-1)). For each step it prints
 * the decoded answer, marking with '*' the positions that changed since the step before, the
 * mean confidence, and q_halt (the model's own estimate that its answer is right). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trm.h"

static int fail(const char *what, trm_status st) {
  fprintf(stderr, "step: %s: %s\n  %s\n", what, trm_status_string(st), trm_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.safetensors [TOKEN ...]\n", argv[0]);
    return 2;
  }
  trm_model *model;
  trm_status st = trm_model_load(argv[1], &model);
  if (st != TRM_OK) return fail("loading the model", st);

  int64_t seq_len, vocab, max_steps;
  trm_model_info(model, "seq_len", &seq_len);
  trm_model_info(model, "vocab_size", &vocab);
  trm_model_info(model, "halt_max_steps", &max_steps);

  int32_t *puzzle = calloc((size_t)seq_len, sizeof *puzzle);
  int32_t *answer = calloc((size_t)seq_len, sizeof *answer);
  int32_t *previous = calloc((size_t)seq_len, sizeof *previous);
  float *confidence = calloc((size_t)seq_len, sizeof *confidence);
  if (!puzzle || !answer || !previous || !confidence) return fail("allocating", TRM_E_NOMEM);
  if (argc > 2 && argc - 2 != seq_len) {
    fprintf(stderr, "step: the model takes %lld tokens, %d given\n", (long long)seq_len, argc - 2);
    return 2;
  }
  for (int64_t i = 0; i < seq_len; i++)
    puzzle[i] = argc > 2 ? (int32_t)atoi(argv[2 + i]) : (int32_t)(1 + i % (vocab > 1 ? vocab - 1 : 1));

  trm_session *session;
  st = trm_session_create(model, 1, &session);
  if (st != TRM_OK) return fail("creating a session", st);
  st = trm_session_set_input(session, 0, puzzle, (size_t)seq_len, 0);
  if (st != TRM_OK) return fail("setting the input", st);

  printf("model %s: seq_len %lld, vocab %lld, up to %lld steps\ninput ", argv[1], (long long)seq_len,
         (long long)vocab, (long long)max_steps);
  for (int64_t i = 0; i < seq_len; i++) printf(" %2d", puzzle[i]);
  printf("\n");

  trm_event ev = TRM_EVENT_INIT; /* one supervision step per trm_refine(), the default unit */
  while ((st = trm_refine(session, &ev)) == TRM_OK) {
    float q_halt;
    trm_session_answer(session, 0, answer, confidence, (size_t)seq_len);
    trm_session_q(session, 0, &q_halt, NULL);
    double mean = 0;
    printf("step %lld", (long long)ev.step);
    for (int64_t i = 0; i < seq_len; i++) {
      int changed = ev.step > 1 && answer[i] != previous[i];
      printf(" %2d%c", answer[i], changed ? '*' : ' ');
      mean += confidence[i];
    }
    printf("  confidence %.3f  q_halt %+.3f\n", mean / (double)seq_len, q_halt);
    memcpy(previous, answer, (size_t)seq_len * sizeof *answer);
  }
  if (st != TRM_HALTED) return fail("refining", st);

  trm_session_free(session);
  trm_model_free(model);
  free(puzzle);
  free(answer);
  free(previous);
  free(confidence);
  return 0;
}
