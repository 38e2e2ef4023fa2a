"""Accuracy on writers never seen: the shipped training recipe against today's (the baseline).

Trains one model (default ``mobilenet-head``) on the writer-disjoint split of
``crohme_bench.zip`` (the registry's ``crohme`` source: groups are writers, so no
writer of the test side is seen in training) with

- **baseline**: the recipe shipped before issue 18 (adam 1e-3, constant rate, no
  augmentation, no class weights, no label smoothing, no EMA, 10 epochs);
- **shipped**: the registry's ``[train]`` (with the source's own ``[sources.NAME.train]``,
  and ``[recipes.NAME]`` with ``--recipe NAME``, e.g. ``final-fit``) and online
  ``[[preprocessing]]`` steps;
- **ablation**: the shipped recipe without each piece that differs from the
  baseline (leave one out: optimizer and weight decay, schedule, class weights,
  undoing them at inference, label smoothing, EMA, the longer training, each online
  augmentation step), every other setting as shipped;
- **TTA**: the shipped model evaluated with ``--tta N`` (no training);
- **seeds** (``--seeds N``): the shipped recipe trained N times (``train.seed`` + 0..N-1),
  each seed's scores, their mean, and the seeds averaged into one prediction (the
  mean of their probabilities, what ``mathsym-zoo ensemble`` saves as one model),
  whose training minutes are the sum of the seeds',

all in one run, and prints top-1, macro recall (balanced accuracy) and training
minutes of each, on the test side (writers never seen)::

    python benchmarks/writer_shift.py [--quick] [--model mobilenet-head] [--no-ablation] [--tta 8] [--seeds 3]
    python benchmarks/writer_shift.py --recipe final-fit --only shipped --no-ablation --tta 1

``--quick`` checks that it works: a third of the images (all writers), 3 epochs.
The last three lines are the shipped recipe's headline figures (with ``--seeds N``, of its
N seeds averaged; the ablation and TTA then use seed 0)::

    top-1 unseen writers: 0.951
    macro recall unseen writers: 0.862
    train minutes: 41
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The recipe of the registry before issue 18 ("today's recipe"); every other [train] key as shipped.
BASELINE_TRAIN = {"optimizer": "adam", "learning_rate": 1e-3, "weight_decay": 0.0, "lr_schedule": "constant",
                  "class_weights": False, "undo_class_weights": False, "label_smoothing": 0.0, "ema": 0.0,
                  "epochs": 10, "early_stopping_patience": 3}
#: Recipe pieces for the leave-one-out ablation: the [train] keys that make each one.
PIECES = {
    "optimizer / weight decay": ("optimizer", "weight_decay"),
    "lr schedule": ("lr_schedule", "warmup_epochs", "learning_rate"),
    "class weights": ("class_weights", "class_weight_power", "undo_class_weights"),
    "undoing class weights at inference": ("undo_class_weights",),
    "longer training": ("epochs",),
    "label smoothing": ("label_smoothing",),
    "EMA of weights": ("ema",),
}


def online_steps(job) -> list[int]:
    """Indexes of the job's online preprocessing steps (augmentation layers inside the model)."""
    from mathsym_zoo.components import is_offline

    return [i for i, step in enumerate(job.build_preprocessors()) if not is_offline(step)]


def flat_recipe(raw: dict, job) -> dict:
    """``raw`` with the job's resolved [train] (the source's own [sources.NAME.train] folded in), so
    the baseline and each variant change the settings the shipped recipe really trains with."""
    raw = copy.deepcopy(raw)
    for table in raw.get("sources", {}).values():
        if isinstance(table, dict):
            table.pop("train", None)
    raw["train"] = job.train.model_dump(mode="json")
    return raw


def recipes(raw: dict, shipped_job, ablation: bool, plain_job=None) -> dict[str, dict]:
    """Name -> raw registry of each recipe to train. ``plain_job``: the shipped job without
    ``--recipe`` (default ``shipped_job``), which the baseline changes: a final fit's
    ``train_on_val`` is not part of the recipe the baseline stands for."""
    base = flat_recipe(raw, plain_job or shipped_job)
    raw = flat_recipe(raw, shipped_job)
    online = online_steps(shipped_job)
    base["train"].update(BASELINE_TRAIN)
    base["preprocessing"] = [p for i, p in enumerate(raw.get("preprocessing", [])) if i not in online]
    out = {"baseline (today)": base, "shipped": raw}
    if not ablation:
        return out
    resolved = shipped_job.train.model_dump()
    for piece, keys in PIECES.items():
        if any(resolved[k] != BASELINE_TRAIN.get(k, resolved[k]) for k in keys):
            variant = copy.deepcopy(raw)
            variant["train"].update({k: BASELINE_TRAIN[k] for k in keys if k in BASELINE_TRAIN})
            out[f"without {piece}"] = variant
    for i in online:
        variant = copy.deepcopy(raw)
        step = variant["preprocessing"].pop(i)
        out[f"without {step['type']}"] = variant
    return out


