#!/bin/bash
# End-to-end benchmark: libtrm against PyTorch on the paper's Sudoku-MLP and ARC models (random
# weights), seconds per supervision step, measured in this run. Prints each figure and the
# libtrm / PyTorch ratio (PyTorch's best thread setting), then peak memory.
#   bench/run-trm.sh BUILD_DIR [STEPS] [quick]
# quick leaves out ARC at batch 16 (PyTorch needs minutes per step there).
set -euo pipefail
B=${1:-build/make}
STEPS=${2:-5}
QUICK=${3:-}
PY=${PYTHON_TORCH:-/usr/bin/python3}   # Debian's python3 with python3-torch
mkdir -p "$B/bench"
for preset in sudoku-mlp arc; do
  [ -f "$B/bench/$preset.safetensors" ] || python3 bench/make_model.py $preset -o "$B/bench/$preset.safetensors"
done

secs() { sed -n 's/.*: \([0-9.]*\) s\/step.*/\1/p'; }

# PyTorch: its intra-op threads x OpenBLAS threads; the environment's OpenBLAS limits unset for it
torch_best() { # model batch
  local best="" line t
  for setting in "1 1" "1 2" "2 1"; do
    set -- $setting
    line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$2 \
           "$PY" bench/trm_torch.py "$MODEL" --batch "$BATCH" --threads "$1" --steps "$TSTEPS" 2>/dev/null) || continue
    t=$(echo "$line" | secs)
    echo "    torch intra-op $1, OpenBLAS $2: $t s/step" >&2
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
  done
  echo "$best"
}

printf "%-11s %5s %7s %12s %12s %8s\n" model batch threads "libtrm s/st" "torch best" "speedup"
for preset in sudoku-mlp arc; do
  MODEL="$B/bench/$preset.safetensors"
  for BATCH in 1 16; do
    [ "$preset" = arc ] && [ "$BATCH" = 16 ] && [ -n "$QUICK" ] && continue
    [ "$preset" = arc ] && [ "$BATCH" = 16 ] && TSTEPS=1 || TSTEPS=$STEPS
    torch=$(torch_best)
    for threads in 1 2; do
      ours=$("$B/bench/trm" "$MODEL" --batch "$BATCH" --threads "$threads" --steps "$TSTEPS" | secs)
      printf "%-11s %5s %7s %12s %12s %8s\n" "$preset" "$BATCH" "$threads" "$ours" "${torch:-n/a}" \
        "$( [ -n "$torch" ] && awk "BEGIN{printf \"%.2fx\", $torch / $ours}" || echo n/a)"
    done
  done
done
for preset in sudoku-mlp arc; do
  echo "$preset: $("$B/bench/trm" "$B/bench/$preset.safetensors" --memory)"
done
