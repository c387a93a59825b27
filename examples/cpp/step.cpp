// Step through a Tiny Recursive Model and print the answer after every supervision step: the
// C++ version of examples/c/step.c, with the same arguments and the same output.
//
//   step-cpp MODEL.safetensors [TOKEN ...]
//
// Without tokens it makes up a puzzle (token i = 1 + i mod (vocab-1)). For each step it prints
// the decoded answer, marking with '*' the positions that changed since the step before, the
// mean confidence, and q_halt (the model's own estimate that its answer is right).
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "trm.hpp"

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors [TOKEN ...]\n", argv[0]);
    return 2;
  }
  try {
    trm::Model model(argv[1]);
    const trm::Config config = model.config();
    const std::size_t seq_len = static_cast<std::size_t>(config.seq_len);
    const int64_t vocab = config.vocab_size;

    if (argc > 2 && static_cast<std::size_t>(argc - 2) != seq_len) {
      std::fprintf(stderr, "step: the model takes %lld tokens, %d given\n", static_cast<long long>(seq_len), argc - 2);
      return 2;
    }
    std::vector<int32_t> puzzle(seq_len);
    for (std::size_t i = 0; i < seq_len; i++)
      puzzle[i] = argc > 2 ? static_cast<int32_t>(std::atoi(argv[2 + i]))
                           : static_cast<int32_t>(1 + static_cast<int64_t>(i) % (vocab > 1 ? vocab - 1 : 1));

    trm::Session session = model.session(1);
    session.set_input(0, puzzle);

    std::printf("model %s: seq_len %lld, vocab %lld, up to %lld steps\ninput ", argv[1],
                static_cast<long long>(seq_len), static_cast<long long>(vocab),
                static_cast<long long>(config.halt_max_steps));
    for (int32_t token : puzzle) std::printf(" %2d", token);
    std::printf("\n");

    std::vector<int32_t> previous(seq_len);
    for (const trm::Event &ev : session.refine(TRM_YIELD_STEP)) { // one supervision step per event
      const trm::Answer answer = session.answer(0);
      double mean = 0;
      std::printf("step %lld", static_cast<long long>(ev.step));
      for (std::size_t i = 0; i < seq_len; i++) {
        const bool changed = ev.step > 1 && answer.tokens[i] != previous[i];
        std::printf(" %2d%c", answer.tokens[i], changed ? '*' : ' ');
        mean += static_cast<double>(answer.confidence[i]);
      }
      std::printf("  confidence %.3f  q_halt %+.3f\n", mean / static_cast<double>(seq_len),
                  static_cast<double>(session.q(0).q_halt));
      previous = answer.tokens;
    }
  } catch (const trm::Error &e) {
    std::fprintf(stderr, "step: %s\n", e.what());
    return 1;
  }
  return 0;
}
