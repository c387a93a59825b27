#!/bin/sh
# Makes sure what `make check` needs is here: Check (libcheck) with pkg-config, python3 with
# numpy (trm-convert and the conformance data) and pytest (the Python binding's tests), abidiff
# (the ABI check), gdb (the debugger example) and a C++ compiler. As root on Debian it installs
# what is missing; otherwise it says what to install and fails.
set -u
PYTHON=${PYTHON:-python3}
missing_pkgs=""
pkg-config --exists check 2>/dev/null || missing_pkgs="$missing_pkgs check pkg-config"
"$PYTHON" -c "import numpy" 2>/dev/null || missing_pkgs="$missing_pkgs python3-numpy"
"$PYTHON" -c "import pytest" 2>/dev/null || missing_pkgs="$missing_pkgs python3-pytest"
command -v abidiff >/dev/null 2>&1 || missing_pkgs="$missing_pkgs abigail-tools"
command -v gdb >/dev/null 2>&1 || missing_pkgs="$missing_pkgs gdb"
command -v g++ >/dev/null 2>&1 || missing_pkgs="$missing_pkgs g++"
[ -z "$missing_pkgs" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: installing$missing_pkgs"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing_pkgs >/dev/null || exit 1
  # a python3 other than Debian's (pyenv, venv) does not see python3-*: use pip for it
  for module in numpy pytest; do
    if ! "$PYTHON" -c "import $module" 2>/dev/null; then
      "$PYTHON" -m pip install -q $module || exit 1
    fi
  done
  exit 0
fi
echo "ensure-deps: missing:$missing_pkgs (on Debian: sudo apt-get install$missing_pkgs)" >&2
exit 1
