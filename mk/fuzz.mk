# Fuzzing (tests/fuzz/, docs/RELIABILITY.md).
#
#   make check-fuzz-corpus      every file of tests/fuzz/corpus/<target>/ through its target once, built with
#                               $(CC) and a plain driver (tests/fuzz/replay.c): no clang needed; and
#                               tests/fuzz/regressions.c, the fixed outcome of each bug fuzzing found. Part of `make check`.
#   make fuzz [FUZZ_SECONDS=60] each target under libFuzzer (clang, with ASan and UBSan) for FUZZ_SECONDS;
#                               new inputs go to $(B)/fuzz/corpus/<target>, crashes to $(B)/fuzz/artifacts/<target>
#   make fuzz-ci                each target for 30 s
#   make fuzz-corpus            regenerates the seeds (tests/fuzz/make_corpus.c, make_npy_corpus.py)
#
# A crash found by fuzzing is fixed, and its input is added to tests/fuzz/corpus/<target>/ as a regression.
# fuzz_npy needs tools/common/npy.c and is skipped while that file is missing.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := $(WARNINGS) -Iinclude -Ilib -pthread -O2 -g -fno-omit-frame-pointer $(FUZZ_SANITIZE)
# libFuzzer's options for every run: no input above 64 KiB, 20 s per input, 2 GiB of memory
FUZZ_RUN_FLAGS ?= -max_len=65536 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1

FUZZ_ALL     := load session safetensors_header npy
FUZZ_TARGETS := load session safetensors_header $(if $(wildcard tools/common/npy.c),npy)
# sources a target needs beyond the library
fuzz_srcs_load :=
fuzz_srcs_session := tests/model_builder.c
fuzz_srcs_safetensors_header :=
fuzz_srcs_npy := tools/common/npy.c
fuzz_hdrs_session := tests/model_builder.h
fuzz_hdrs_npy := tools/common/npy.h tools/common/whole_file.h

FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(B)/fuzz/obj/%.o)

# the library and helpers, instrumented for coverage and the sanitizers
$(B)/fuzz/obj/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -fvisibility=hidden -c $< -o $@

# fuzz_T under libFuzzer, and fuzz_T with the replay driver and the ordinary compiler
define FUZZ_TARGET_RULES
$(B)/fuzz/fuzz_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/fuzz.h $(fuzz_hdrs_$(1)) $(fuzz_srcs_$(1):%.c=$(B)/fuzz/obj/%.o) $(FUZZ_LIB_OBJS)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer $$< $(fuzz_srcs_$(1):%.c=$(B)/fuzz/obj/%.o) $(FUZZ_LIB_OBJS) -o $$@ -lm

$(B)/fuzz-replay/fuzz_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/replay.c tests/fuzz/fuzz.h $(fuzz_hdrs_$(1)) $(fuzz_srcs_$(1)) $(STATIC)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(WARNINGS) -Iinclude -Ilib $$(CFLAGS) $$< tests/fuzz/replay.c $(fuzz_srcs_$(1)) -o $$@ $(STATIC) -lm -pthread
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call FUZZ_TARGET_RULES,$(t))))

.PHONY: check-fuzz-corpus fuzz fuzz-ci fuzz-check-cc fuzz-corpus

# Rewrites the generated seeds in tests/fuzz/corpus (deterministic: the same files each time); not part of any check.
fuzz-corpus:
	@mkdir -p $(B)/fuzz-replay
	$(CC) $(WARNINGS) $(CFLAGS) tests/fuzz/make_corpus.c tests/model_builder.c -o $(B)/fuzz-replay/make_corpus -lm
	$(B)/fuzz-replay/make_corpus tests/fuzz/corpus
	$(PYTHON) tests/fuzz/make_npy_corpus.py tests/fuzz/corpus/npy

# the fixed outcome of each bug fuzzing found, on its input in the corpus
$(B)/fuzz-replay/regressions: tests/fuzz/regressions.c include/trm.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude $(CFLAGS) $< -o $@ $(STATIC) -lm -pthread

check-fuzz-corpus: $(FUZZ_TARGETS:%=$(B)/fuzz-replay/fuzz_%) $(B)/fuzz-replay/regressions
	@for t in $(FUZZ_TARGETS); do $(TEST_RUNNER) $(B)/fuzz-replay/fuzz_$$t tests/fuzz/corpus/$$t || exit 1; done
	@$(TEST_RUNNER) $(B)/fuzz-replay/regressions tests/fuzz/corpus
	@$(if $(wildcard tools/common/npy.c),:,echo "check-fuzz-corpus: fuzz_npy SKIPPED: tools/common/npy.c is missing")

fuzz-check-cc:
	@echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' > $(B)/fuzz-cc-test.c 2>/dev/null || \
	  { mkdir -p $(B) && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' > $(B)/fuzz-cc-test.c; }
	@$(FUZZ_CC) -fsanitize=fuzzer $(B)/fuzz-cc-test.c -o $(B)/fuzz-cc-test 2>/dev/null || \
	  { echo "fuzz: $(FUZZ_CC) cannot build libFuzzer targets (Debian: apt-get install clang)" >&2; exit 1; }

# Runs one target after another; the tree's corpus is read, new inputs are written under $(B)/fuzz/corpus only.
fuzz: fuzz-check-cc $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(B)/fuzz/corpus/$$t $(B)/fuzz/artifacts/$$t; \
	  case $$t in load|safetensors_header) dict=-dict=tests/fuzz/safetensors.dict;; npy) dict=-dict=tests/fuzz/npy.dict;; *) dict=;; esac; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s (log: $(B)/fuzz/fuzz_$$t.log)"; \
	  if ! $(B)/fuzz/fuzz_$$t $(FUZZ_RUN_FLAGS) -max_total_time=$(FUZZ_SECONDS) $$dict \
	       -artifact_prefix=$(B)/fuzz/artifacts/$$t/ $(B)/fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	       > $(B)/fuzz/fuzz_$$t.log 2>&1; then \
	    tail -n 60 $(B)/fuzz/fuzz_$$t.log; echo "fuzz_$$t: FAILED; input in $(B)/fuzz/artifacts/$$t/"; exit 1; \
	  fi; \
	  grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' $(B)/fuzz/fuzz_$$t.log | tr '\n' ' '; echo; \
	done
	@$(if $(wildcard tools/common/npy.c),:,echo "fuzz: fuzz_npy SKIPPED: tools/common/npy.c is missing")

fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30

CHECK_EXTRA += check-fuzz-corpus
SANITIZE_EXTRA += check-fuzz-corpus
VALGRIND_EXTRA += check-fuzz-corpus
