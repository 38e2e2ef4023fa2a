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
heavy = sorted(m for m in ("tensorflow", "keras", "mlcroissant", "matplotlib", "numpy", "rich", "pydantic")
               if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""

#: Each light command and what it may import (output is a pipe here, so tables are plain text: no rich).
#: Listing and checking need pydantic (plugin parameters, the registry); help and version need nothing.
COMMANDS = [
    (["--help"], []),
    (["--version"], []),
    (["train", "--help"], ["pydantic"]),  # recent Typer types a command's parameters with pydantic
    (["serve", "--help"], ["pydantic"]),
    (["plugins", "--all"], ["pydantic"]),
    (["models"], ["pydantic"]),
    (["models", "res*"], ["pydantic"]),
    (["sources"], ["pydantic"]),
    (["preprocessors"], ["pydantic"]),
    (["check", "--source", "demo"], ["pydantic"]),
    (["check", "--source", "crohme", "--set", "train.epochs=3"], ["pydantic"]),
]


@pytest.mark.parametrize("argv, allowed", COMMANDS, ids=[" ".join(c) for c, _ in COMMANDS])
def test_light_commands_import_little(argv, allowed):
    out = subprocess.run([sys.executable, "-c", PROBE % ([argv],)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(result["codes"].values()) == [0], out.stderr
    assert set(result["heavy"]) <= set(allowed), f"{argv} imported {result['heavy']}"


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "mathsym_zoo", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "mathsym-zoo" in out.stdout
