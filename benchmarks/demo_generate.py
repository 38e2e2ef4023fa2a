"""Generation speed of the demo source, single process (as the cache ingest calls it).

    python benchmarks/demo_generate.py [--per-class 100] [--repeat 1]

Baseline: the README budget, 82 x 100 images in well under 10 s on one core of
the 2-core reference machine. Prints ``name: value`` lines last.
"""

from __future__ import annotations

import argparse
import time

from mathsym_zoo_plugins.source_demo import DemoParams, build_demo

BUDGET_S = 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs")
    args = ap.parse_args()

    best = float("inf")
    n = 0
    for _ in range(args.repeat):
        source = build_demo(DemoParams(images_per_class=args.per_class, seed=args.seed))
        t0 = time.perf_counter()
        n = sum(1 for _ in source.records())
        best = min(best, time.perf_counter() - t0)
    rate = n / best
    print(f"images: {n}")
    print(f"seconds: {best:.2f}")
    print(f"images/s: {rate:.0f}")
    print(f"seconds for 82x100 (est.): {8200 / rate:.2f}")
    print(f"ratio to {BUDGET_S:g} s budget for 82x100: {(8200 / rate) / BUDGET_S:.2f}")


if __name__ == "__main__":
    main()
