# libtrm: GNU Makefile. meson.build builds the same sources and installs the same files.
#
#   make                     the libraries (build/make/libtrm.so*, build/make/libtrm.a), libtrm.pc, examples
#   make check               every test: unit tests (Check), conformance against the reference
#   make demo                solve a Sudoku with the shipped model, showing the answer after every step
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make docs                Doxygen HTML in build/docs (fails on any warning)

VERSION     := 0.1.0
SOVERSION   := 0
PREFIX      ?= /usr/local
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
BINDIR      ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC          ?= cc
CFLAGS      ?= -O2 -g
WARNINGS    := -std=c11 -Wall -Wextra -Wpedantic -Werror
LIB_CFLAGS  := $(WARNINGS) -Iinclude -fvisibility=hidden -pthread $(CFLAGS)
PYTHON      ?= python3
B           := build/make

LIB_SRCS := lib/error.c lib/model.c lib/session.c lib/net.c lib/pool.c \
            lib/format/json.c lib/format/safetensors.c lib/kernels/gemm.c lib/kernels/cpu.c \
            lib/kernels/micro_scalar.c lib/kernels/micro_avx2.c lib/kernels/micro_avx512.c lib/kernels/micro_neon.c \
            lib/train/params.c lib/train/ops.c lib/train/net.c lib/train/loss.c lib/train/step.c lib/train/optim.c \
            lib/train/loop.c lib/train/api.c lib/train/ckpt.c
LIB_HDRS := include/trm.h lib/common.h lib/internal.h lib/format/json.h lib/format/safetensors.h lib/kernels/kernels.h \
            lib/train/train.h
PIC_OBJS := $(LIB_SRCS:%.c=$(B)/pic/%.o)
STATIC_OBJS := $(LIB_SRCS:%.c=$(B)/static/%.o)

SONAME   := libtrm.so.$(SOVERSION)
SHARED   := $(B)/libtrm.so.$(VERSION)
STATIC   := $(B)/libtrm.a
PCFILE   := $(B)/libtrm.pc

CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -pthread)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)

.PHONY: FORCE all bench check check-neon deps run-checks demo demo-c install uninstall docs clean

