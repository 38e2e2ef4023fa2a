"""Leaderboard (rich table), the verdict, and the self-contained HTML report.

The HTML is rendered from the Jinja2 templates in ``mathsym_zoo/templates/``
(``report.html.j2``, ``report.css``, ``report.js``; autoescaped), so it can be
restyled without touching code (see :mod:`mathsym_zoo.templating`). It is one
file: figures (:mod:`mathsym_zoo.figures`) are embedded PNG ``data:`` URIs,
the only script sorts the per-class tables. Every model gets its own section:
calibration, confusions, per-class scores and misclassified images.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import figures as F
from .fileio import atomic_write_text
from .machine import hardware
from .registry import recipe_diff

#: Leaderboard columns: (key in a row, header, format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "#", "int"),
    ("model", "model", "str"),
    ("top1", "top-1", "pct"),
    ("top1_ci95", "95% CI (Wilson)", "ci"),
    ("vs_best", "vs #1 (McNemar)", "str"),
    ("top5", "top-5", "pct"),
    ("macro_f1", "macro-F1", "pct"),
    ("balanced_accuracy", "bal. acc", "pct"),
    ("nll", "NLL", "f3"),
    ("ece", "ECE", "pct"),
    ("params", "params", "count"),
    ("macs", "MACs", "count"),
    ("train_time_s", "train time", "dur"),
    ("train_images_per_s", "train img/s", "rate"),
    ("latency_ms_p50", "latency p50", "ms"),
    ("latency_ms_p95", "latency p95", "ms"),
    ("batch_images_per_s", "batch img/s", "rate"),
)

ALPHA = 0.05
REPORT_FILE = "report.html"


# -- formatting ----------------------------------------------------------------


def _missing(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def fmt(value, kind: str) -> str:
    """A cell as text; missing values are ``-``."""
    if kind == "ci":
        lo, hi = value if isinstance(value, (list, tuple)) else (None, None)
        return "-" if _missing(lo) or _missing(hi) else f"{100 * lo:.1f}-{100 * hi:.1f}"
    if _missing(value):
        return "-"
    if kind == "pct":
        return f"{100 * float(value):.2f}"
    if kind == "f3":
        return f"{float(value):.3f}"
    if kind == "int":
        return str(int(value))
    if kind == "count":
        v = float(value)
        for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if v >= div:
                return f"{v / div:.3g}{unit}"
        return str(int(v))
    if kind == "dur":
        s = float(value)
        return f"{s:.1f}s" if s < 120 else f"{int(s // 60)}m{int(s % 60):02d}s"
    if kind == "rate":
        return f"{float(value):,.0f}"
    if kind == "ms":
        return f"{float(value):.2f} ms"
    return str(value)


def _p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def latex_for(label: str) -> str:
    """A class name's LaTeX source (``alpha`` -> ``\\alpha``; unknown names as they are)."""
    from .labels import latex_for as table  # the one label table (draw page, predict, reports)

    return table(str(label))


