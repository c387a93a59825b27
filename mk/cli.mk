# The trm command line (tools/trm, man page docs/trm.1) and its tests (tests/cli).
#
#   make B=... $(B)/trm       the program, linked statically against libtrm.a (no rpath needed)
#   make B=... check-cli      its tests: tests/cli/test_cli.py (needs python3 with numpy)

MANDIR ?= $(PREFIX)/share/man

CLI_SRCS := tools/trm/main.c tools/trm/cli.c tools/trm/info.c tools/trm/solve.c tools/trm/eval.c \
            $(wildcard tools/trm/data*.c) $(wildcard tools/common/*.c)
CLI_HDRS := tools/trm/cli.h tools/trm/commands.h $(wildcard tools/trm/data*.h) $(wildcard tools/common/*.h)

# -Ilib: `trm info` reads the model's safetensors header with the library's own (internal) parser
$(B)/trm: $(CLI_SRCS) $(CLI_HDRS) $(LIB_HDRS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) $(CLI_SRCS) -o $@ $(STATIC) -lm -pthread

ALL_EXTRA += $(B)/trm
CHECK_EXTRA += check-cli
INSTALL_EXTRA += install-cli
UNINSTALL_EXTRA += uninstall-cli

.PHONY: check-cli install-cli uninstall-cli

# the conformance models (CONF_DEPS, defined after this fragment) are expanded at recipe time
check-cli: $(B)/trm $(B)/examples/step
	@$(MAKE) --no-print-directory $(CONF_DEPS)
	$(PYTHON) tests/cli/test_cli.py --build $(B)

install-cli: $(B)/trm
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(B)/trm $(DESTDIR)$(BINDIR)/trm
	install -m 644 docs/trm.1 $(DESTDIR)$(MANDIR)/man1/trm.1

uninstall-cli:
	rm -f $(DESTDIR)$(BINDIR)/trm $(DESTDIR)$(MANDIR)/man1/trm.1

# `make demo`'s command: the shipped Sudoku model solves its puzzle (a valid solution that keeps
# the givens, which trm solve checks and says)
CHECK_EXTRA += check-demo
.PHONY: check-demo
check-demo: $(B)/trm
	$(B)/trm solve models/sudoku.safetensors models/sudoku-puzzle.txt --halt q > $(B)/demo-sudoku.out
	@grep -q "answer is a valid solution keeping the givens" $(B)/demo-sudoku.out && \
	  echo "check-demo: the shipped model solves models/sudoku-puzzle.txt: ok"
