"""Leaderboard (rich table) and the self-contained HTML report.

The HTML report is one file: figures are PNGs drawn with matplotlib (the
object API, no pyplot state) and embedded as base64 ``data:`` URIs; the only
script is a few lines that sort the per-class table.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .fileio import atomic_write_text
from .machine import hardware

#: Leaderboard columns: (key in a row, header, format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "#", "int"),
    ("model", "model", "str"),
    ("top1", "top-1", "pct"),
    ("top1_ci95", "95% CI (Wilson)", "ci"),
    ("vs_best", "vs best (McNemar)", "str"),
    ("top5", "top-5", "pct"),
    ("macro_f1", "macro-F1", "pct"),
    ("balanced_accuracy", "bal. acc", "pct"),
    ("params", "params", "count"),
    ("macs", "MACs", "count"),
    ("train_time_s", "train time", "dur"),
    ("train_images_per_s", "train img/s", "rate"),
    ("latency_ms_p50", "latency p50", "ms"),
    ("latency_ms_p95", "latency p95", "ms"),
    ("batch_images_per_s", "batch img/s", "rate"),
)

ALPHA = 0.05


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


def significance_text(row: dict[str, Any]) -> str:
    """``best``, or the McNemar p-value marked ``*`` (significantly worse at 5%) or ``n.s.``."""
    if row.get("is_best"):
        return "best"
    p = row.get("mcnemar_p")
    if _missing(p):
        return "-"
    return f"{_p_text(float(p))} {'*' if row.get('significant_vs_best') else 'n.s.'}"


def _cell(row: dict[str, Any], key: str, kind: str) -> str:
    if key == "top1_ci95":
        return fmt((row.get("top1_ci95_low"), row.get("top1_ci95_high")), "ci")
    if key == "vs_best":
        return significance_text(row)
    return fmt(row.get(key), kind)


#: Columns of the two-table (narrow terminal) layout: scores, then cost.
_SCORE_KEYS = ("model", "top1", "top1_ci95", "vs_best", "top5", "macro_f1", "balanced_accuracy")
_COST_KEYS = ("model", "params", "macs", "train_time_s", "train_images_per_s", "latency_ms_p50",
              "latency_ms_p95", "batch_images_per_s")
_SHORT = {"top1_ci95": "95% CI", "vs_best": "vs best", "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms",
          "balanced_accuracy": "bal.acc", "train_time_s": "train", "train_images_per_s": "train/s",
          "batch_images_per_s": "batch/s"}


def _table(rows, keys, title, caption, short=False):
    from rich import box
    from rich.table import Table

    cols = [c for c in COLUMNS if c[0] in keys and (c[0] in ("top1_ci95", "vs_best", "rank", "model")
                                                    or any(not _missing(r.get(c[0])) for r in rows))]
    if len(rows) < 2:  # nothing to compare with
        cols = [c for c in cols if c[0] not in ("vs_best", "rank")]
    table = Table(title=title, caption=caption, caption_justify="left", box=box.SIMPLE_HEAVY if short else box.HEAVY_HEAD, pad_edge=not short)
    for key, header, kind in cols:
        table.add_column(_SHORT.get(key, header) if short else header,
                         justify="left" if kind == "str" else "right", no_wrap=True)
    for r in rows:
        cells = [_cell(r, k, kind) for k, _, kind in cols]
        if short:  # the header says "ms"
            cells = [c[:-3] if c.endswith(" ms") else c for c in cells]
        table.add_row(*cells, style="bold green" if r.get("is_best") else None)
    return table


def leaderboard_table(rows: Sequence[dict[str, Any]], title: str = "leaderboard", *, width: int | None = None):
    """The leaderboard as a rich renderable: one table when ``width`` allows
    (>= 170 columns), else a scores table and a cost table (for 80 columns).
    Columns with no value in any row are left out."""
    from rich.console import Group

    sig = "" if len(rows) < 2 else f" vs best: McNemar's paired test on the same test images, * = significant at {ALPHA:g}."
    if width is not None and width >= 170:
        return _table(rows, {c[0] for c in COLUMNS}, title, "Scores in %." + sig)
    return Group(_table(rows, _SCORE_KEYS, title, "Scores in %." + sig, short=True),
                 _table(rows, _COST_KEYS, None, "train: time, train/s: images/s while training; p50/p95: one image "
                                                "through a compiled call; batch/s: batched inference images/s.",
                        short=True))


# -- figures -------------------------------------------------------------------


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tex_safe(name: str) -> str:
    return str(name).replace("$", r"\$")


def _pick(cols: dict[str, list[float]], val: bool, what: str) -> list[float] | None:
    """The train or validation series of ``loss`` / ``accuracy`` in Keras' CSV naming."""
    names = ["val_" + what, "val_" + what[:3]] if val else [what, what[:3], "train_" + what]
    if what == "accuracy":
        names += ["val_sparse_categorical_accuracy"] if val else ["sparse_categorical_accuracy"]
    for n in names:
        if n in cols:
            return cols[n]
    return None


