# C++: include/trm.hpp (header-only, C++17), its example and its tests.
#
#   make check-cpp     trm.h and trm.hpp compiled as C++17 by g++ and clang++ (each one present)
#                      with warnings as errors; the C++ test (also under ASan+UBSan when the
#                      compiler has them); the C++ example's output equal to the C example's
#
# CXX follows CC unless given: `make CC=clang` builds the C++ parts with clang++, CC=gcc-12 with
# g++-12; any other CC with g++.

ifeq ($(filter default undefined,$(origin CXX)),$(origin CXX))
  CPP_CC_NAME := $(notdir $(CC))
  CPP_CC_DIR := $(filter-out ./,$(dir $(CC)))
  ifneq ($(findstring clang,$(CPP_CC_NAME)),)
    CXX := $(CPP_CC_DIR)$(subst clang,clang++,$(CPP_CC_NAME))
  else ifneq ($(findstring gcc,$(CPP_CC_NAME)),)
    CXX := $(CPP_CC_DIR)$(subst gcc,g++,$(CPP_CC_NAME))
  else
    CXX := g++
  endif
endif
CXXFLAGS ?= -O2 -g
CPP_WARNINGS := -std=c++17 -Wall -Wextra -Wpedantic -Werror
# what trm.hpp promises on top: clean under the warnings strict C++ projects turn on
CPP_STRICT := $(CPP_WARNINGS) -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast -Wnon-virtual-dtor \
              -Woverloaded-virtual -Wzero-as-null-pointer-constant
CPP_LDFLAGS = -L$(B) -Wl,-rpath,'$$ORIGIN/..' -ltrm
CPP_TEST_LDFLAGS = -L$(B) -Wl,-rpath,'$$ORIGIN/../..' -ltrm

# without a C++ compiler the library still builds: the C++ parts are skipped, saying so
CPP_HAVE_CXX := $(shell command -v $(firstword $(CXX)) 2>/dev/null)
# the C++ example, for other fragments' prerequisites (mk/gdb.mk); empty without a C++ compiler
CPP_EXAMPLE := $(if $(CPP_HAVE_CXX),$(B)/examples/step-cpp)

ALL_EXTRA += $(CPP_EXAMPLE)
CHECK_EXTRA += check-cpp
INSTALL_EXTRA += install-cpp
UNINSTALL_EXTRA += uninstall-cpp

.PHONY: check-cpp check-cpp-run install-cpp uninstall-cpp

$(B)/examples/step-cpp: examples/cpp/step.cpp include/trm.hpp include/trm.h $(B)/libtrm.so
	@mkdir -p $(dir $@)
	$(CXX) $(CPP_WARNINGS) -Iinclude $(CXXFLAGS) $< -o $@ $(CPP_LDFLAGS)

$(B)/tests/cpp/test_trm: tests/cpp/test_trm.cpp include/trm.hpp include/trm.h $(B)/libtrm.so
	@mkdir -p $(dir $@)
	$(CXX) $(CPP_STRICT) -Iinclude $(CXXFLAGS) $< -o $@ $(CPP_TEST_LDFLAGS)

# the same test with AddressSanitizer (its leak checker sees the library's allocations too, so
# a handle that forgets to free fails) and UBSan; an empty file when the compiler lacks them
$(B)/tests/cpp/test_trm_asan: tests/cpp/test_trm.cpp include/trm.hpp include/trm.h $(B)/libtrm.so
	@mkdir -p $(dir $@)
	@if echo 'int main(){}' | $(CXX) -x c++ -fsanitize=address,undefined - -o $@.probe 2>/dev/null && $@.probe; then \
	  echo "$(CXX) -fsanitize=address,undefined ... -o $@"; \
	  $(CXX) $(CPP_WARNINGS) -Iinclude -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	    -fno-sanitize-recover=undefined $< -o $@ $(CPP_TEST_LDFLAGS); \
	else echo "check-cpp: $(CXX) has no -fsanitize=address,undefined here: the sanitized run is skipped"; : > $@; fi
	@rm -f $@.probe

$(B)/tests/cpp/c_header: tests/cpp/c_header.cpp include/trm.h $(B)/libtrm.so
	@mkdir -p $(dir $@)
	$(CXX) $(CPP_WARNINGS) -Iinclude $(CXXFLAGS) $< -o $@ $(CPP_TEST_LDFLAGS)

ifeq ($(CPP_HAVE_CXX),)
check-cpp:
	@echo "check-cpp: SKIPPED: no C++ compiler $(CXX) (Debian: g++)"
else
check-cpp: check-cpp-run
endif

check-cpp-run: $(B)/tests/cpp/test_trm $(B)/tests/cpp/test_trm_asan $(B)/tests/cpp/c_header $(B)/examples/step-cpp $(B)/examples/step
	@for cxx in $(sort $(CXX) g++ clang++); do \
	  if command -v $$cxx >/dev/null; then \
	    $$cxx $(CPP_WARNINGS) -Iinclude -fsyntax-only tests/cpp/c_header.cpp && \
	    $$cxx $(CPP_STRICT) -Iinclude -fsyntax-only tests/cpp/test_trm.cpp examples/cpp/step.cpp && \
	    echo "check-cpp: trm.h and trm.hpp compile cleanly with $$cxx -std=c++17" || exit 1; \
	  else echo "check-cpp: $$cxx not found: not compiled with it"; fi; \
	done
	$(B)/tests/cpp/c_header
	$(B)/tests/cpp/test_trm models/demo.safetensors
	@if [ -s $(B)/tests/cpp/test_trm_asan ]; then \
	  echo "$(B)/tests/cpp/test_trm_asan models/demo.safetensors"; \
	  ASAN_OPTIONS=detect_leaks=1 $(B)/tests/cpp/test_trm_asan models/demo.safetensors || exit 1; fi
	$(B)/examples/step models/demo.safetensors > $(B)/tests/cpp/step-c.out
	$(B)/examples/step-cpp models/demo.safetensors > $(B)/tests/cpp/step-cpp.out
	@if cmp -s $(B)/tests/cpp/step-c.out $(B)/tests/cpp/step-cpp.out && grep -q '^step 1 ' $(B)/tests/cpp/step-cpp.out; then \
	  echo "check-cpp: examples/cpp/step.cpp prints what examples/c/step.c prints"; \
	else diff $(B)/tests/cpp/step-c.out $(B)/tests/cpp/step-cpp.out; echo "check-cpp: the C++ example differs"; exit 1; fi
	$(B)/examples/step-cpp /nonexistent.safetensors 2> $(B)/tests/cpp/step-cpp.err; test $$? -eq 1
	@grep -q 'TRM_E_IO' $(B)/tests/cpp/step-cpp.err && echo "check-cpp: ok"

install-cpp:
	install -d $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/trm.hpp $(DESTDIR)$(INCLUDEDIR)/

uninstall-cpp:
	rm -f $(DESTDIR)$(INCLUDEDIR)/trm.hpp
