#!/usr/bin/env bash
# The test suite, with the system tools its tests need: unar (compressed RAR)
# and chromium (renders the HTML report). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh unar chromium
exec .venv/bin/python -m pytest "$@"
