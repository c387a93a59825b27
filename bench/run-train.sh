#!/bin/bash
# Training speed: libtrm's engine (bench/train) against the same model and supervision step in
# PyTorch on the CPU (bench/train_torch.py), samples per second measured in this run, and the
# ratio libtrm / PyTorch's best thread setting. Configurations: ANCHORS.md's CPU-training one
# (hidden 128, mlp_t, 2 layers, H 2 x L 3, batch 64) and the paper's Sudoku-MLP (hidden 512,
# H 3 x L 6) at batch 4. The load average is printed before and after: on a shared machine
# compare the ratio, not the absolute figures.
#   bench/run-train.sh BUILD_DIR [STEPS] [PRESET:BATCH ...]
set -euo pipefail
B=${1:-build/make}
STEPS=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(anchor:64 sudoku-mlp:4)
PY=${PYTHON_TORCH:-/usr/bin/python3}   # Debian's python3 with python3-torch
[ -x "$B/bench/train" ] || { echo "run-train.sh: build $B/bench/train first (make B=$B bench-train)" >&2; exit 1; }

rate() { sed -n 's/.*: \([0-9.]*\) samples\/s.*/\1/p'; }

# PyTorch: intra-op threads x OpenBLAS threads, the environment's OpenBLAS limits unset for it
torch_best() { # preset batch steps
  local preset=$1 batch=$2 steps=$3 best="" line r intra blas
  for setting in "1 1" "1 2" "2 1"; do
    read -r intra blas <<< "$setting"
    if ! line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$blas \
                "$PY" bench/train_torch.py --preset "$preset" --batch "$batch" --steps "$steps" \
                --threads "$intra" 2>/dev/null); then
      echo "    torch intra-op $intra, OpenBLAS $blas: failed" >&2
      continue
    fi
    r=$(echo "$line" | rate)
    echo "    torch $preset batch $batch, intra-op $intra, OpenBLAS $blas: $r samples/s" >&2
    if [ -z "$best" ] || awk "BEGIN{exit !($r > $best)}"; then best=$r; fi
  done
  echo "$best"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo "torch: not found for $PY"
printf "%-11s %5s %7s %14s %14s %8s\n" config batch threads "libtrm samp/s" "torch best" "ratio"
for cfg in "${CONFIGS[@]}"; do
  preset=${cfg%%:*} batch=${cfg##*:}
  steps=$STEPS
  [ "$preset" = anchor ] || steps=$(( STEPS < 3 ? STEPS : 3 ))  # the paper's model: long steps
  torch=$(torch_best "$preset" "$batch" "$steps")
  for threads in 1 2; do
    ours=$("$B/bench/train" --preset "$preset" --batch "$batch" --threads "$threads" --steps "$steps" 2>/dev/null | rate)
    printf "%-11s %5s %7s %14s %14s %8s\n" "$preset" "$batch" "$threads" "$ours" "${torch:-n/a}" \
      "$( [ -n "$torch" ] && awk "BEGIN{printf \"%.2fx\", $ours / $torch}" || echo n/a)"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
