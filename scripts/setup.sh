#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: optional Debian tools (when root), then
# a virtualenv in .venv with mathsym-zoo installed in editable mode.
# Usage: scripts/setup.sh [DEBIAN_PACKAGE ...]
#   MATHSYM_ZOO_EXTRAS: what to install (default '.[serve,test,onnx,tensorboard]'; add gpu for NVIDIA GPUs).
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
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" --upgrade pip
spec=${MATHSYM_ZOO_EXTRAS:-.[serve,test,onnx,tensorboard]}

# TensorFlow. The package requires `tensorflow` (a plain `pip install .` works anywhere). For a
# CPU set-up on Linux x86_64 we install the `tensorflow-cpu` wheel instead: same `tensorflow`
# module, half the download (2.21: 274 MB against 572 MB). pip does not count tensorflow-cpu as `tensorflow` (another
# distribution name), so `pip install -e .` would add the full wheel on top, two distributions
# writing one folder, and removing either breaks the other. Hence: the dependencies from
# pyproject.toml with tensorflow swapped for tensorflow-cpu, then the package with --no-deps
# (`pip check` then reports tensorflow missing; the module is there). Re-run this script rather
# than `pip install -e .` in this .venv.
if [ "$(uname -sm)" = "Linux x86_64" ] && [[ $spec != *gpu* ]] \
    && ! .venv/bin/python -m pip show -q tensorflow >/dev/null 2>&1; then
  mapfile -t deps < <(.venv/bin/python - "$spec" <<'PYEOF'
import re, sys, tomllib
spec = sys.argv[1]
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = re.findall(r"[\w-]+", spec.partition("[")[2])
reqs = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
for req in reqs:
    print(re.sub(r"^tensorflow(?=[<>=!~ ;]|$)", "tensorflow-cpu", req))
PYEOF
  )
  "${pip[@]}" "${deps[@]}"
  "${pip[@]}" --no-deps -e "$spec"
else
  # The full wheel (GPU, or no tensorflow-cpu for this platform): never beside tensorflow-cpu.
  .venv/bin/python -m pip uninstall -y -q tensorflow-cpu >/dev/null 2>&1 || true
  "${pip[@]}" -e "$spec"
fi
