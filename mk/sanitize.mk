# Sanitizers, valgrind and the concurrency test (docs/RELIABILITY.md).
#
#   make check-threads    tests/test_threads.c: 8 threads share a model, results bit-identical to single-threaded
#                         runs, trm_last_error per thread. Part of `make check`.
#   make check-sanitize   the `make check` list (core tests for every ISA, the example, and the SANITIZE_EXTRA
#                         targets) built with ASan + UBSan (-fno-sanitize-recover=all) in $(SAN_B), leaks detected.
#                         `make CC=clang check-sanitize` for clang's sanitizers.
#   make check-valgrind   the core tests (test_kernels only with VALGRIND_KERNELS=yes), the example and the
#                         VALGRIND_EXTRA targets (normal build in $(B)) under valgrind memcheck: any error or leak fails.
#   make check-tsan       test_threads and test_api built with ThreadSanitizer in $(TSAN_B).
#
# Other fragments may append to SANITIZE_EXTRA targets of CHECK_EXTRA that also work in the sanitized tree (they
# are run there instead of CHECK_EXTRA), and to VALGRIND_EXTRA targets that start their test programs through
# $(TEST_RUNNER) (empty normally; the valgrind command line under check-valgrind).

SAN_B   ?= $(B)-san
TSAN_B  ?= $(B)-tsan
VALGRIND ?= valgrind
TEST_RUNNER ?=

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
# clang links no sanitizer runtime into a shared library; with -shared-libasan the library and every program
# use the runtime's shared build, which the rpath finds. The Makefile links programs with CFLAGS and the library
# with LDFLAGS, so both carry these (link-only options, hence the -Wno-unused-command-line-argument).
san_clang = $(shell $(CC) --version 2>/dev/null | grep -q clang && echo yes)
san_asan_dir = $(dir $(shell $(CC) -print-file-name=libclang_rt.asan-$(shell uname -m).so))
san_clang_flags = -shared-libasan -Wl,-rpath,$(san_asan_dir) -Wno-unused-command-line-argument
SAN_CFLAGS = $(SAN_FLAGS) $(if $(san_clang),$(san_clang_flags))
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CK_FORK=no
TSAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 CK_FORK=no
VALGRIND_CMD := $(VALGRIND) -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
                --show-leak-kinds=definite,indirect,possible
VALGRIND_CONF_CASES ?= conf_att_rope conf_mlpt conf_att_learned_pad conf_att_rope_bf16
# test_kernels (every microkernel on thousands of shapes, pools of 1-4 workers) takes over 7 minutes under
# valgrind; it runs under ASan and UBSan in check-sanitize
VALGRIND_KERNELS ?= no

SANITIZE_EXTRA += check-threads
VALGRIND_EXTRA += check-threads

.PHONY: check-threads check-sanitize check-valgrind check-tsan

$(B)/tests/test_threads: tests/test_threads.c tests/model_builder.c tests/model_builder.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude $(CFLAGS) tests/test_threads.c tests/model_builder.c -o $@ $(STATIC) -lm -pthread

check-threads: $(B)/tests/test_threads
	$(TEST_RUNNER) $(B)/tests/test_threads

# The whole run-checks recipe in another build tree: the NEON cross-check (not instrumented) is skipped by naming
# no cross compiler; ALL_EXTRA and CHECK_EXTRA are replaced by what is known to work sanitized.
check-sanitize:
	@start=$$(date +%s); \
	$(SAN_ENV) $(MAKE) --no-print-directory B=$(SAN_B) CFLAGS="$(SAN_CFLAGS)" LDFLAGS="$(SAN_CFLAGS)" \
	  CROSS_CC=no-cross-compiler-under-sanitizers ALL_EXTRA= CHECK_EXTRA="$(strip $(SANITIZE_EXTRA))" run-checks && \
	echo "check-sanitize ($(CC), ASan+UBSan, leaks): ok in $$(( $$(date +%s) - start )) s"

check-valgrind:
	@command -v $(VALGRIND) >/dev/null || { echo "check-valgrind: needs valgrind (Debian: apt-get install valgrind)" >&2; exit 1; }
	@$(MAKE) --no-print-directory all $(TESTS) $(CONF_DEPS)
	@start=$$(date +%s); set -e; \
	echo "valgrind: test_loader"; CK_FORK=no $(VALGRIND_CMD) $(B)/tests/test_loader; \
	echo "valgrind: test_api"; CK_FORK=no $(VALGRIND_CMD) $(B)/tests/test_api; \
	if [ "$(VALGRIND_KERNELS)" = yes ]; then echo "valgrind: test_kernels"; $(VALGRIND_CMD) $(B)/tests/test_kernels; \
	else echo "valgrind: test_kernels skipped (over 7 minutes under valgrind; VALGRIND_KERNELS=yes runs it)"; fi; \
	for c in $(VALGRIND_CONF_CASES); do \
	  echo "valgrind: conformance $$c"; \
	  $(VALGRIND_CMD) $(B)/tests/conformance $(B)/conformance/$$c/model.safetensors $(B)/conformance/$$c; \
	done; \
	echo "valgrind: example"; $(VALGRIND_CMD) $(B)/examples/step models/demo.safetensors > $(B)/demo-valgrind.out; \
	grep -q "^step 1" $(B)/demo-valgrind.out; \
	for t in $(VALGRIND_EXTRA); do \
	  echo "valgrind: $$t"; $(MAKE) --no-print-directory TEST_RUNNER="$(VALGRIND_CMD)" $$t; \
	done; \
	echo "check-valgrind: no errors, no leaks, in $$(( $$(date +%s) - start )) s"

check-tsan:
	@start=$$(date +%s); set -e; \
	$(MAKE) --no-print-directory B=$(TSAN_B) CFLAGS="$(TSAN_FLAGS)" LDFLAGS="$(TSAN_FLAGS)" \
	  $(TSAN_B)/tests/test_threads $(TSAN_B)/tests/test_api; \
	$(TSAN_ENV) $(TSAN_B)/tests/test_threads; \
	$(TSAN_ENV) $(TSAN_B)/tests/test_api | tail -1; \
	echo "check-tsan ($(CC)): no data races reported, in $$(( $$(date +%s) - start )) s"

CHECK_EXTRA += check-threads
