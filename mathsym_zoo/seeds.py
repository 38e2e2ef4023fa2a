"""Multi-seed comparisons: one model trained with several seeds on the same split, its scores as a spread.

``compare --seeds N`` trains every model N times (``train.seed`` = base + i) on
one split. Each seed's leaderboard is an ordinary one (:func:`compare.leaderboard`);
:func:`spread_rows` turns them into one row per model with the mean, sample
standard deviation, minimum and maximum of every score, and McNemar's paired
test against the best model run seed by seed (best: the highest mean top-1)
and summarised as "k/N seeds p < 0.05". One seed's luck then cannot decide "best".
The row's ``top1_ci95_low``/``_high`` are the envelope of the seeds' Wilson intervals,
and ``significant_vs_best`` holds only when the model is worse in every seed.
:func:`seed_ensemble_scores` scores each model's seeds averaged (the mean of their test
probabilities): what ``mathsym-zoo ensemble`` would predict, without building the model.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import metrics as M

#: Scores and costs summarised over seeds (each gets ``_sd``, ``_min`` and ``_max`` columns beside its mean).
SPREAD_KEYS = ("top1", "top5", "macro_f1", "balanced_accuracy", "train_time_s", "train_images_per_s", "epochs",
               "latency_ms_p50", "latency_ms_p95", "batch_images_per_s")
#: results.csv columns of a multi-seed comparison, in order.
SPREAD_CSV_COLUMNS = (("rank", "model", "architecture", "seeds", "n_test")
                      + tuple(f"{k}{s}" for k in SPREAD_KEYS for s in ("", "_sd", "_min", "_max"))
                      + ("is_best", "vs_best_seeds", "seeds_significantly_worse", "seeds_significantly_better",
                         "mcnemar_p_max", "top1_ci95_low", "top1_ci95_high", "num_classes", "params", "macs", "flops", "split_hash", "dataset_key", "source",
                         "source_type", "source_fingerprint", "run_dir"))


def seeded(job, k: int):
    """``job`` with ``train.seed`` = its seed + ``k`` (the split, with its own seed, stays the same)."""
    return dataclasses.replace(job, train=job.train.model_copy(update={"seed": job.train.seed + k}))


def seed_run_dir(folder: Path, model: str, k: int, seeds: int) -> Path:
    """``runs/<model>`` for a one-seed comparison, ``runs/<model>/seed-<k>`` for several."""
    base = Path(folder) / "runs" / model
    return base if seeds == 1 else base / f"seed-{k}"


def spread(values: Sequence[Any]) -> dict[str, float | None]:
    """Mean, sample sd (0 for one value), min and max of the finite numbers in ``values``."""
    xs = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    if not xs:
        return {"": None, "_sd": None, "_min": None, "_max": None}
    return {"": statistics.fmean(xs), "_sd": statistics.stdev(xs) if len(xs) > 1 else 0.0, "_min": min(xs),
            "_max": max(xs)}


def _extreme(pick, values: Sequence[Any]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return pick(xs) if xs else None


def _paired(best_evals: list, other_evals: list, alpha: float) -> dict[str, Any]:
    """McNemar of ``other`` against ``best`` seed by seed, and the count of significant seeds."""
    tests = []
    for be, oe in zip(best_evals, other_evals):
        _, ib, io = np.intersect1d(be.indices, oe.indices, return_indices=True)  # the images both scored
        tests.append(M.mcnemar(be.correct[ib], oe.correct[io]))
    worse = sum(t.significant(alpha) and t.b > t.c for t in tests)
    better = sum(t.significant(alpha) and t.c > t.b for t in tests)
    n = len(tests)
    text = f"{worse}/{n} seeds worse, p<{alpha:g}" + (f"; {better}/{n} better" if better else "")
    p_max = max(t.p_value for t in tests)
    # For the one-seed readers (verdict, figures): "significantly worse" only when it is so in every seed.
    return {"vs_best_seeds": text, "seeds_significantly_worse": worse, "seeds_significantly_better": better,
            "mcnemar_p_values": [t.p_value for t in tests], "mcnemar_p_max": p_max, "mcnemar_p": p_max,
            "significant_vs_best": worse == n}


def spread_rows(seed_rows: list[list[dict[str, Any]]], evaluations: dict[str, list], *,
                alpha: float = 0.05) -> list[dict[str, Any]]:
    """One row per model over its seeds, best (highest mean top-1, then macro-F1, then name) first.

    ``seed_rows[k]`` is seed k's leaderboard; ``evaluations[model][k]`` its Evaluation.
    """
    by_model: dict[str, list[dict[str, Any]]] = {}
    for rows in seed_rows:
        for r in rows:
            by_model.setdefault(r["model"], []).append(r)
    out = []
    for name, rows in by_model.items():
        row: dict[str, Any] = {"model": name, "seeds": len(rows), "n_test": rows[0].get("n_test"),
                               "architecture": rows[0].get("architecture"), "run_dir": rows[0].get("run_dir"),
                               "run_dirs": [r.get("run_dir") for r in rows], "num_classes": rows[0].get("num_classes"),
                               **{k: rows[0].get(k) for k in ("params", "macs", "flops")}}
        for key in SPREAD_KEYS:
            row.update({f"{key}{s}": v for s, v in spread([r.get(key) for r in rows]).items()})
        # The envelope of the seeds' Wilson intervals: what one-seed readers (chance check, figure) take as the CI.
        row["top1_ci95_low"] = _extreme(min, [r.get("top1_ci95_low") for r in rows])
        row["top1_ci95_high"] = _extreme(max, [r.get("top1_ci95_high") for r in rows])
        out.append(row)
    out.sort(key=lambda r: (-(r["top1"] or 0), -(r["macro_f1"] or 0), r["model"]))
    for rank, row in enumerate(out, 1):
        row["rank"], row["is_best"] = rank, rank == 1
        if rank > 1:
            row.update(_paired(evaluations[out[0]["model"]], evaluations[row["model"]], alpha))
        else:
            row.update(vs_best_seeds="best", seeds_significantly_worse=None, seeds_significantly_better=None,
                       mcnemar_p_values=[], mcnemar_p_max=None, mcnemar_p=None, significant_vs_best=None)
    return out


def seed_ensemble_scores(evaluations: Sequence[Any]) -> dict[str, Any]:
    """Scores of the mean of several evaluations' probabilities on the images all of them scored."""
    common = evaluations[0].indices
    for e in evaluations[1:]:
        common = np.intersect1d(common, e.indices)
    probs, y_true = [], None
    for e in evaluations:
        rows = np.intersect1d(common, e.indices, return_indices=True)[2]  # e's rows, in the order of common
        probs.append(e.probs[rows])
        y_true = e.y_true[rows]
    summary = M.summarize(y_true, np.mean(probs, axis=0), evaluations[0].class_names)
    return {"members": len(evaluations), "n_test": int(len(common)), "top1": summary["top1"],
            "top5": summary.get("top5"), "macro_f1": summary["macro_f1"],
            "balanced_accuracy": summary["balanced_accuracy"]}