# -- the verdict ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the leaderboard allows one to say.

    ``clear``: the leader beats chance and is significantly better than every
    other model (McNemar, :data:`ALPHA`); only then is it called "best".
    """

    leader: str | None
    clear: bool
    text: str
    chance: float | None  # 1 / number of classes, when the rows say


def _chance(row: dict[str, Any]) -> float | None:
    k = row.get("num_classes")
    return 1.0 / int(k) if not _missing(k) and int(k) > 0 else None


def _beats_chance(row: dict[str, Any]) -> bool | None:
    chance, lo = _chance(row), row.get("top1_ci95_low")
    return None if chance is None or _missing(lo) else float(lo) > chance


def _names(rows) -> str:
    names = [str(r["model"]) for r in rows]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def verdict(rows: Sequence[dict[str, Any]], alpha: float = ALPHA) -> Verdict:
    """Say plainly whether a model wins: none beats chance (top-1 interval reaching
    1/classes), the leader is not significantly better than some model, or it is."""
    if not rows:
        return Verdict(None, False, "No model was scored.", None)
    lead = rows[0]
    name, chance = str(lead["model"]), _chance(lead)
    chance_text = f"{100 * chance:.1f}%, 1 in {round(1 / chance)} classes" if chance else ""
    losers = [r for r in rows if _beats_chance(r) is False]
    if _beats_chance(lead) is False:
        subject = "No model beats" if len(rows) > 1 else f"{name} does not beat"
        return Verdict(name, False, f"{subject} chance ({chance_text}): every top-1 95% interval reaches it. "
                                    "Train longer or on more data before reading anything into the ranking.", chance)
    below = f" {_names(losers)} {'does' if len(losers) == 1 else 'do'} not beat chance." if losers else ""
    tied = [r for r in rows[1:] if r.get("significant_vs_best") is False]
    if len(rows) == 1:
        above = (f"{name} beats chance ({chance_text}): its top-1 95% interval starts at "
                 f"{100 * float(lead['top1_ci95_low']):.1f}%." if chance else f"{name} is the only model scored.")
        return Verdict(name, True, above, chance)
    if tied:
        return Verdict(name, False, f"No clear best: {name} leads, but is not significantly better than "
                                    f"{_names(tied)} (McNemar p >= {alpha:g} on the same images); the difference "
                                    f"could be chance.{below}", chance)
    return Verdict(name, True, f"{name} is the best: significantly better than every other model (McNemar "
                               f"p < {alpha:g} on the same images).{below}", chance)


def significance_text(row: dict[str, Any], clear: bool = True) -> str:
    """``best`` (``leader`` when no model clearly wins), or the McNemar p-value
    against it marked ``*`` (significantly worse at 5%) or ``n.s.``."""
    if row.get("is_best"):
        return "best" if clear else "leader"
    p = row.get("mcnemar_p")
    if _missing(p):
        return "-"
    return f"{_p_text(float(p))} {'*' if row.get('significant_vs_best') else 'n.s.'}"


def _cell(row: dict[str, Any], key: str, kind: str, clear: bool = True) -> str:
    if key == "top1_ci95":
        return fmt((row.get("top1_ci95_low"), row.get("top1_ci95_high")), "ci")
    if key == "vs_best":
        return significance_text(row, clear)
    return fmt(row.get(key), kind)


# -- multi-seed spread (compare --seeds N) -----------------------------------------

#: Columns of a multi-seed comparison (rows from :func:`mathsym_zoo.seeds.spread_rows`).
SPREAD_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "#", "int"), ("model", "model", "str"), ("seeds", "seeds", "int"),
    ("top1", "top-1", "pct"), ("vs_best_seeds", "vs #1 (McNemar per seed)", "str"),
    ("macro_f1", "macro-F1", "pct"), ("balanced_accuracy", "bal. acc", "pct"), ("top5", "top-5", "pct"),
    ("train_time_s", "train time", "dur"),
)
SPREAD_CAPTION = ("Scores in %, mean ± sd (min-max) over seeds, each seed on the same test images; vs #1: in how "
                  f"many seeds McNemar's paired test finds the model worse than the leader (highest mean top-1) "
                  f"at {ALPHA:g}.")


def is_spread(rows: Sequence[dict[str, Any]]) -> bool:
    """Rows of a multi-seed comparison (they carry a standard deviation per score)."""
    return bool(rows) and "top1_sd" in rows[0]


def spread_cell(row: dict[str, Any], key: str, kind: str, ranges: bool = True) -> str:
    """``mean ± sd (min-max)`` for a score (without ``ranges``: ``mean ± sd``), ``mean ± sd`` for a cost,
    the value itself otherwise."""
    if kind not in ("pct", "dur") or _missing(row.get(key)):
        return fmt(row.get(key), kind)
    sd = "" if _missing(row.get(f"{key}_sd")) else f" ± {fmt(row[f'{key}_sd'], kind)}"
    if kind == "dur" or not ranges:
        return fmt(row[key], kind) + sd
    return f"{fmt(row[key], kind)}{sd} ({fmt(row.get(f'{key}_min'), kind)}-{fmt(row.get(f'{key}_max'), kind)})"


#: The narrow (80-column) form of the multi-seed leaderboard: two tables, mean ± sd without min-max.
_SPREAD_NARROW = (("rank", "model", "seeds", "top1", "vs_best_seeds", "balanced_accuracy"),
                  ("model", "macro_f1", "top5", "train_time_s"))
_SPREAD_SHORT = {"vs_best_seeds": "vs #1", "balanced_accuracy": "bal.acc", "train_time_s": "train"}


def spread_table(rows: Sequence[dict[str, Any]], title: str = "spread over seeds", *, width: int | None = None):
    """A multi-seed comparison as rich tables (the terminal's leaderboard): one table with min-max
    when ``width`` allows (>= 150 columns), else two that fit 80 columns, min-max left to the
    report and ``results-seeds.csv``."""
    from rich.console import Group

    if width is None or width >= 150:
        return _spread_part(rows, SPREAD_COLUMNS, title, SPREAD_CAPTION, ranges=True)
    narrow = [tuple(c for c in SPREAD_COLUMNS if c[0] in keys) for keys in _SPREAD_NARROW]
    caption = SPREAD_CAPTION.replace(" (min-max)", "") + " Min-max: the report and results-seeds.csv."
    return Group(_spread_part(rows, narrow[0], title, caption, ranges=False),
                 _spread_part(rows, narrow[1], None, None, ranges=False))


def _spread_part(rows, columns, title, caption, ranges: bool):
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption, caption_justify="left", box=box.SIMPLE_HEAVY, pad_edge=ranges)
    for key, header, kind in columns:
        table.add_column(header if ranges else _SPREAD_SHORT.get(key, header),
                         justify="left" if kind == "str" else "right", no_wrap=not ranges)
    for r in rows:
        table.add_row(*[spread_cell(r, k, kind, ranges) for k, _, kind in columns],
                      style="bold green" if r.get("is_best") else None)
    return table


def _spread_leaderboard(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report template's leaderboard (``{columns, rows}``) for spread rows."""
    return {"columns": [{"header": h, "left": kind == "str"} for _, h, kind in SPREAD_COLUMNS],
            "rows": [{"best": bool(r.get("is_best")),
                      "cells": [_spread_html_cell(r, k, kind) for k, _, kind in SPREAD_COLUMNS]}
                     for r in rows]}


def _spread_html_cell(row: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
    """mean ± sd, with the min-max range on a second, smaller line (one line of all three
    needed a horizontal scroll at 1200 px)."""
    cell = {"text": spread_cell(row, key, kind, ranges=False), "left": kind == "str"}
    if kind == "pct" and not _missing(row.get(key)):
        cell["sub"] = f"{fmt(row.get(f'{key}_min'), kind)}-{fmt(row.get(f'{key}_max'), kind)}"
    return cell


# -- the rich leaderboard ------------------------------------------------------

#: Columns of the two-table (narrow terminal) layout: scores, then calibration and cost.
_SCORE_KEYS = ("model", "top1", "top1_ci95", "vs_best", "top5", "macro_f1", "balanced_accuracy")
_COST_KEYS = ("model", "nll", "ece", "params", "macs", "train_time_s", "latency_ms_p50", "batch_images_per_s")
_SHORT = {"top1_ci95": "95% CI", "vs_best": "vs #1", "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms",
          "balanced_accuracy": "bal.acc", "train_time_s": "train", "train_images_per_s": "train/s",
          "batch_images_per_s": "batch/s"}


def _table(rows, keys, title, caption, clear: bool, short=False):
    from rich import box
    from rich.table import Table

    cols = [c for c in _columns(rows) if c[0] in keys]
    table = Table(title=title, caption=caption, caption_justify="left",
                  box=box.SIMPLE_HEAVY if short else box.HEAVY_HEAD, pad_edge=not short)
    for key, header, kind in cols:
        table.add_column(_SHORT.get(key, header) if short else header,
                         justify="left" if kind == "str" else "right", no_wrap=True)
    for r in rows:
        cells = [_cell(r, k, kind, clear) for k, _, kind in cols]
        if short:  # the header says "ms"
            cells = [c[:-3] if c.endswith(" ms") else c for c in cells]
        table.add_row(*cells, style="bold green" if r.get("is_best") and clear else None)
    return table


def leaderboard_table(rows: Sequence[dict[str, Any]], title: str = "leaderboard", *, width: int | None = None):
    """The leaderboard as a rich renderable, the verdict first: one table when ``width``
    allows (>= 190 columns), else a scores table and a calibration/cost table (for 80
    columns). Columns with no value in any row are left out."""
    from rich.console import Group
    from rich.text import Text

    v = verdict(rows)
    sig = "" if len(rows) < 2 else (f" vs #1: McNemar's paired test against the leader on the same images, "
                                    f"* = significant at {ALPHA:g}.")
    head = Text(v.text, style="bold" if v.clear else "bold yellow")
    if width is not None and width >= 190:
        return Group(head, _table(rows, {c[0] for c in COLUMNS}, title, "Scores, ECE in %; NLL in nats." + sig,
                                  v.clear))
    return Group(head, _table(rows, _SCORE_KEYS, title, "Scores in %." + sig, v.clear, short=True),
                 _table(rows, _COST_KEYS, None, "NLL: mean negative log-likelihood (nats); ECE: expected calibration "
                                                "error, 15 bins (%). train: training time; "
                                                "p50: one image through a compiled call (ms); batch/s: batched "
                                                "inference images/s.", v.clear, short=True))


# -- HTML: the parts -------------------------------------------------------------


def _side_words(side: str) -> str:
    return {"test": "test images", "val": "validation images", "all": "images (all sides)"}.get(side, f"{side} images")


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", str(name)).strip("-") or "model"
    slug, i = base, 1
    while slug in taken:
        i += 1
        slug = f"{base}-{i}"
    taken.add(slug)
    return slug


def _label(name: str) -> dict[str, str]:
    """A class name and its LaTeX form (None when it is the name itself)."""
    tex = latex_for(name)
    return {"name": str(name), "latex": tex if tex != str(name) else None}


def _columns(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The leaderboard columns worth showing: none without a value in any row, no
    ranking or test against #1 for a single model."""
    always = ("model", "top1", "top1_ci95") + (("rank", "vs_best") if len(rows) > 1 else ())
    return [c for c in COLUMNS if c[0] in always or (c[0] not in ("rank", "vs_best", "top1_ci95")
                                                      and any(not _missing(r.get(c[0])) for r in rows))]


def _leaderboard(rows: Sequence[dict[str, Any]], clear: bool) -> dict[str, Any]:
    cols = _columns(rows)
    return {"columns": [{"header": h, "left": kind == "str"} for _, h, kind in cols],
            "rows": [{"best": bool(r.get("is_best")) and clear and len(rows) > 1,
                      "cells": [{"text": _cell(r, k, kind, clear), "left": kind == "str"} for k, _, kind in cols]}
                     for r in rows]}


def _mistakes(evaluation, dataset, limit: int) -> dict[str, Any]:
    """The most confident mistakes first: thumbnail, true, predicted, confidence."""
    wrong = np.flatnonzero(~evaluation.correct)
    total = int(wrong.size)
    conf = evaluation.confidence
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:limit] if dataset is not None else wrong[:0]
    names = evaluation.class_names
    paths = getattr(dataset, "paths", None)
    items = []
    for j in wrong:
        idx = int(evaluation.indices[j])
        items.append({"uri": F.thumbnail_uri(dataset.images[idx]), "index": idx,
                      "path": str(paths[idx]) if paths is not None else "",
                      "true": _label(names[int(evaluation.y_true[j])]),
                      "pred": _label(names[int(evaluation.y_pred[j])]),
                      "confidence": f"{100 * float(conf[j]):.0f}"})
    return {"images": items, "total": total, "images_available": dataset is not None}


def _focus(cm: np.ndarray, names: Sequence[str], pairs: Sequence[dict[str, Any]], title: str) -> dict[str, Any]:
    index = {n: i for i, n in enumerate(names)}
    classes = F.focus_classes(cm, [(index[p["a"]], index[p["b"]]) for p in pairs if p["a"] in index and p["b"] in index])
    seen = int(((cm.sum(axis=0) + cm.sum(axis=1)) > 0).sum())
    return {"uri": F.confusion_png(cm, names, classes, title=title, latex=latex_for), "shown": len(classes),
            "seen": seen}


def _model_section(evaluation, dataset, slug: str, rank_row: dict[str, Any] | None, limit: int) -> dict[str, Any]:
    m = evaluation.metrics
    name, side_text = evaluation.model_name, _side_words(evaluation.side)
    cm = np.asarray(m["confusion"])
    names = list(evaluation.class_names)
    # Older evaluations (before calibration was scored) are computed from their predictions.
    cal = m if "reliability" in m else _calibration(evaluation)
    pairs = [{**p, "a_label": _label(p["a"]), "b_label": _label(p["b"])} for p in m["confused_pairs"]]
    per_class = [{**r, "label": _label(r["class"])} for r in m["per_class"]]
    return {
        "name": name, "slug": slug, "side_text": side_text, "n": m["n"],
        "top1": fmt(m["top1"], "pct"), "ci": fmt(tuple(m["top1_ci95"]), "ci"),
        "ece": fmt(cal.get("ece"), "pct"), "nll": fmt(cal.get("nll"), "f3"),
        "vs": significance_text(rank_row) if rank_row and not rank_row.get("is_best") else None,
        "reliability_uri": F.reliability_png(cal.get("reliability") or [], f"{name}: reliability on {side_text}"),
        "confusion": _focus(cm, names, m["confused_pairs"], f"{name}: confusions on {side_text}"),
        "pairs": pairs, "per_class": per_class, "mistakes": _mistakes(evaluation, dataset, limit),
    }


def _calibration(evaluation) -> dict[str, Any]:
    from . import metrics as M

    return M.calibration(evaluation.y_true, evaluation.probs) if len(evaluation.y_true) else {}


def render_html(*, title: str, meta: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]],
                histories: dict[str, dict[str, list[float]]], evaluations: Sequence, dataset,
                notes: Sequence[str] = (), mistakes_per_model: int = 60) -> str:
    """The whole report as one HTML string.

    ``rows``: leaderboard rows (leader first); ``evaluations``: the Evaluation of
    each model, in the order of their sections; ``dataset``: where the
    misclassified thumbnails come from (None leaves them out).
    """
    v = verdict(rows)
    by_name = {str(r["model"]): r for r in rows}
    side = evaluations[0].side if evaluations else "test"
    taken: set[str] = set()
    models = [_model_section(e, dataset, _slug(e.model_name, taken), by_name.get(e.model_name), mistakes_per_model)
              for e in evaluations]
    curves = {e.model_name: (e.metrics.get("reliability") or _calibration(e).get("reliability") or [])
              for e in evaluations}
    context = {
        "title": title, "meta": list(meta), "notes": list(notes), "verdict": v, "alpha": f"{ALPHA:g}",
        "n": evaluations[0].metrics["n"] if evaluations else "?", "side_text": _side_words(side),
        "several": len(rows) > 1, "models": models,
        "leaderboard": _spread_leaderboard(rows) if is_spread(rows) else _leaderboard(rows, v.clear),
        "figures": {"accuracy": F.accuracy_ci_png(rows, side, v.chance),
                    "curves": F.learning_curves_png(histories),
                    "reliability": F.reliability_overview_png(curves) if len(curves) > 1 else None},
    }
    from .templating import render

    return render("report.html.j2", context)


