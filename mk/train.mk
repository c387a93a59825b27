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
