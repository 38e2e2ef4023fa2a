#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: optional Debian tools (when root), then
# a virtualenv in .venv with mathsym-zoo installed in editable mode.
# Usage: scripts/setup.sh [DEBIAN_PACKAGE ...]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: not root, skipping Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), "mathsym-zoo needs Python >= 3.11"'
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e "${MATHSYM_ZOO_EXTRAS:-.[cpu,serve,test,onnx,tensorboard]}"
