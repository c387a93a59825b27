# The Doxygen pages as a test: `make check` fails on any Doxygen warning (an undocumented
# declaration or parameter, a broken reference). Skipped, saying so, without doxygen.
CHECK_EXTRA += check-docs

.PHONY: check-docs
check-docs:
	@if command -v doxygen >/dev/null; then $(MAKE) --no-print-directory docs; \
	else echo "check-docs: SKIPPED: needs doxygen (Debian: doxygen)"; fi
