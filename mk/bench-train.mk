# Training speed (bench/train.c, bench/train_torch.py, bench/run-train.sh): samples per second of
# the engine's supervision step + optimiser against the same model and step in PyTorch (CPU, best
# thread setting), ratio printed. By hand: `make B=... bench-train` (needs Debian's python3-torch).
#   BENCH_TRAIN_STEPS   timed steps per run (median), default 5
#   BENCH_TRAIN_ROUNDS  interleaved rounds of PyTorch / libtrm 1 thread / libtrm 2 threads, default 3

$(B)/bench/train: bench/train.c $(STATIC) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) $< -o $@ $(STATIC) -lm -pthread

BENCH_TRAIN_STEPS ?= 5
BENCH_TRAIN_ROUNDS ?= 3

.PHONY: bench-train
bench-train: $(B)/bench/train
	bash bench/run-train.sh $(B) $(BENCH_TRAIN_STEPS) $(BENCH_TRAIN_ROUNDS)
