# Watch examples/c/step.c refine its puzzle: stop after every trm_refine() and print the session
# (config, counters, each slot's steps, halted flag, q and decoded answer drawn as a grid).
#
#   gdb -batch -x examples/gdb/step.gdb --args build/make/examples/step models/demo.safetensors
#
# Run from the repository root. Drop -batch to stay in gdb at the end; to explore by hand instead,
# type the first two commands, `run`, then `print *$trm_session` and `continue` at each stop.

# The printers and trm-break-refine, by hand: auto-loading (docs/DEBUGGING.md) would only bring
# them in once the program has loaded libtrm, and this script needs the command before `run`.
source tools/gdb/libtrm.py

set pagination off
set confirm off
trm-break-refine
run
# $_exitcode stays void until the program exits
while $_isvoid($_exitcode)
  printf "after trm_refine(): status %d, event step %d\n", $trm_status, $trm_event->step
  print *$trm_session
  continue
end
