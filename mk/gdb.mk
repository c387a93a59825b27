# gdb: pretty-printers for trm_session / trm_model (tools/gdb/libtrm.py), their auto-load script,
# and their test.
#
#   make                 also writes $(B)/libtrm.so.VERSION-gdb.py next to the library, so gdb
#                        auto-loads the printers for programs of the build tree (where the
#                        auto-load safe-path allows it; see docs/DEBUGGING.md)
#   make check-gdb       runs examples/gdb/step.gdb on the C example and checks what gdb prints
#                        (skipped, saying so, without gdb)
#   make install         libtrm.py into GDB_PYDIR, the auto-load script into GDB_AUTOLOAD_DIR
#
# GDB_AUTOLOAD_DIR defaults to the library's own directory (gdb then needs
# `add-auto-load-safe-path $(LIBDIR)`); packagers set it to /usr/share/gdb/auto-load$(LIBDIR),
# which gdb trusts and searches by default.

GDB ?= gdb
GDB_PYDIR ?= $(PREFIX)/share/libtrm/gdb
GDB_AUTOLOAD_DIR ?= $(LIBDIR)
GDB_AUTOLOAD := libtrm.so.$(VERSION)-gdb.py

ALL_EXTRA += $(B)/$(GDB_AUTOLOAD)
CHECK_EXTRA += check-gdb
INSTALL_EXTRA += install-gdb
UNINSTALL_EXTRA += uninstall-gdb

.PHONY: check-gdb install-gdb uninstall-gdb

# in the build tree it imports tools/gdb/libtrm.py where it is
$(B)/$(GDB_AUTOLOAD): tools/gdb/libtrm.so-gdb.py.in
	@mkdir -p $(B)
	sed -e 's|@GDB_PYDIR@|$(abspath tools/gdb)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

check-gdb: $(B)/examples/step $(CPP_EXAMPLE) $(B)/$(GDB_AUTOLOAD)
	@if ! command -v $(GDB) >/dev/null; then \
	  echo "check-gdb: SKIPPED: needs $(GDB) (Debian: gdb)"; \
	else \
	  GDB=$(GDB) $(PYTHON) tests/gdb/check_gdb.py $(B) models/demo.safetensors; \
	fi

install-gdb:
	install -d $(DESTDIR)$(GDB_PYDIR) $(DESTDIR)$(GDB_AUTOLOAD_DIR)
	install -m 644 tools/gdb/libtrm.py $(DESTDIR)$(GDB_PYDIR)/
	sed -e 's|@GDB_PYDIR@|$(GDB_PYDIR)|g' -e 's|@VERSION@|$(VERSION)|g' tools/gdb/libtrm.so-gdb.py.in \
	  > $(DESTDIR)$(GDB_AUTOLOAD_DIR)/$(GDB_AUTOLOAD)
	chmod 644 $(DESTDIR)$(GDB_AUTOLOAD_DIR)/$(GDB_AUTOLOAD)

uninstall-gdb:
	rm -f $(DESTDIR)$(GDB_PYDIR)/libtrm.py $(DESTDIR)$(GDB_AUTOLOAD_DIR)/$(GDB_AUTOLOAD)
	@rmdir $(DESTDIR)$(GDB_PYDIR) 2>/dev/null || true # only if empty
