"""benchmarks/writer_shift.py: the recipes it trains are the shipped one, the pre-issue-18 baseline and
leave-one-out variants that differ from the shipped recipe in exactly one piece; it prints its headline last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark_helpers import load_benchmark
from mathsym_zoo.registry import SHIPPED_REGISTRY, read_toml, resolve

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "writer_shift.py"


def step_types(raw: dict) -> list[str]:
    return [p["type"] for p in raw.get("preprocessing", [])]


def test_shipped_recipe_differs_from_the_baseline_and_each_ablation_removes_one_piece():
    bench = load_benchmark("writer_shift")
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


def test_a_recipe_changes_the_shipped_run_and_not_the_baseline():
    """--recipe final-fit: "shipped" is the final fit; the baseline is the pre-issue-18 recipe still."""
    bench = load_benchmark("writer_shift")
    raw = read_toml(SHIPPED_REGISTRY)
    plain = resolve(SHIPPED_REGISTRY, source="crohme")
    final = resolve(SHIPPED_REGISTRY, source="crohme", recipe="final-fit")
    plan = bench.recipes(raw, final, ablation=False, plain_job=plain)
    assert resolve(SHIPPED_REGISTRY, raw=plan["shipped"], source="crohme") == final
    base = resolve(SHIPPED_REGISTRY, raw=plan["baseline (today)"], source="crohme").train
    assert (base.train_on_val, base.ensemble, base.epochs) == (False, 1, 10)
    assert "4 seeds averaged, trained on train + val" in bench.describe(final)


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_prints_its_headline_last(tmp_path):
    """A tiny run on the demo source (no CROHME needed): two recipes, two epochs, TTA 2, the shipped one
    with 2 seeds averaged."""
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--source", "demo", "--fraction", "0.25", "--epochs", "2",
         "--only", "baseline (today),shipped", "--tta", "2", "--seeds", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    names = [line.split(":")[0] for line in lines[-3:]]
    assert names == ["top-1 unseen writers", "macro recall unseen writers", "train minutes"]
    values = [float(line.split(":")[1]) for line in lines[-3:]]
    assert 0 <= values[0] <= 1 and 0 <= values[1] <= 1 and values[2] > 0
    assert "shipped, seed 0 + TTA 2" in out.stdout and "baseline (today)" in out.stdout
    assert "shipped, mean of 2 seeds" in out.stdout and "shipped, 2 seeds averaged" in out.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["baseline--today", "shipped"]
    assert sorted(p.name for p in (tmp_path / "runs" / "shipped").iterdir()) == ["seed-0", "seed-1"]


def _row(top1, recall, minutes=10.0):
    return {"top1": top1, "macro_recall": recall, "macro_f1": recall, "minutes": minutes, "epochs": 30}


def test_report_headline_is_the_averaged_seeds_and_the_ablation_is_against_one_model(capsys):
    bench = load_benchmark("writer_shift")
    results = {"baseline (today)": _row(0.90, 0.78), "shipped, seed 0": _row(0.94, 0.85),
               "shipped, seed 1": _row(0.93, 0.84), "shipped, 2 seeds averaged": _row(0.95, 0.86, 20.0),
               "without class weights": _row(0.935, 0.80)}
    bench.report(results, 100, Path("runs"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-3:] == ["top-1 unseen writers: 0.950", "macro recall unseen writers: 0.860", "train minutes: 20.0"]
    (ablation,) = [x for x in lines if x.strip().startswith("class weights")]
    assert "top-1 +0.50" in ablation and "macro recall +5.00" in ablation  # seed 0 minus the variant

    bench.report({"shipped": _row(0.94, 0.85)}, 100, Path("runs"))
    assert capsys.readouterr().out.strip().splitlines()[-3:][0] == "top-1 unseen writers: 0.940"