# -- writing reports ----------------------------------------------------------------


def _source_text(src: dict[str, Any]) -> str:
    """A dataset's source identity in one line."""
    if not src:
        return "-"
    for key in ("describe", "description", "name"):
        if src.get(key):
            fp = src.get("fingerprint")
            return f"{src[key]}" + (f" (fingerprint {str(fp)[:12]})" if fp else "")
    return ", ".join(f"{k}={v}" for k, v in src.items())


def evaluation_row(evaluation) -> dict[str, Any]:
    """The one-model leaderboard row of an evaluation (``mathsym-zoo evaluate``)."""
    return {"rank": 1, "model": evaluation.model_name, "is_best": True, **evaluation.model_stats,
            **evaluation.summary()}


def write_evaluation_report(folder: Path, evaluation, dataset, *, run=None) -> Path:
    """``<folder>/report.html`` for one evaluated model (``mathsym-zoo evaluate``); ``run`` is its Run."""
    histories = {evaluation.model_name: run.history_columns()} if run is not None else {}
    src = evaluation.source or {}
    meta = [("model", evaluation.model_name), ("side", evaluation.side),
            ("source", _source_text(src) + ("" if evaluation.training_source is not False
                                            else " (a different source from training)")),
            ("images scored", evaluation.metrics["n"])]
    if evaluation.split_hash:
        meta.append(("split hash", evaluation.split_hash[:16]))
    if run is not None:
        meta.append(("run", str(run.path)))
    text = render_html(title=f"mathsym-zoo evaluation: {evaluation.model_name}", meta=meta,
                       rows=[evaluation_row(evaluation)], histories=histories, evaluations=[evaluation],
                       dataset=dataset, notes=evaluation.notes)
    path = Path(folder) / REPORT_FILE
    atomic_write_text(path, text)
    return path


