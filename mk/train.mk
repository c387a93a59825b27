# Training (lib/train/, part of libtrm through LIB_SRCS; `trm train` in tools/trm/train.c).
#
#   make B=... check-grad        finite-difference gradient checks of the engine (tests/test_grad.c)
#   make B=... check-train       the trainer: tests/test_train.c (Check) and tests/cli/test_train.py
#   make B=... grad-torch        by hand: gradients against PyTorch autograd (needs python3-torch)
TRAIN_HDRS := lib/train/train.h

# `trm train` joins the trm command (mk/cli.mk lists the other subcommands): the recipe there
# expands CLI_SRCS when it runs, so appending here is enough; the prerequisite rebuilds on edits.
CLI_SRCS += tools/trm/train.c
$(B)/trm: tools/trm/train.c

# the tests use internal functions (hidden in libtrm.so), so they link the static library
$(B)/tests/test_grad: tests/test_grad.c tests/model_builder.c tests/model_builder.h $(TRAIN_HDRS) $(LIB_HDRS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) tests/test_grad.c tests/model_builder.c -o $@ $(STATIC) -lm -pthread

$(B)/tests/test_train: tests/test_train.c tests/model_builder.c tests/model_builder.h $(LIB_HDRS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) $(CHECK_CFLAGS) tests/test_train.c tests/model_builder.c -o $@ \
	  $(STATIC) $(CHECK_LIBS) -lm -pthread

.PHONY: check-grad check-train check-train-cli
check-grad: $(B)/tests/test_grad
	$(B)/tests/test_grad

check-train: $(B)/tests/test_train check-train-cli
	$(B)/tests/test_train

check-train-cli: $(B)/trm
	$(PYTHON) tests/cli/test_train.py --trm $(B)/trm

CHECK_EXTRA += check-grad check-train

# Gradients of two supervision steps as JSON, for tools/grad_torch.py.
$(B)/tests/test_grad_dump: tests/test_grad_dump.c $(TRAIN_HDRS) $(LIB_HDRS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) tests/test_grad_dump.c -o $@ $(STATIC) -lm -pthread

# By hand (needs PyTorch: Debian python3-torch for /usr/bin/python3): the engine's gradients
# against autograd on the conformance models.
TORCH_PYTHON ?= /usr/bin/python3
.PHONY: grad-torch
grad-torch: $(B)/tests/test_grad_dump $(B)/conformance/conf_att_rope/model.safetensors \
            $(B)/conformance/conf_mlpt/model.safetensors $(B)/conformance/conf_att_learned_pad/model.safetensors
	@for c in conf_att_rope conf_mlpt conf_att_learned_pad; do \
	  $(TORCH_PYTHON) tools/grad_torch.py $(B)/conformance/$$c/model.safetensors --dump $(B)/tests/test_grad_dump || exit 1; \
	done