def subset(dataset, fraction: float, folder: Path):
    """``fraction`` of the images (every writer keeps some), as an in-memory Dataset with its own split."""
    from mathsym_zoo.data.dataset import Dataset

    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(dataset), size=int(len(dataset) * fraction), replace=False))
    return Dataset.from_arrays(np.asarray(dataset.images[rows]), dataset.labels[rows], dataset.class_names,
                               paths=dataset.paths[rows], groups=dataset.groups[rows], hashes=dataset.hashes[rows],
                               path=folder / "subset", key=f"{dataset.key}-subset-{fraction:g}",
                               source=dataset.source, preprocessing=dataset.preprocessing)


def writer_check(dataset, split) -> str:
    """Groups on each side and how many the test side shares with training (0 = writer-disjoint)."""
    groups = {side: set(dataset.groups[idx]) - {""} for side, idx in split.indices.items()}
    shared = len(groups["test"] & (groups["train"] | groups["val"]))
    text = (f"groups (writers): train {len(groups['train'])}, val {len(groups['val'])}, test {len(groups['test'])}; "
            f"test groups also in train/val: {shared}")
    return text + ("" if shared == 0 and groups["test"] else "  <-- NOT writer-disjoint: check the source's group_file")


def evaluation(run_dir: Path, dataset, test: np.ndarray, tta: int = 1):
    from mathsym_zoo.evaluate import evaluate_model, load_model

    return evaluate_model(load_model(run_dir), dataset, test, latency_repeats=1, tta=tta)


def scores(m: dict) -> dict:
    return {"top1": m["top1"], "macro_recall": m["balanced_accuracy"], "macro_f1": m["macro_f1"]}


def score(run_dir: Path, dataset, test: np.ndarray, tta: int = 1) -> dict:
    return scores(evaluation(run_dir, dataset, test, tta).metrics)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet-head")
    ap.add_argument("--registry", default=None, help="default: ./registry.toml, else the shipped one")
    ap.add_argument("--source", default="crohme")
    ap.add_argument("--recipe", default=None, help="a [recipes.NAME] of the registry for the shipped recipe "
                    "(e.g. final-fit); the baseline stays the recipe before issue 18")
    ap.add_argument("--quick", action="store_true", help="a third of the images, 3 epochs: checks that it works")
    ap.add_argument("--fraction", type=float, default=None, help="share of the images to use (default 1, quick 1/3)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of every recipe (default: each its own; quick 3)")
    ap.add_argument("--no-ablation", dest="ablation", action="store_false")
    ap.add_argument("--only", default=None, help="comma-separated recipe names to train (e.g. 'baseline (today),shipped')")
    ap.add_argument("--tta", type=int, default=8, help="also score the shipped model with N test-time variants (1: off)")
    ap.add_argument("--seeds", type=int, default=1, help="train the shipped recipe with N seeds and average them")
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder, kept)")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from mathsym_zoo.data.cache import load_dataset
    from mathsym_zoo.data.split import load_split
    from mathsym_zoo.registry import find_registry, read_toml, resolve
    from mathsym_zoo.training import train_model

    fraction = args.fraction or (1 / 3 if args.quick else 1.0)
    epochs = args.epochs or (3 if args.quick else None)
    out = Path(args.out or tempfile.mkdtemp(prefix="writer_shift-"))
    reg_path = find_registry(args.registry).resolve()
    raw = read_toml(reg_path)
    plain = resolve(reg_path, raw=raw, source=args.source)
    shipped = resolve(reg_path, raw=raw, source=args.source, recipe=args.recipe) if args.recipe else plain
    dataset = load_dataset(shipped, progress=False)
    if fraction < 1:
        dataset = subset(dataset, fraction, out)
    split = load_split(dataset, shipped.split)
    test = np.asarray(split.indices["test"], dtype=np.int64)
    print(f"{args.source}: {len(dataset)} images, split {split.hash[:12]}: {split.sizes()}")
    print(writer_check(dataset, split))
    plan = recipes(raw, shipped, args.ablation, plain)
    if args.only:
        plan = {k: v for k, v in plan.items() if k in args.only.split(",")}
    results: dict[str, dict] = {}
    for name, recipe_raw in plan.items():
        recipe_raw = copy.deepcopy(recipe_raw)
        recipe_raw["train"]["runs_dir"] = str(out / "runs")
        if epochs:
            recipe_raw["train"]["epochs"] = epochs  # warm-up is capped at half the epochs
        job = resolve(reg_path, raw=recipe_raw, source=args.source)
        print(f"training {name}: {describe(job)}", flush=True)
        if name == "shipped" and args.seeds > 1:
            results.update(train_seeds(job, args, dataset, test, out))
            continue
        result = train_model(job, args.model, run_dir=out / "runs" / slug(name), dataset=dataset)
        results[name] = {**score(result.run_dir, dataset, test), **cost(result)}
        print(f"  {line(name, results[name])}", flush=True)
        if name == "shipped" and args.tta > 1:
            results[f"shipped + TTA {args.tta}"] = {**score(result.run_dir, dataset, test, args.tta), **cost(result)}
    report(results, len(test), out)
    return 0


