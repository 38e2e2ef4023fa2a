"""benchmarks/writer_shift.py: the recipes it trains are the shipped one, the pre-issue-18 baseline and
leave-one-out variants that differ from the shipped recipe in exactly one piece; it prints its headline last."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mathsym_zoo.registry import SHIPPED_REGISTRY, read_toml, resolve

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "writer_shift.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("writer_shift", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_types(raw: dict) -> list[str]:
    return [p["type"] for p in raw.get("preprocessing", [])]


def test_shipped_recipe_differs_from_the_baseline_and_each_ablation_removes_one_piece():
    bench = load_benchmark()
    raw = read_toml(SHIPPED_REGISTRY)
    shipped = resolve(SHIPPED_REGISTRY, source="crohme")
    plan = bench.recipes(raw, shipped, ablation=True)

    # The shipped recipe as CROHME trains it ([train] with [sources.crohme.train] folded in).
    assert resolve(SHIPPED_REGISTRY, raw=plan["shipped"], source="crohme") == shipped
    assert all("train" not in table for recipe in plan.values() for table in recipe["sources"].values())
    raw = plan["shipped"]
    base = plan["baseline (today)"]
    assert step_types(base) == ["grayscale", "resize_pad"]  # no online augmentation
    assert {k: base["train"][k] for k in bench.BASELINE_TRAIN} == bench.BASELINE_TRAIN
    # The shipped recipe is the writer-shift one: online re-fit augmentation and AdamW with warm-up + cosine.
    assert {"random_affine", "random_erasing"} <= set(step_types(raw))
    assert (shipped.train.optimizer, shipped.train.lr_schedule) == ("adamw", "warmup-cosine")

    ablations = {k for k in plan if k.startswith("without ")}
    assert ablations == {"without optimizer / weight decay", "without lr schedule", "without class weights",
                         "without undoing class weights at inference", "without longer training",
                         "without label smoothing", "without random_affine", "without random_erasing"}
    for name in ablations:
        variant = plan[name]
        changed_train = {k for k in raw["train"] | variant["train"] if raw["train"].get(k) != variant["train"].get(k)}
        changed_steps = set(step_types(raw)) - set(step_types(variant))
        piece = name[len("without "):]
        if piece in bench.PIECES:
            assert changed_train and changed_train <= set(bench.PIECES[piece]) and not changed_steps, name
        else:
            assert changed_steps == {piece} and not changed_train, name


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_prints_its_headline_last(tmp_path):
    """A tiny run on the demo source (no CROHME needed): two recipes, two epochs, TTA 2."""
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--source", "demo", "--fraction", "0.25", "--epochs", "2",
         "--only", "baseline (today),shipped", "--tta", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    names = [line.split(":")[0] for line in lines[-3:]]
    assert names == ["top-1 unseen writers", "macro recall unseen writers", "train minutes"]
    values = [float(line.split(":")[1]) for line in lines[-3:]]
    assert 0 <= values[0] <= 1 and 0 <= values[1] <= 1 and values[2] > 0
    assert "shipped + TTA 2" in out.stdout and "baseline (today)" in out.stdout
    assert len(list((tmp_path / "runs").iterdir())) == 2
