"""How much of the class weights to undo at inference (``train.undo_class_weights``), for runs already
trained: chosen on the validation side, read on the test side.

Training with ``class_weights`` raises the rare classes; ``undo_class_weights = s`` saves a
``ClassPrior`` that shifts each class's log-probability by ``-s * log(weight)`` (centred), so
``s = 1`` returns predictions to the training frequencies (best top-1) and ``s = 0`` keeps
the weighted model (best macro recall). Training does not depend on ``s``, so every
strength can be scored from one trained run: the saved shift is linear in ``s``, and
``softmax(log q + (s / s_saved - 1) * shift_saved)`` is what the run would predict had
it been trained with ``s``. This script does that for each ``--strengths`` value on the
run's own recorded split (its hash checked), on the val and the test side.

Several runs, or an ensemble run (its members), are averaged as ``mathsym-zoo ensemble``
averages them (the mean of the members' probabilities, each with its own prior).
Baseline: the strength the runs were saved with. Headline lines last: the strength with
the highest val top-1 (ties: the higher val macro recall), then its test scores and the
saved strength's, one per line::

    python benchmarks/class_prior.py RUN [RUN ...] [--strengths 0.6 0.8 1.0]

A script, not an ``evaluate`` option: a saved model carries one strength, and what the
tool scores is what it saves; pick a value here, then train with it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STRENGTHS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
SIDES = ("val", "test")


def restrength(probs: np.ndarray, shift: np.ndarray, saved: float, strength: float) -> np.ndarray:
    """Probabilities saved with prior strength ``saved`` (log-shift ``shift``), as at ``strength``."""
    logits = np.log(np.maximum(probs, 1e-30)) + (strength / saved - 1.0) * np.asarray(shift)[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def member_runs(paths):
    """The runs named (an ensemble run: its members), checked to average cleanly."""
    from mathsym_zoo.ensemble import check_members, members_of
    from mathsym_zoo.errors import ConfigError
    from mathsym_zoo.runs import Run

    runs = [member for path in paths for member in members_of(Run.open(path))]
    check_members(runs)
    for run in runs:
        if "val" in run.fit_sides:  # the strength is picked on val: it must be held out
            raise ConfigError(f"{run.path}: trained on the val side too (train.train_on_val), so val cannot pick "
                              "the strength; use runs trained on the train side only")
    return runs


def saved_strength(run) -> float:
    """The ``undo_class_weights`` the run was trained (and saved) with; 0 when none."""
    return float(((run.info.get("job") or {}).get("train") or {}).get("undo_class_weights") or 0)


def saved_prior(run, model) -> tuple[float, np.ndarray]:
    """``(strength, shift)`` of the run's saved ``ClassPrior``; an error when it has none."""
    from mathsym_zoo.errors import ConfigError

    strength = saved_strength(run)
    layers = [layer for layer in model.layers if type(layer).__name__ == "ClassPrior"]
    if not strength or not layers:
        raise ConfigError(f"{run.path}: saved without a class prior (train.undo_class_weights = 0, or no "
                          "class_weights); there is no strength to vary. Train with class_weights = true and "
                          "undo_class_weights > 0")
    return strength, np.asarray(layers[0].shift, np.float64)


def member_outputs(run, dataset, split) -> dict:
    """One run's saved prior and its probabilities on each side."""
    from mathsym_zoo.inference import CompiledModel

    model = run.load_model()
    strength, shift = saved_prior(run, model)
    compiled = CompiledModel(model)
    probs = {side: compiled.predict(dataset.images, np.asarray(split.indices[side], np.int64), 256)[0]
             for side in SIDES}
    return {"strength": strength, "shift": shift, "probs": probs}


def scores(outputs: list[dict], labels: dict, class_names, strength: float) -> dict:
    """Val and test top-1 and macro recall of the members' mean at ``strength``."""
    from mathsym_zoo import metrics as M

    out = {}
    for side in SIDES:
        mean = np.mean([restrength(o["probs"][side], o["shift"], o["strength"], strength) for o in outputs], axis=0)
        s = M.summarize(labels[side], mean, class_names, top_k=(1,), pairs=0)
        out[side] = (s["top1"], s["balanced_accuracy"])
    return out


def chosen(table: dict[float, dict]) -> float:
    """The strength with the best val top-1, ties broken by val macro recall."""
    return max(table, key=lambda s: (round(table[s]["val"][0], 6), table[s]["val"][1]))


def analyse(runs, strengths, *, job=None, dataset=None) -> dict[float, dict]:
    """``{strength: {"val": (top-1, macro recall), "test": ...}}`` of ``runs`` averaged, on their
    recorded split; the saved strengths are always among the rows."""
    dataset, split = runs[0].training_data(job, dataset=dataset)
    outputs = [member_outputs(run, dataset, split) for run in runs]
    labels = {side: np.asarray(dataset.labels[np.asarray(split.indices[side], np.int64)]) for side in SIDES}
    strengths = sorted(set(strengths) | {o["strength"] for o in outputs})
    return {s: scores(outputs, labels, runs[0].class_names, s) for s in strengths}


def main(argv=None) -> dict[float, dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="finished run folders on one split (or an ensemble run)")
    ap.add_argument("--strengths", type=float, nargs="+", default=list(STRENGTHS))
    args = ap.parse_args(argv)
    runs = member_runs(args.runs)
    table = analyse(runs, args.strengths)
    base = saved_strength(runs[0])
    print(f"{len(runs)} run(s), split {runs[0].split_hash[:12]}, saved with strength {base:g}")
    print(f"{'strength':>8}  {'val top-1':>9}  {'val m.rec':>9}  {'test top-1':>10}  {'test m.rec':>10}")
    for s, row in table.items():
        print(f"{s:8.2f}  {100 * row['val'][0]:9.2f}  {100 * row['val'][1]:9.2f}  "
              f"{100 * row['test'][0]:10.2f}  {100 * row['test'][1]:10.2f}")
    best = chosen(table)
    print(f"chosen on val: {best:g}")
    print(f"test top-1 at chosen: {table[best]['test'][0]:.4f}")
    print(f"test macro recall at chosen: {table[best]['test'][1]:.4f}")
    print(f"test top-1 as saved ({base:g}): {table[base]['test'][0]:.4f}")
    print(f"test macro recall as saved ({base:g}): {table[base]['test'][1]:.4f}")
    return table


if __name__ == "__main__":
    from mathsym_zoo.errors import ZooError

    try:
        main()
    except ZooError as exc:  # a run that can't be scored: say why in one line, no traceback
        raise SystemExit(f"error: {exc}") from None
