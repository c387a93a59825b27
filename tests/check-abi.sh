#!/bin/bash
# The ABI of the built libtrm.so against the baseline stored for its SONAME (abi/SONAME.abi,
# written by abidw from the release that introduced the SONAME). Additions pass; any
# incompatible change (a function or type removed or changed) fails, unless the SONAME moves
# and a new baseline is stored for it in the same change (see abi/README.md).
# Layout changes of the opaque types are private (abi/suppressions.ini).
# Needs abidiff (Debian: abigail-tools); without it the check says so and fails, unless
# TRM_SKIP_ABI=1.
set -u
lib=$1
dir=${2:-abi}
[ -f "$lib" ] || { echo "check-abi: $lib: no such file" >&2; exit 1; }
if ! command -v abidiff >/dev/null; then
  if [ "${TRM_SKIP_ABI:-0}" = 1 ]; then echo "check-abi: SKIPPED (no abidiff; TRM_SKIP_ABI=1)"; exit 0; fi
  echo "check-abi: abidiff not found (Debian: apt-get install abigail-tools; or TRM_SKIP_ABI=1 to skip)" >&2
  exit 1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
baseline="$dir/$soname.abi"
if [ ! -f "$baseline" ]; then
  echo "check-abi: no baseline $baseline for SONAME $soname: store one with" >&2
  echo "  abidw --no-corpus-path --no-comp-dir-path $lib > $baseline" >&2
  exit 1
fi
report=$(abidiff --suppressions "$dir/suppressions.ini" "$baseline" "$lib")
rc=$?
# abidiff's status is a bit field: 1 error, 2 usage, 4 ABI changed, 8 incompatible change
if (( rc & 3 )); then
  echo "check-abi: abidiff failed (status $rc):" >&2
  echo "$report" >&2
  exit 1
fi
# only additions are compatible: anything removed or changed fails, whatever abidiff's verdict
changed=$(echo "$report" | sed -n 's/^\(Functions\|Variables\) changes summary: \([0-9]*\) Removed, \([0-9]*\) Changed.*/\2 \3/p' |
  tr ' ' '\n' | grep -cv '^0$')
if (( rc & 8 )) || [ "$changed" != 0 ]; then
  echo "check-abi: INCOMPATIBLE change against $baseline:" >&2
  echo "$report" >&2
  echo "check-abi: either undo it, or bump the SONAME and store a new baseline (abi/README.md)" >&2
  exit 1
fi
added=$(echo "$report" | sed -n 's/.*Removed, .* Changed.*, \([0-9]*\) Added function.*/\1/p' | head -1)
if (( rc & 4 )); then
  echo "check-abi: compatible changes against $baseline (${added:-?} functions added):"
  echo "$report" | sed -n '/Added function/,$p' | sed 's/^/  /'
fi
echo "check-abi: $soname compatible with $baseline: ok"