def learning_curves_png(histories: dict[str, dict[str, list[float]]]) -> str | None:
    """Loss and accuracy per epoch for every model: train solid, validation dashed."""
    histories = {k: v for k, v in histories.items() if v}
    if not histories:
        return None
    fig = _figure(11, 4.6)
    axes = fig.subplots(1, 2)
    colors = [f"C{i}" for i in range(10)]
    for i, (name, cols) in enumerate(histories.items()):
        epochs = cols.get("epoch")
        for ax, what in zip(axes, ("loss", "accuracy")):
            for val, style in ((False, "-"), (True, "--")):
                y = _pick(cols, val, what)
                if y is None:
                    continue
                # train.py numbers epochs from 1
                x = list(epochs) if epochs and len(epochs) == len(y) else list(range(1, len(y) + 1))
                ax.plot(x, y, style, color=colors[i % 10], marker="o", markersize=3,
                        label=f"{name} ({'val' if val else 'train'})")
    for ax, what in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.set_title(f"{what}: train (solid), validation (dashed)")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(6, max(1, len(labels))), fontsize=8)
    return _png_uri(fig)


def accuracy_ci_png(rows: Sequence[dict[str, Any]], side: str = "test") -> str | None:
    """Top-1 with its 95% interval per model, best first."""
    rows = [r for r in rows if not _missing(r.get("top1"))]
    if not rows:
        return None
    fig = _figure(7, 0.45 * len(rows) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    top1 = np.array([100 * r["top1"] for r in rows])
    lo = np.array([100 * (r.get("top1_ci95_low") if not _missing(r.get("top1_ci95_low")) else r["top1"]) for r in rows])
    hi = np.array([100 * (r.get("top1_ci95_high") if not _missing(r.get("top1_ci95_high")) else r["top1"]) for r in rows])
    colors = ["C2" if r.get("is_best") else ("C3" if r.get("significant_vs_best") else "C0") for r in rows]
    ax.errorbar(top1, y, xerr=[top1 - lo, hi - top1], fmt="none", ecolor="0.4", capsize=4)
    ax.scatter(top1, y, c=colors, zorder=3)
    ax.set_yticks(y, [_tex_safe(r["model"]) for r in rows])
    ax.set_xlabel(f"top-1 accuracy on {side} (%), 95% Wilson interval")
    ax.grid(axis="x", alpha=0.3)
    return _png_uri(fig)


def confusion_png(cm: np.ndarray, class_names: Sequence[str], title: str = "") -> str:
    """Row-normalised confusion heatmap (true on rows), classes seen only."""
    cm = np.asarray(cm, dtype=np.float64)
    seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    cm = cm[seen][:, seen]
    names = [_tex_safe(n) for n, s in zip(class_names, seen) if s]
    k = len(names)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = float(min(14, max(5, 0.14 * k + 2.5)))
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    from matplotlib.colors import PowerNorm

    # A square-root scale, so a 2% confusion is visible next to a 98% diagonal.
    im = ax.imshow(norm, cmap="viridis", norm=PowerNorm(0.5, vmin=0, vmax=1), interpolation="nearest")
    size = 8 if k <= 30 else (6 if k <= 60 else 5)
    ax.set_xticks(range(k), names, rotation=90, fontsize=size)
    ax.set_yticks(range(k), names, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (row-normalised: recall on the diagonal)")
    fig.colorbar(im, ax=ax, shrink=0.7, label="fraction of the true class (square-root scale)")
    return _png_uri(fig)


def thumbnail_uri(image: np.ndarray, scale: int = 2) -> str:
    """One uint8 image (H, W[, C]) as a PNG data URI, enlarged by pixel repetition."""
    from matplotlib.image import imsave

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if scale > 1:
        img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    if img.ndim == 2:
        imsave(buf, img, cmap="gray", vmin=0, vmax=255, format="png")
    else:
        imsave(buf, img, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# -- HTML ----------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555;font-size:.9em} .meta code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f5f5f5;white-space:normal;vertical-align:bottom} td.l,th.l{text-align:left}
tr.best td{background:#eaf7ea;font-weight:600}
table.sortable th{cursor:pointer;user-select:none} table.sortable th:hover{background:#e8e8e8}
table.sortable th.asc::after{content:" \\25B2"} table.sortable th.desc::after{content:" \\25BC"}
.scroll{max-height:520px;overflow:auto;display:inline-block;border:1px solid #eee}
img.fig{max-width:100%;height:auto}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.grid figure{margin:0;width:112px;text-align:center;font-size:.75em;border:1px solid #eee;padding:4px;border-radius:4px}
.grid img{width:90px;height:90px;image-rendering:pixelated;border:1px solid #ccc}
.ok{color:#1a7f37} .bad{color:#c62828} .note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:.5em 0}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var asc=!th.classList.contains('asc'); t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc')});
    th.classList.add(asc?'asc':'desc'); var b=t.tBodies[0], rows=Array.from(b.rows);
    rows.sort(function(x,y){var a=x.cells[i].dataset.v||x.cells[i].textContent, c=y.cells[i].dataset.v||y.cells[i].textContent;
      var na=parseFloat(a), nc=parseFloat(c); var r=(!isNaN(na)&&!isNaN(nc))?na-nc:a.localeCompare(c); return asc?r:-r;});
    rows.forEach(function(r){b.appendChild(r)});});});});
"""


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _img(uri: str | None, alt: str) -> str:
    return f'<img class="fig" src="{uri}" alt="{_e(alt)}">' if uri else f"<p class=meta>({_e(alt)}: no data)</p>"


def leaderboard_html(rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f'<th class="{"l" if kind == "str" else ""}">{_e(h)}</th>' for _, h, kind in COLUMNS)
    body = []
    for r in rows:
        cells = "".join(f'<td class="{"l" if kind == "str" else ""}">{_e(_cell(r, k, kind))}</td>' for k, _, kind in COLUMNS)
        body.append(f'<tr class="{"best" if r.get("is_best") else ""}">{cells}</tr>')
    return (f"<div style='overflow-x:auto'><table id=leaderboard><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def pairs_html(pairs: Sequence[dict[str, Any]]) -> str:
    if not pairs:
        return "<p class=meta>No confusions.</p>"
    rows = "".join(f"<tr><td>{i}</td><td class=l><b>{_e(p['a'])}</b></td><td class=l><b>{_e(p['b'])}</b></td>"
                   f"<td>{p['a_as_b']}</td><td>{p['b_as_a']}</td><td>{p['total']}</td></tr>"
                   for i, p in enumerate(pairs, 1))
    return ("<table id=pairs><thead><tr><th>#</th><th class=l>a</th><th class=l>b</th><th>a predicted as b</th>"
            f"<th>b predicted as a</th><th>total</th></tr></thead><tbody>{rows}</tbody></table>")


def per_class_html(per_class: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in per_class:  # already ordered by F1, worst first
        rows.append(f"<tr><td class=l>{_e(r['class'])}</td>"
                    + "".join(f'<td data-v="{r[k]:.6f}">{100 * r[k]:.1f}</td>' for k in ("precision", "recall", "f1"))
                    + f"<td>{r['support']}</td><td>{r['predicted']}</td></tr>")
    return ('<div class=scroll><table id=per-class class=sortable><thead><tr><th class=l>class</th><th>precision %</th>'
            '<th>recall %</th><th>F1 %</th><th>support</th><th>predicted</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def misclassified_html(evaluation, dataset, limit: int = 60) -> str:
    """The most confident mistakes first: thumbnail, true, predicted, confidence."""
    wrong = np.flatnonzero(~evaluation.correct)
    if wrong.size == 0:
        return f"<p class=meta>No misclassified {_e(_side_words(evaluation.side))}.</p>"
    conf = evaluation.confidence
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:limit]
    names = evaluation.class_names
    cells = []
    for j in wrong:
        idx = int(evaluation.indices[j])
        t, p = names[int(evaluation.y_true[j])], names[int(evaluation.y_pred[j])]
        title = _e(dataset.paths[idx]) if getattr(dataset, "paths", None) is not None else ""
        cells.append(f'<figure title="{title}"><img src="{thumbnail_uri(dataset.images[idx])}" alt="test image {idx}">'
                     f'<figcaption>true <b class=ok>{_e(t)}</b><br>pred <b class=bad>{_e(p)}</b> '
                     f'{100 * float(conf[j]):.0f}%</figcaption></figure>')
    shown = f"{len(wrong)} of {int((~evaluation.correct).sum())}"
    return (f"<p class=meta>{shown} misclassified {_e(_side_words(evaluation.side))}, most confident first.</p>"
            f"<div class=grid>{''.join(cells)}</div>")


def _side_words(side: str) -> str:
    return {"test": "test images", "val": "validation images", "all": "images (all sides)"}.get(side, f"{side} images")


def render_html(*, title: str, meta: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]],
                histories: dict[str, dict[str, list[float]]], best, dataset, notes: Sequence[str] = ()) -> str:
    """The whole report as one HTML string.

    ``rows``: leaderboard rows (best first); ``best``: the Evaluation of the
    model whose confusion, per-class scores and mistakes are shown.
    """
    side_text = _side_words(best.side if best is not None else "test")
    meta_html = "".join(f"<div><b>{_e(k)}</b>: <code>{_e(v)}</code></div>" for k, v in meta)
    notes_html = "".join(f"<div class=note>{_e(n)}</div>" for n in notes)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><div class=meta>{meta_html}</div>{notes_html}",
        "<h2 id=leaderboard-h>Leaderboard</h2>",
        f"<p class=meta>{'All models are' if len(rows) > 1 else 'The model is'} scored on the same "
        f"{best.metrics['n'] if best else '?'} {_e(side_text)}. "
        f"“vs best” is McNemar's paired test of each model against the best (exact binomial when fewer than 25 "
        f"discordant images, chi-square with continuity correction otherwise); <b>*</b> marks a difference "
        f"significant at {ALPHA:g}, n.s. one that could be chance.</p>",
        leaderboard_html(rows),
        _img(accuracy_ci_png(rows, best.side if best else "test"), "top-1 accuracy with 95% interval"),
        "<h2 id=curves>Learning curves</h2>",
        _img(learning_curves_png(histories), "learning curves"),
    ]
    if best is not None:
        cm = np.asarray(best.metrics["confusion"])
        parts += [
            f"<h2 id=confusion>Confusion: {_e(best.model_name)}</h2>",
            _img(confusion_png(cm, best.class_names, f"{best.model_name}: confusion on {side_text}, row-normalised"),
                 "confusion heatmap"),
            f"<h3>{len(best.metrics['confused_pairs'])} most confused pairs</h3>",
            pairs_html(best.metrics["confused_pairs"]),
            f"<h2 id=per-class-h>Per-class precision, recall, F1: {_e(best.model_name)}</h2>",
            "<p class=meta>Ordered by F1, worst first; click a header to sort.</p>",
            per_class_html(best.metrics["per_class"]),
            f"<h2 id=mistakes>Misclassified {_e(side_text)}: {_e(best.model_name)}</h2>",
            misclassified_html(best, dataset),
        ]
    parts += [f"<script>{_SORT_JS}</script>", "</body></html>"]
    return "\n".join(parts)


def _source_text(src: dict[str, Any]) -> str:
    """A dataset's source identity in one line."""
    if not src:
        return "-"
    for key in ("describe", "description", "name"):
        if src.get(key):
            fp = src.get("fingerprint")
            return f"{src[key]}" + (f" (fingerprint {str(fp)[:12]})" if fp else "")
    return ", ".join(f"{k}={v}" for k, v in src.items())


REPORT_FILE = "report.html"


def write_evaluation_report(folder: Path, evaluation, dataset, *, run=None) -> Path:
    """``<folder>/report.html`` for one evaluated model (``mathsym-zoo evaluate``); ``run`` is its Run."""
    row = {"rank": 1, "model": evaluation.model_name, "is_best": True, **evaluation.model_stats, **evaluation.summary()}
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
    text = render_html(title=f"mathsym-zoo evaluation: {evaluation.model_name}", meta=meta, rows=[row],
                       histories=histories, best=evaluation, dataset=dataset, notes=evaluation.notes)
    path = Path(folder) / REPORT_FILE
    atomic_write_text(path, text)
    return path


def write_comparison_report(result) -> Path:
    """``report.html`` in a comparison folder, from a :class:`mathsym_zoo.compare.ComparisonResult`."""
    from .runs import Run

    folder, manifest, rows = Path(result.path), result.manifest, result.rows
    best_name = next((r["model"] for r in rows if r.get("is_best")), None)
    best = result.evaluations.get(best_name) if best_name else None
    histories = {r["model"]: Run(Path(r["run_dir"])).history_columns() for r in rows if r.get("run_dir")}
    train = manifest.get("train") or {}
    meta = [
        ("source", _source_text(manifest.get("source") or {}) if manifest.get("source") else manifest["source_entry"]["name"]),
        ("dataset key", str(manifest.get("dataset_key", ""))[:16]),
        ("split hash", str(manifest.get("split_hash", ""))[:16]),
        ("training", ", ".join(f"{k}={train[k]}" for k in ("epochs", "batch_size", "optimizer", "learning_rate",
                                                          "lr_schedule", "early_stopping_patience", "seed") if k in train)),
        ("folder", str(folder)),
    ]
    hw = hardware()
    meta.append(("hardware", f"{hw.get('cpu')}, {hw.get('affinity_cpus', hw.get('cpu_count'))} CPUs; {hw.get('platform')}"))
    notes = list(best.notes) if best is not None else []
    text = render_html(title=f"mathsym-zoo comparison: {manifest['source_entry']['name']}", meta=meta, rows=rows,
                       histories=histories, best=best, dataset=result.dataset, notes=notes)
    path = folder / REPORT_FILE
    atomic_write_text(path, text)
    return path
