#!/bin/bash
# The shared library exports exactly the symbols of lib/libtrm.map, all named trm_*, all under
# the version node; and carries the expected SONAME.
set -eu
lib=$1
map=${2:-lib/libtrm.map}
exported=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort)
listed=$(sed -n 's/^ *\(trm_[a-z_]*\);$/\1/p' "$map" | sort)
bad=$(echo "$exported" | grep -v '^trm_' || true)
if [ -n "$bad" ]; then echo "check-symbols: exported symbols not named trm_*: $bad" >&2; exit 1; fi
if [ "$exported" != "$listed" ]; then
  echo "check-symbols: exported symbols differ from $map:" >&2
  diff <(echo "$listed") <(echo "$exported") >&2 || true
  exit 1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libtrm.so.0" ] || { echo "check-symbols: SONAME is '$soname', expected libtrm.so.0" >&2; exit 1; }
echo "symbols: $(echo "$exported" | wc -l) exported, all trm_*, SONAME $soname: ok"
