#!/usr/bin/env bash
# The main job, offline: compare the zoo models on the embedded demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/mathsym-zoo compare --source demo "$@"
