"""CLI start-up time: light commands against the interpreter's own start-up.

Runs each command as a fresh process several times and prints the median wall
time. Goal: each under 0.5 s on a 2-core machine. Headline figures last.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPEAT = 7
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "--help": [sys.executable, "-m", "mathsym_zoo", "--help"],
    "plugins --all": [sys.executable, "-m", "mathsym_zoo", "plugins", "--all"],
    "models": [sys.executable, "-m", "mathsym_zoo", "models"],
    "check": [sys.executable, "-m", "mathsym_zoo", "check", "--source", "demo"],
    "import tensorflow": [sys.executable, "-c", "import tensorflow"],
}


def median_seconds(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    results = {name: median_seconds(cmd, 2 if "tensorflow" in name else REPEAT) for name, cmd in COMMANDS.items()}
    base = results["python -c pass"]
    for name, secs in results.items():
        print(f"{name:>20}: {secs * 1000:7.0f} ms")
    for name in ("--help", "plugins --all", "models", "check"):
        print(f"seconds {name}: {results[name]:.3f}")
    print(f"ratio models/import-tensorflow: {results['models'] / results['import tensorflow']:.3f}")
    print(f"ratio check/python-startup: {results['check'] / base:.2f}")


if __name__ == "__main__":
    main()