def _training_text(train: dict[str, Any]) -> str:
    """The shared [train] recipe: size and seed, then every setting that differs from its default."""
    always = [f"{k}={train[k]}" for k in ("epochs", "batch_size", "seed") if k in train]
    changed = [f"{k}={d['value']}" for k, d in recipe_diff(train).items() if k not in ("epochs", "batch_size", "seed")]
    return ", ".join(always) + ("; " + ", ".join(changed) if changed else "; other settings at their defaults")


def write_comparison_report(result) -> Path:
    """``report.html`` in a comparison folder, from a :class:`mathsym_zoo.compare.ComparisonResult`."""
    from .runs import Run

    folder, manifest, rows = Path(result.path), result.manifest, result.rows
    histories = {r["model"]: Run(Path(r["run_dir"])).history_columns() for r in rows if r.get("run_dir")}
    train = manifest.get("train") or {}
    meta = [
        ("source", _source_text(manifest.get("source") or {}) if manifest.get("source") else manifest["source_entry"]["name"]),
        ("dataset key", str(manifest.get("dataset_key", ""))[:16]),
        ("split hash", str(manifest.get("split_hash", ""))[:16]),
        ("training", _training_text(train)),
        ("folder", str(folder)),
    ]
    hw = hardware()
    meta.append(("hardware", f"{hw.get('cpu')}, {hw.get('affinity_cpus', hw.get('cpu_count'))} CPUs; {hw.get('platform')}"))
    evaluations = [result.evaluations[r["model"]] for r in rows if r["model"] in result.evaluations]
    notes = sorted({n for e in evaluations for n in e.notes})
    if getattr(result, "seeds", 1) > 1:
        notes.insert(0, f"Each model trained with {result.seeds} seeds (train.seed {train.get('seed', 0)} and up) on the "
                        f"same split. {SPREAD_CAPTION} Curves and model tabs show seed {train.get('seed', 0)}.")
    for i, (name, e) in enumerate(getattr(result, "ensembles", {}).items(), 1):
        notes.insert(i, f"{name}, its {e['members']} seeds averaged (the mean of their probabilities; mathsym-zoo "
                        f"ensemble {folder} saves it as one model): top-1 {e['top1']:.2%}, macro recall "
                        f"{e['balanced_accuracy']:.2%}, macro-F1 {e['macro_f1']:.2%} on the same test images.")
    text = render_html(title=f"mathsym-zoo comparison: {manifest['source_entry']['name']}", meta=meta, rows=rows,
                       histories=histories, evaluations=evaluations, dataset=result.dataset, notes=notes)
    path = folder / REPORT_FILE
    atomic_write_text(path, text)
    return path