def cost(result) -> dict:
    return {"minutes": float(result.metrics["train_seconds"]) / 60, "epochs": result.epochs}


def train_seeds(job, args, dataset, test: np.ndarray, out: Path) -> dict[str, dict]:
    """The shipped recipe with ``args.seeds`` seeds: each seed's row (the first also with TTA), their
    mean, and the seeds averaged (the headline), whose minutes are the sum of the seeds'."""
    from mathsym_zoo.seeds import seed_ensemble_scores, seeded
    from mathsym_zoo.training import train_model

    rows, singles, evals = {}, [], []
    for k in range(args.seeds):
        result = train_model(seeded(job, k), args.model, run_dir=out / "runs" / "shipped" / f"seed-{k}",
                             dataset=dataset)
        evals.append(evaluation(result.run_dir, dataset, test))
        name = f"shipped, seed {job.train.seed + k}"
        rows[name] = {**scores(evals[-1].metrics), **cost(result)}
        singles.append(rows[name])
        print(f"  {line(name, rows[name])}", flush=True)
        if k == 0 and args.tta > 1:
            rows[f"{name} + TTA {args.tta}"] = {**score(result.run_dir, dataset, test, args.tta), **cost(result)}
    mean = {key: float(np.mean([r[key] for r in singles])) for key in ("top1", "macro_recall", "macro_f1", "minutes")}
    rows[f"shipped, mean of {args.seeds} seeds"] = {**mean, "epochs": singles[0]["epochs"]}
    name = f"shipped, {args.seeds} seeds averaged"
    rows[name] = {**scores(seed_ensemble_scores(evals)), "minutes": sum(r["minutes"] for r in singles),
                  "epochs": f"{args.seeds} x {singles[0]['epochs']}"}
    print(f"  {line(name, rows[name])}", flush=True)
    return rows


def describe(job) -> str:
    t = job.train
    steps = [p.type for p in job.preprocessing]
    return (f"{t.optimizer} lr {t.learning_rate:g} wd {t.weight_decay:g}, {t.lr_schedule}, epochs {t.epochs}, "
            f"class weights {t.class_weights and t.class_weight_power}"
            f"{f' (undone at inference: {t.undo_class_weights:g})' if t.undo_class_weights else ''}, "
            f"smoothing {t.label_smoothing:g}, "
            f"ema {t.ema:g}, steps {'+'.join(steps)}"
            f"{f', {t.ensemble} seeds averaged' if t.ensemble > 1 else ''}"
            f"{', trained on train + val' if t.train_on_val else ''}")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def line(name: str, r: dict) -> str:
    return (f"{name:<34} top-1 {r['top1']:.4f}  macro recall {r['macro_recall']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
            f"train {r['minutes']:.1f} min ({r['epochs']} epochs)")


def report(results: dict[str, dict], n_test: int, out: Path) -> None:
    print(f"\nrecipes on {n_test} test images of writers never seen (runs in {out}):")
    for name, r in results.items():
        print("  " + line(name, r))
    single = results.get("shipped") or next((r for k, r in results.items() if k.startswith("shipped, seed ")
                                             and "TTA" not in k), None)
    shipped = next((r for k, r in results.items() if k.endswith("seeds averaged")), single)
    if shipped is None:
        return
    ablated = {k: v for k, v in results.items() if k.startswith("without ")}
    if ablated:
        print("\nablation (what each piece adds: one shipped model minus the recipe without it, in points):")
        for name, r in ablated.items():
            print(f"  {name[len('without '):]:<30} top-1 {100 * (single['top1'] - r['top1']):+.2f}  "
                  f"macro recall {100 * (single['macro_recall'] - r['macro_recall']):+.2f}")
    base = results.get("baseline (today)")
    if base is not None:
        print(f"\nratio top-1 shipped/baseline: {shipped['top1'] / base['top1']:.3f}")
        print(f"ratio macro recall shipped/baseline: {shipped['macro_recall'] / base['macro_recall']:.3f}")
    print(f"top-1 unseen writers: {shipped['top1']:.3f}")
    print(f"macro recall unseen writers: {shipped['macro_recall']:.3f}")
    print(f"train minutes: {shipped['minutes']:.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
