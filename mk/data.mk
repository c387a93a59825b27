# `trm data` (tools/trm/data*.c) and the tools' .npy reader/writer (tools/common/npy.c): tests.
# The generators are compiled into $(B)/trm by mk/cli.mk.
#
#   make B=... check-npy    tests/test_npy.c (Check) on files numpy writes (tests/npy/make_fixtures.py)
#   make B=... check-data   tests/cli/test_data.py: generates Sudoku, maze and ARC sets and checks them
#                           with numpy and with the tools' reader (needs python3 with numpy)

CHECK_EXTRA += check-npy check-data

.PHONY: check-npy check-data

# TEST_CFLAGS and CHECK_LIBS are defined after this fragment: used in recipes only
$(B)/tests/test_npy: tests/test_npy.c tools/common/npy.c tools/common/npy.h tools/common/whole_file.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) tests/test_npy.c tools/common/npy.c -o $@ $(CHECK_LIBS)

$(B)/tests/npy-fixtures/good.txt: tests/npy/make_fixtures.py
	@rm -rf $(dir $@)
	$(PYTHON) tests/npy/make_fixtures.py $(dir $@)

$(B)/tests/test_data_npydump: tests/cli/test_data_npydump.c tools/common/npy.c tools/common/npy.h tools/common/whole_file.h
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) $(CFLAGS) tests/cli/test_data_npydump.c tools/common/npy.c -o $@

check-npy: $(B)/tests/test_npy $(B)/tests/npy-fixtures/good.txt
	$(B)/tests/test_npy $(B)/tests/npy-fixtures

check-data: $(B)/trm $(B)/tests/test_data_npydump
	$(PYTHON) tests/cli/test_data.py --trm $(B)/trm --npydump $(B)/tests/test_data_npydump --tmp $(B)/tests/data-sets
