"""The CLI starts fast: listing and checking never import TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
from mathsym_zoo.cli import run
codes = {}
for argv in %r:
    codes[" ".join(argv)] = run(argv)
heavy = sorted(m for m in ("tensorflow", "keras", "mlcroissant", "matplotlib") if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""

COMMANDS = [
    ["--help"],
    ["serve", "--help"],
    ["plugins", "--all"],
    ["models"],
    ["models", "res*"],
    ["sources"],
    ["preprocessors"],
    ["check", "--source", "demo"],
    ["check", "--source", "crohme", "--set", "train.epochs=3"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_light_commands_do_not_import_tensorflow(argv):
    out = subprocess.run([sys.executable, "-c", PROBE % ([argv],)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(result["codes"].values()) == [0], out.stderr
    assert result["heavy"] == [], f"{argv} imported {result['heavy']}"


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "mathsym_zoo", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "mathsym-zoo" in out.stdout
