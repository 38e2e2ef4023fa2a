"""CLI start-up time: the light commands against the interpreter's own start-up, in one run.

Runs each command as a fresh process several times (output to /dev/null, i.e. not a
terminal) and prints the median wall time beside ``python -c pass`` measured in the
same run. Goal: each light command under 0.5 s on the 2-core development machine.
Headline figures last, one per line.

Bytecode caching is on, as in an installed package (pip compiles .pyc files at
install time): PYTHONDONTWRITEBYTECODE is dropped and a first round warms the caches.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPEAT = 9
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CLI = [sys.executable, "-m", "mathsym_zoo"]
#: The commands that must start fast (no TensorFlow, no data).
LIGHT = {
    "--help": ["--help"],
    "plugins": ["plugins", "--all"],
    "models": ["models"],
    "sources": ["sources"],
    "check": ["check", "--source", "demo"],
}


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, which other jobs on the machine disturb less)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    for argv in LIGHT.values():  # warm-up: bytecode caches written
        timed(CLI + argv)
    commands = {"python -c pass": [sys.executable, "-c", "pass"], **{n: CLI + a for n, a in LIGHT.items()}}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(REPEAT):  # interleaved, so that a burst of load from other jobs hits every command alike
        for name, cmd in commands.items():
            samples[name].append(timed(cmd))
    wall = {n: statistics.median(w for w, _ in s) for n, s in samples.items()}
    cpu = {n: statistics.median(c for _, c in s) for n, s in samples.items()}
    tf = statistics.median(timed([sys.executable, "-c", "import tensorflow"])[0] for _ in range(2))
    base = wall["python -c pass"]
    for name in commands:
        print(f"{name:>16}: wall {wall[name] * 1000:5.0f} ms ({wall[name] / base:4.1f}x python -c pass)  "
              f"cpu {cpu[name] * 1000:5.0f} ms")
    print(f"{'import tensorflow':>16}: wall {tf * 1000:5.0f} ms")
    for name in LIGHT:
        print(f"seconds {name}: {wall[name]:.3f}")
    print(f"seconds python -c pass: {base:.3f}")
    print(f"cpu seconds slowest: {max(cpu[n] for n in LIGHT):.3f}")
    print(f"ratio slowest/python-startup: {max(wall[n] for n in LIGHT) / base:.2f}")


if __name__ == "__main__":
    main()
