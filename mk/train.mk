# Training engine (lib/train/): the backward pass and the supervision step, proven by gradient
# checks. lib/train/*.c are compiled into the test until the library's LIB_SRCS gains them.
TRAIN_SRCS := $(sort $(wildcard lib/train/*.c))
TRAIN_HDRS := lib/train/train.h

$(B)/tests/test_grad: tests/test_grad.c tests/model_builder.c tests/model_builder.h $(TRAIN_SRCS) $(TRAIN_HDRS) \
                      $(LIB_HDRS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) tests/test_grad.c tests/model_builder.c $(TRAIN_SRCS) -o $@ \
	  $(STATIC) -lm -pthread

.PHONY: check-grad
check-grad: $(B)/tests/test_grad
	$(B)/tests/test_grad

CHECK_EXTRA += check-grad

# Gradients of two supervision steps as JSON, for tools/grad_torch.py.
$(B)/tests/test_grad_dump: tests/test_grad_dump.c $(TRAIN_SRCS) $(TRAIN_HDRS) $(LIB_HDRS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Iinclude -Ilib $(CFLAGS) tests/test_grad_dump.c $(TRAIN_SRCS) -o $@ $(STATIC) -lm -pthread

# By hand (needs PyTorch: Debian python3-torch for /usr/bin/python3): the engine's gradients
# against autograd on the conformance models.
TORCH_PYTHON ?= /usr/bin/python3
.PHONY: grad-torch
grad-torch: $(B)/tests/test_grad_dump $(B)/conformance/conf_att_rope/model.safetensors \
            $(B)/conformance/conf_mlpt/model.safetensors $(B)/conformance/conf_att_learned_pad/model.safetensors
	@for c in conf_att_rope conf_mlpt conf_att_learned_pad; do \
	  $(TORCH_PYTHON) tools/grad_torch.py $(B)/conformance/$$c/model.safetensors --dump $(B)/tests/test_grad_dump || exit 1; \
	done
