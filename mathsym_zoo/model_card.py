"""The model card of a run: what the model is, what it was trained on and how, how well
it does (with intervals and calibration), how fast, on what, and where it should not be used.

Built from the run's record, final metrics, history and evaluations; written by
:meth:`mathsym_zoo.runs.Run.write_model_card` as ``MODEL_CARD.md`` (from the
``model_card.md.j2`` template) and ``model_card.json`` (the same fields). Training
writes it when a run finishes; ``evaluate`` and ``compare`` refresh it with their
scores. TensorFlow-free unless a Keras model is passed in to count its parameters.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .machine import hardware
from .registry import recipe_diff

CARD_FORMAT = 1
SIDES = ("train", "val", "test")
#: Above this expected calibration error the card warns against reading probabilities literally.
ECE_WARN = 0.05


# -- pieces ------------------------------------------------------------------------------


def class_counts(class_names, labels, split) -> list[dict[str, Any]]:
    """Images per class on each side of ``split`` (labels index ``class_names``)."""
    from .report import latex_for

    labels = np.asarray(labels)
    k = len(class_names)
    per_side = {side: np.bincount(labels[np.asarray(split.indices.get(side, []), dtype=np.int64)], minlength=k)
                for side in SIDES}
    return [{"name": str(n), "latex": latex_for(str(n)), **{s: int(per_side[s][i]) for s in SIDES}}
            for i, n in enumerate(class_names)]


def _wilson(accuracy, n) -> list[float] | None:
    from .metrics import wilson_interval

    if accuracy is None or not n:
        return None
    return list(wilson_interval(int(round(float(accuracy) * int(n))), int(n)))


def _evaluation_scores(ev, source: str) -> dict[str, Any]:
    m, t = ev.metrics, ev.timing
    cal = m if "ece" in m else _calibration(ev)
    return {"source": source, "side": ev.side, "from": "evaluate", "training_source": ev.training_source,
            "split_hash": ev.split_hash, "n": m["n"], "top1": m["top1"], "top1_ci95": list(m["top1_ci95"]),
            "top5": m.get("top5"), "macro_f1": m.get("macro_f1"), "balanced_accuracy": m.get("balanced_accuracy"),
            "nll": cal.get("nll"), "ece": cal.get("ece"), "ece_bins": cal.get("ece_bins"),
            "missing_images": int(sum(ev.missing.values())),
            "latency_ms_p50": t.get("latency_ms_p50"), "latency_ms_p95": t.get("latency_ms_p95"),
            "batch_images_per_s": t.get("batch_images_per_s"),
            "weakest_classes": [r for r in m.get("per_class", []) if r["support"]][:5],
            "confused_pairs": m.get("confused_pairs", [])[:3]}


def _calibration(ev) -> dict[str, Any]:
    from .metrics import calibration

    return calibration(ev.y_true, ev.probs) if len(ev.y_true) else {}


def _evaluations(run, fresh) -> list[tuple[str, Any]]:
    """``(source name, Evaluation)`` of every evaluation kept in the run, plus ``fresh``."""
    from .evaluate import Evaluation

    found: list[tuple[str, Any]] = []
    for folder in run.evaluations():
        if not Evaluation.exists(folder):
            continue
        ev = Evaluation.load(folder)
        found.append((folder.name[: -len(ev.side) - 1] or folder.name, ev))
    if fresh is not None:
        def key(e):
            return e.side, e.split_hash, e.metrics["n"], json.dumps(e.source, sort_keys=True, default=str)

        saved = [s for s, e in found if key(e) == key(fresh)]  # its folder names the source
        name = saved[0] if saved else (run.source_name if fresh.training_source else
                                       fresh.source.get("name") or "another source")
        found = [(s, e) for s, e in found if key(e) != key(fresh)] + [(str(name), fresh)]
    return found


def _training_scores(run, metrics: dict[str, Any], label_smoothing: float) -> list[dict[str, Any]]:
    """The held-out val/test scores ``train`` measured at the end (loss = NLL unless labels were smoothed)."""
    out = []
    for side in (s for s in ("val", "test") if s not in run.fit_sides):
        s = metrics.get(side) or {}
        if s.get("accuracy") is None:
            continue
        out.append({"source": run.source_name, "side": side, "from": "training", "training_source": True,
                    "split_hash": run.split_hash, "n": s.get("images"), "top1": s["accuracy"],
                    "top1_ci95": _wilson(s["accuracy"], s.get("images")), "top5": None, "macro_f1": None,
                    "balanced_accuracy": None, "nll": s.get("loss") if not label_smoothing else None, "ece": None})
    return out


def _is_own_test(score: dict[str, Any], run) -> bool:
    return (score["side"] == "test" and score.get("training_source") is not False
            and (not run.split_hash or score.get("split_hash") == run.split_hash))


# -- the card ------------------------------------------------------------------------------


def _model_part(run, model, evals, previous) -> dict[str, Any]:
    entry = run.info.get("model") or {}
    stats: dict[str, Any] = {}
    if model is not None:
        from .evaluate import model_stats

        stats = model_stats(model)
    elif evals:
        stats = dict(evals[-1][1].model_stats)
    elif previous:
        stats = {k: previous["model"].get(k) for k in ("parameters", "macs")}
        stats["params"] = stats.pop("parameters")
    return {"name": run.model_name, "architecture": run.architecture, "plugin": entry.get("plugin"),
            "hyperparameters": entry.get("params") or {}, "parameters": stats.get("params"),
            "macs": stats.get("macs"), "input_shape": list(run.input_shape or []),
            "preprocessing": run.preprocessing,
            "num_classes": len(run.class_names or ())}


def _data_part(run) -> dict[str, Any]:
    split = run.info.get("split") or {}
    return {"source_name": run.source_name, "source_type": ((run.info.get("job") or {}).get("source") or {}).get("type"),
            "source": run.source, "dataset_key": run.dataset_key, "split_hash": run.split_hash,
            "split_sizes": split.get("sizes"), "split_config": split.get("config")}


def _training_part(run, metrics: dict[str, Any]) -> dict[str, Any]:
    train = (run.info.get("job") or {}).get("train") or {}
    hist = run.history()
    return {"recipe_differs": recipe_diff(train), "settings": train, "epochs": metrics.get("epochs", len(hist)),
            "best_epoch": metrics.get("best_epoch"), "stopped_early": metrics.get("stopped_early"),
            "train_seconds": metrics.get("train_seconds"), "train_images_per_second": metrics.get("train_images_per_second"),
            "best_val_loss": min((r["val_loss"] for r in hist if r.get("val_loss") is not None), default=None),
            "parent": run.info.get("parent"), "resumed": run.info.get("resumed"),
            "determinism": run.info.get("determinism"), "ensemble": run.info.get("ensemble")}


def _own_test(scores: list[dict[str, Any]], run) -> dict[str, Any] | None:
    """The test-side evaluation on the run's own split (``evaluate`` beats ``train``'s numbers)."""
    own = [s for s in scores if _is_own_test(s, run)]
    return next((s for s in own if s["from"] == "evaluate"), own[0] if own else None)


def _speed_part(test: dict[str, Any] | None, fresh_test: bool, previous) -> dict[str, Any] | None:
    if not test or test.get("latency_ms_p50") is None:
        return None
    old = (previous or {}).get("speed") or {}
    return {"latency_ms_p50": test["latency_ms_p50"], "latency_ms_p95": test.get("latency_ms_p95"),
            "batch_images_per_s": test.get("batch_images_per_s"),
            "measured_on": hardware() if fresh_test else old.get("measured_on")}


def build_card(run, *, model=None, dataset=None, split=None, evaluation=None,
               at_training_end: bool = False) -> dict[str, Any]:
    """The model card's fields for ``run`` (see the module docstring).

    ``model``: the trained Keras model (counts its parameters and MACs);
    ``dataset``/``split``: the data it was trained on (class counts per side;
    otherwise the previous card's are kept); ``evaluation``: an Evaluation just
    made (its latency was measured on this machine).
    """
    previous = run.model_card()
    metrics = run.metrics()
    evals = _evaluations(run, evaluation)
    scores = [_evaluation_scores(e, s) for s, e in evals]
    smoothing = float(((run.info.get("job") or {}).get("train") or {}).get("label_smoothing") or 0.0)
    if not any(_is_own_test(s, run) for s in scores):
        scores += _training_scores(run, metrics, smoothing)
    test = _own_test(scores, run)
    classes = (previous or {}).get("classes") if split is None else None
    if classes is None and dataset is not None:
        split = split if split is not None else run.training_data(dataset=dataset)[1]  # hash-checked
        classes = class_counts(dataset.class_names, dataset.labels, split)
    card = {
        "format": CARD_FORMAT, "written": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "run": str(run.path), "status": run.status, "created": run.info.get("created"),
        "finished": run.info.get("finished"),
        "model": _model_part(run, model, evals, previous), "data": _data_part(run), "classes": classes,
        "training": _training_part(run, metrics), "scores": scores, "test": test,
        "speed": _speed_part(test, evaluation is not None and test is not None and test["from"] == "evaluate"
                             and evaluation.side == "test", previous),
        "hardware": {"training_devices": run.info.get("devices"),
                     "training_machine": hardware() if at_training_end else
                     ((previous or {}).get("hardware") or {}).get("training_machine"),
                     "versions": run.info.get("versions"), "git_revision": run.info.get("git_revision")},
    }
    card["intended_use"], card["limits"] = intended_use(card), known_limits(card)
    return card


# -- use and limits ---------------------------------------------------------------------------


def intended_use(card: dict[str, Any]) -> str:
    m = card["model"]
    shape = "x".join(str(d) for d in m["input_shape"]) or "?"
    steps = ", ".join(p.get("type", "?") for p in m["preprocessing"]) or "none"
    return (f"Classifying one isolated handwritten math symbol per image into one of its {m['num_classes']} classes "
            f"(listed below), for images prepared like its training data: {shape} uint8 (offline preprocessing: "
            f"{steps}). A baseline for research and teaching; not for decisions about people.")


def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}%"


def known_limits(card: dict[str, Any]) -> list[str]:
    """Plain sentences: what the data, the scores and the calibration say it cannot do."""
    data, test, k = card["data"], card["test"], card["model"]["num_classes"]
    out = []
    if data.get("source_type") == "demo":
        out.append("Trained on the synthetic `demo` source (stroke-font glyphs distorted per synthetic writer), "
                   "not on real handwriting: expect much lower accuracy on real images.")
    out.append("Trained on one-pixel strokes rendered from pen data into small boxes (the Kaggle/CROHME style); "
               "photos or scans of paper need other preprocessing (binarise, crop to the symbol, thin the strokes) "
               "before they look like its training images.")
    out.append("One symbol per image: it does not segment or read whole expressions.")
    out.append(f"It always answers with one of its {k} classes, also for an image of something else; "
               "check the probability.")
    if test is None:
        out.append("No test-side score yet: run `mathsym-zoo evaluate RUN` before relying on it.")
        return out
    lo = (test.get("top1_ci95") or [None])[0]
    if k and lo is not None and lo <= 1 / k:
        out.append(f"It does not beat chance on its test side: top-1 {_pct(test['top1'])}, 95% interval down to "
                   f"{_pct(lo)}, chance {_pct(1 / k)}.")
    if test.get("n") is not None and test["n"] < 1000:
        out.append(f"The test side holds only {test['n']} images: scores carry the wide intervals shown above.")
    if test.get("ece") is not None and test["ece"] > ECE_WARN:
        out.append(f"Its probabilities are not calibrated (ECE {_pct(test['ece'])} on test): do not read them as "
                   "likelihoods without recalibration.")
    weak = test.get("weakest_classes") or []
    if weak:
        out.append("Weakest classes on the test side (F1): " + ", ".join(f"`{r['class']}` {_pct(r['f1'])}"
                                                                         for r in weak) + ".")
    pairs = test.get("confused_pairs") or []
    if pairs:
        out.append("Most confused: " + ", ".join(f"`{p['a']}` as `{p['b']}` ({p['a_as_b']}x)" for p in pairs) + ".")
    return out


# -- writing ---------------------------------------------------------------------------------


def render_markdown(card: dict[str, Any]) -> str:
    """``MODEL_CARD.md`` from the card's fields (template ``model_card.md.j2``)."""
    from .report import fmt
    from .templating import render

    return render("model_card.md.j2", {"card": card, "fmt": fmt, "pct": _pct}, autoescape=False)


def write_model_card(run, *, model=None, dataset=None, split=None, evaluation=None, at_training_end: bool = False,
                     log: Callable[[str], None] | None = None) -> Path | None:
    """Build and write the run's model card. A card that cannot be built is reported
    (``log``, else a warning) and skipped: it must never fail a finished training."""
    if run.is_file_only or not run.is_run(run.path):
        return None  # a bare .keras file: no run folder to write into
    try:
        card = build_card(run, model=model, dataset=dataset, split=split, evaluation=evaluation,
                          at_training_end=at_training_end)
        run.write_model_card(card, render_markdown(card))
        return run.model_card_path
    except Exception as exc:  # the card is a summary of a run that already succeeded
        message = f"{run.path}: model card not written ({type(exc).__name__}: {exc})"
        log(f"warning: {message}") if log else warnings.warn(message, stacklevel=2)
        return None
