#!/bin/bash
# Training speed: libtrm's engine (bench/train) against the same model and supervision step in
# PyTorch on the CPU (bench/train_torch.py), in samples per second, and the ratio libtrm / PyTorch.
# Configurations: ANCHORS.md's CPU-training one (hidden 128, mlp_t, 2 layers, H 2 x L 3, batch 64)
# and the paper's Sudoku-MLP (hidden 512, H 3 x L 6) at batch 4.
#
# On a shared machine the figures move from minute to minute, so the runs are interleaved: PyTorch's
# best thread setting is found first (torch intra-op threads x OpenBLAS threads: 1 or 2 each, with
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset), then ROUNDS rounds each run PyTorch (that
# setting), libtrm on 1 thread and libtrm on 2 threads back to back. Printed: the medians over the
# rounds, the ratio of the medians, and CPU seconds per sample (the process's CPU time per step /
# batch: what a step costs whatever share of the cores it got). The load average is printed too.
#   bench/run-train.sh BUILD_DIR [STEPS] [ROUNDS] [PRESET:BATCH ...]
set -euo pipefail
B=${1:-build/make}
STEPS=${2:-5}
ROUNDS=${3:-3}
shift $(( $# > 3 ? 3 : $# ))
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(anchor:64 sudoku-mlp:4)
PY=${PYTHON_TORCH:-/usr/bin/python3}   # Debian's python3 with python3-torch
[ -x "$B/bench/train" ] || { echo "run-train.sh: build $B/bench/train first (make B=$B bench-train)" >&2; exit 1; }
"$PY" -c 'import torch' 2>/dev/null || { echo "run-train.sh: no torch for $PY (apt-get install python3-torch)" >&2; exit 1; }

rate() { sed -n 's/.*: \([0-9.]*\) samples\/s.*/\1/p'; }
cpu() { sed -n 's/.*; \([0-9.]*\) CPU s).*/\1/p'; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

torch_run() { # preset batch steps intra blas
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$5 \
    "$PY" bench/train_torch.py --preset "$1" --batch "$2" --steps "$3" --threads "$4" 2>/dev/null
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), $STEPS timed steps per run (1 warm-up), $ROUNDS rounds"
summary=()
for cfg in "${CONFIGS[@]}"; do
  preset=${cfg%%:*} batch=${cfg##*:}
  steps=$STEPS
  [ "$preset" = anchor ] || steps=$(( STEPS < 3 ? STEPS : 3 ))  # the paper's model: long steps
  best="" best_rate=""
  for setting in "1 1" "1 2" "2 1" "2 2"; do
    read -r intra blas <<< "$setting"
    r=$(torch_run "$preset" "$batch" "$steps" "$intra" "$blas" | rate) || r=""
    echo "  $preset batch $batch: torch intra-op $intra, OpenBLAS $blas: ${r:-failed} samples/s"
    if [ -n "$r" ] && { [ -z "$best_rate" ] || awk "BEGIN{exit !($r > $best_rate)}"; }; then
      best=$setting best_rate=$r
    fi
  done
  [ -n "$best" ] || { echo "run-train.sh: PyTorch failed on $preset" >&2; exit 1; }
  read -r intra blas <<< "$best"
  t_rates=() t_cpus=() l1_rates=() l1_cpus=() l2_rates=()
  for round in $(seq "$ROUNDS"); do
    line=$(torch_run "$preset" "$batch" "$steps" "$intra" "$blas")
    t_rates+=("$(echo "$line" | rate)") t_cpus+=("$(echo "$line" | cpu)")
    line=$("$B/bench/train" --preset "$preset" --batch "$batch" --threads 1 --steps "$steps" 2>/dev/null | tail -1)
    l1_rates+=("$(echo "$line" | rate)") l1_cpus+=("$(echo "$line" | cpu)")
    line=$("$B/bench/train" --preset "$preset" --batch "$batch" --threads 2 --steps "$steps" 2>/dev/null | tail -1)
    l2_rates+=("$(echo "$line" | rate)")
    echo "  $preset batch $batch round $round: torch ${t_rates[-1]}, libtrm 1 thread ${l1_rates[-1]}," \
         "2 threads ${l2_rates[-1]} samples/s (load $(cut -d' ' -f1 /proc/loadavg))"
  done
  t=$(printf '%s\n' "${t_rates[@]}" | median)
  tc=$(printf '%s\n' "${t_cpus[@]}" | median)
  l1=$(printf '%s\n' "${l1_rates[@]}" | median)
  l1c=$(printf '%s\n' "${l1_cpus[@]}" | median)
  l2=$(printf '%s\n' "${l2_rates[@]}" | median)
  summary+=("$(printf "%-11s %5s %14s %12s %12s %9s %9s %16s" "$preset" "$batch" "${t} ($intra x $blas)" "$l1" "$l2" \
    "$(awk "BEGIN{printf \"%.2fx\", $l1 / $t}")" "$(awk "BEGIN{printf \"%.2fx\", $l2 / $t}")" \
    "$(awk "BEGIN{printf \"%.3f / %.3f\", $l1c / $batch, $tc / $batch}")")")
done
echo
echo "samples/s, medians of $ROUNDS interleaved rounds; PyTorch at its best setting (intra-op x OpenBLAS threads)"
printf "%-11s %5s %14s %12s %12s %9s %9s %16s\n" config batch "torch" "libtrm 1 thr" "libtrm 2 thr" "ratio 1" "ratio 2" \
  "CPU s/sample 1 thr"
printf "%-11s %5s %14s %12s %12s %9s %9s %16s\n" "" "" "" "" "" "" "" "libtrm / torch"
printf '%s\n' "${summary[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