# Each part beyond the core library (bindings, command line, fuzzing, ...) keeps its rules in a
# fragment mk/NAME.mk, which may append to:
#   ALL_EXTRA        files `make` builds
#   CHECK_EXTRA      phony targets `make check` runs after the core tests
#   INSTALL_EXTRA    phony targets `make install` runs (they honour PREFIX, BINDIR, DESTDIR, ...)
#   UNINSTALL_EXTRA  phony targets `make uninstall` runs
ALL_EXTRA :=
CHECK_EXTRA :=
INSTALL_EXTRA :=
UNINSTALL_EXTRA :=
include $(sort $(wildcard mk/*.mk))

all: $(SHARED) $(B)/libtrm.so $(STATIC) $(PCFILE) $(B)/examples/step $(ALL_EXTRA)

$(B)/pic/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -fPIC -c $< -o $@

$(B)/static/%.o: %.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(SHARED): $(PIC_OBJS) lib/libtrm.map
	$(CC) -shared -pthread -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libtrm.map -Wl,--no-undefined \
	  $(LDFLAGS) -o $@ $(PIC_OBJS) -lm

$(B)/libtrm.so: $(SHARED)
	ln -sf libtrm.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $@

$(STATIC): $(STATIC_OBJS)
	rm -f $@
	ar rcs $@ $(STATIC_OBJS)

# regenerated whenever PREFIX & co. change, so `make install PREFIX=...` never ships a stale one
$(PCFILE): libtrm.pc.in Makefile FORCE
	@mkdir -p $(B)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

FORCE:

# ---- examples: linked against the shared library of the build tree ----

EXAMPLE_LDFLAGS := -L$(B) -Wl,-rpath,'$$ORIGIN/..' -ltrm

$(B)/examples/step: examples/c/step.c include/trm.h $(B)/libtrm.so
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude $(CFLAGS) $< -o $@ $(EXAMPLE_LDFLAGS)

# the main command: the shipped Sudoku model solving a held-out puzzle, one supervision step at a
# time, until its halting head says the answer is right
demo: all
	$(B)/trm solve models/sudoku.safetensors models/sudoku-puzzle.txt --halt q

# the C example on the random-weight conformance model
demo-c: all
	$(B)/examples/step models/demo.safetensors

# ---- tests ----

TEST_CFLAGS := $(WARNINGS) -Iinclude -Ilib $(CFLAGS) $(CHECK_CFLAGS)
CONF_CASES  := conf_att_rope conf_mlpt conf_att_learned_pad conf_att_rope_bf16

$(B)/tests/test_api: tests/test_api.c tests/model_builder.c tests/model_builder.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) tests/test_api.c tests/model_builder.c -o $@ $(STATIC) $(CHECK_LIBS) -lm -pthread

$(B)/tests/test_loader: tests/test_loader.c tests/model_builder.c tests/model_builder.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) tests/test_loader.c tests/model_builder.c -o $@ $(STATIC) $(CHECK_LIBS) -lm -pthread

$(B)/tests/test_alloc: tests/test_alloc.c tests/model_builder.c tests/model_builder.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) tests/test_alloc.c tests/model_builder.c -o $@ $(STATIC) $(CHECK_LIBS) -lm -pthread

$(B)/tests/conformance: tests/conformance.c tests/npy.c tests/npy.h $(B)/libtrm.so
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude $(CFLAGS) tests/conformance.c tests/npy.c -o $@ -L$(B) -Wl,-rpath,'$$ORIGIN/..' -ltrm -lm

# each case: the reference checkpoint converted by trm-convert, its outputs unpacked to .npy
$(B)/conformance/%/model.safetensors: tests/conformance/%.pt tests/conformance/%.yaml tools/trm-convert
	@mkdir -p $(dir $@)
	$(PYTHON) tools/trm-convert $< --config tests/conformance/$*.yaml -o $@

$(B)/conformance/%/ref.stamp: tests/conformance/%.npz tests/conformance/unpack_npz.py
	@mkdir -p $(dir $@)
	$(PYTHON) tests/conformance/unpack_npz.py $< $(dir $@)
	touch $@

$(B)/tests/test_kernels: tests/test_kernels.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) $< -o $@ $(STATIC) -lm -pthread

CONF_DEPS := $(foreach c,$(CONF_CASES),$(B)/conformance/$(c)/model.safetensors $(B)/conformance/$(c)/ref.stamp)
TESTS := $(B)/tests/test_api $(B)/tests/test_loader $(B)/tests/test_alloc $(B)/tests/test_kernels $(B)/tests/conformance
# every kernel this CPU has; TRM_ISA falls back to the best one for those it lacks, and the
# conformance test prints which kernel ran
ISAS := scalar avx2 avx512 neon

# The NEON kernel, cross-compiled with Debian's aarch64 toolchain and run under qemu-user.
CROSS_CC ?= aarch64-linux-gnu-gcc
QEMU     ?= qemu-aarch64
ARM64    := $(B)/arm64
$(ARM64)/test_kernels: tests/test_kernels.c $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CROSS_CC) $(WARNINGS) -O2 -static -Iinclude -Ilib $(LIB_SRCS) $< -o $@ -lm -pthread

$(ARM64)/conformance: tests/conformance.c tests/npy.c $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CROSS_CC) $(WARNINGS) -O2 -static -Iinclude -Ilib $(LIB_SRCS) tests/conformance.c tests/npy.c -o $@ -lm -pthread

check-neon: $(CONF_DEPS)
	@if ! command -v $(CROSS_CC) >/dev/null || ! command -v $(QEMU) >/dev/null; then \
	  echo "check-neon: SKIPPED: needs $(CROSS_CC) and $(QEMU) (Debian: gcc-aarch64-linux-gnu qemu-user)"; \
	else \
	  $(MAKE) --no-print-directory $(ARM64)/test_kernels $(ARM64)/conformance && \
	  $(QEMU) $(ARM64)/test_kernels && \
	  for c in $(CONF_CASES); do $(QEMU) $(ARM64)/conformance $(B)/conformance/$$c/model.safetensors $(B)/conformance/$$c || exit 1; done; \
	fi

check: deps
	$(MAKE) run-checks

deps:
	@sh tests/ensure-deps.sh

run-checks: all $(TESTS) $(CONF_DEPS)
	bash tests/check-symbols.sh $(SHARED)
	bash tests/check-abi.sh $(SHARED)
	$(B)/tests/test_loader
	$(B)/tests/test_alloc
	$(B)/tests/test_kernels
	@for isa in $(ISAS); do \
	  echo "TRM_ISA=$$isa: unit tests and conformance"; \
	  TRM_ISA=$$isa $(B)/tests/test_api | tail -1 || exit 1; \
	  for c in $(CONF_CASES); do \
	    TRM_ISA=$$isa $(B)/tests/conformance $(B)/conformance/$$c/model.safetensors $(B)/conformance/$$c || exit 1; \
	  done; \
	done
	$(MAKE) --no-print-directory check-neon
	$(B)/examples/step models/demo.safetensors > $(B)/demo.out
	@grep -q "^step 1" $(B)/demo.out && echo "example: ok"
	@for t in $(CHECK_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

# ---- benchmarks (bench/): figures and ratios against peers measured in the same run ----

$(B)/bench/trm: bench/trm.c $(B)/libtrm.so
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude $(CFLAGS) $< -o $@ -L$(B) -Wl,-rpath,'$$ORIGIN/..' -ltrm

# OpenBLAS is the peer: linked into this benchmark only, never into the library
$(B)/bench/gemm: bench/gemm.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) $< -o $@ $(STATIC) -lopenblas -lm -pthread

bench: $(B)/bench/trm $(B)/bench/gemm
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(B)/bench/gemm --threads 1
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(B)/bench/gemm --threads 2
	bash bench/run-trm.sh $(B)

# ---- install ----

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libtrm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtrm.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 644 include/trm.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(PCFILE) $(DESTDIR)$(PKGCONFIGDIR)/
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 tools/trm-convert $(DESTDIR)$(BINDIR)/
	@for t in $(INSTALL_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libtrm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libtrm.so \
	      $(DESTDIR)$(LIBDIR)/libtrm.a $(DESTDIR)$(INCLUDEDIR)/trm.h $(DESTDIR)$(PKGCONFIGDIR)/libtrm.pc \
	      $(DESTDIR)$(BINDIR)/trm-convert
	@for t in $(UNINSTALL_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

# ---- docs ----

docs:
	@mkdir -p build/docs
	doxygen docs/Doxyfile 2> build/docs/warnings.log
	@if [ -s build/docs/warnings.log ]; then cat build/docs/warnings.log; echo "doxygen warnings: failing"; exit 1; fi
	@echo "docs: build/docs/html/index.html"

clean:
	rm -rf $(B) build/docs
