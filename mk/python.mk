# Python binding: python/trm (pure Python over ctypes and numpy), its pytest tests in
# python/tests, and examples/python/step.py.
#
#   make B=... check-python   the tests against $(B)/libtrm.so and the conformance data of $(B)
#                             (every API call and error path, the event sequences of each unit,
#                             the four reference cases under the best kernel and the scalar one),
#                             the example with its output checked, and an offline
#                             `pip install ./python` into a scratch directory, then imported
#
# Needs python3 with numpy and pytest (tests/ensure-deps.sh installs python3-pytest).

CHECK_EXTRA += check-python

.PHONY: check-python

PY_ENV = TRM_LIBRARY=$(abspath $(B))/libtrm.so TRM_BUILD=$(abspath $(B)) PYTHONDONTWRITEBYTECODE=1

# the conformance models (CONF_DEPS, defined after this fragment) are made at recipe time
check-python: $(B)/libtrm.so $(B)/examples/step
	@$(MAKE) -s --no-print-directory $(CONF_DEPS)
	@$(PYTHON) -c "import pytest" 2>/dev/null || { \
	  echo "check-python: FAILED: $(PYTHON) has no pytest (Debian: apt-get install python3-pytest; or $(PYTHON) -m pip install pytest)" >&2; \
	  exit 1; }
	$(PY_ENV) $(PYTHON) -m pytest -q -p no:cacheprovider python/tests
	$(PY_ENV) PYTHONPATH=$(CURDIR)/python $(PYTHON) examples/python/step.py models/demo.safetensors > $(B)/python-step.out
	@# an answer line per step from step 1, the final state, and two confidence bars per step
	@steps=$$(grep -c "^step [0-9]* .*confidence mean" $(B)/python-step.out); \
	  grep -q "^step 1 " $(B)/python-step.out && grep -q "^halted after $$steps steps" $(B)/python-step.out && \
	  test "$$(grep -c '|.*| [0-9.]*$$' $(B)/python-step.out)" -eq $$((2 * steps)) && echo "python example: ok ($$steps steps)" || \
	  { echo "python example: unexpected output in $(B)/python-step.out" >&2; exit 1; }
	@# offline, as a user would (numpy comes from the environment, hence --no-deps with --target)
	@rm -rf $(B)/py-install
	$(PYTHON) -m pip install -q --no-index --no-deps --disable-pip-version-check --root-user-action=ignore --target $(B)/py-install ./python
	cd $(B) && $(PY_ENV) PYTHONPATH=py-install $(PYTHON) -c \
	  "import trm, sys; assert trm.__file__.startswith('$(abspath $(B))/py-install/'), trm.__file__; print('pip install ./python: ok, libtrm', trm.version())"
