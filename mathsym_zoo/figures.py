"""The report's figures: matplotlib PNGs as base64 ``data:`` URIs.

Drawn with the object API (no pyplot state), so reports can be written from
threads and tests. Class names are drawn in their LaTeX form (matplotlib's
mathtext) where :func:`mathsym_zoo.report.latex_for` knows one.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from typing import Any, Callable, Sequence

import numpy as np


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _missing(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def tex_safe(name: str) -> str:
    """Plain text for a matplotlib label (a ``$`` would start mathtext)."""
    return str(name).replace("$", r"\$")


@functools.lru_cache(maxsize=512)
def math_label(label: str, latex: str) -> str:
    """``$latex$`` when matplotlib's mathtext can draw it, else the plain label."""
    if not latex or latex == label and not latex.startswith("\\"):
        return tex_safe(label)
    from matplotlib.mathtext import MathTextParser

    text = f"${latex}$"
    try:
        MathTextParser("path").parse(text)
    except Exception:  # mathtext knows a subset of LaTeX; fall back to the name
        return tex_safe(label)
    return text


def _names(class_names: Sequence[str], latex: Callable[[str], str] | None) -> list[str]:
    return [math_label(str(n), latex(str(n)) if latex else str(n)) for n in class_names]


# -- comparison figures ----------------------------------------------------------


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
    for i, (name, cols) in enumerate(histories.items()):
        epochs = cols.get("epoch")
        for ax, what in zip(axes, ("loss", "accuracy")):
            for val, style in ((False, "-"), (True, "--")):
                y = _pick(cols, val, what)
                if y is None:
                    continue
                # history.csv numbers epochs from 1
                x = list(epochs) if epochs and len(epochs) == len(y) else list(range(1, len(y) + 1))
                ax.plot(x, y, style, color=f"C{i % 10}", marker="o", markersize=3,
                        label=f"{tex_safe(name)} ({'val' if val else 'train'})")
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


def accuracy_ci_png(rows: Sequence[dict[str, Any]], side: str = "test", chance: float | None = None) -> str | None:
    """Top-1 with its 95% interval per model, leader first; a dotted line at chance."""
    rows = [r for r in rows if not _missing(r.get("top1"))]
    if not rows:
        return None
    fig = _figure(7, 0.45 * len(rows) + 1.1)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    top1 = np.array([100 * r["top1"] for r in rows])
    lo = np.array([100 * (r["top1"] if _missing(r.get("top1_ci95_low")) else r["top1_ci95_low"]) for r in rows])
    hi = np.array([100 * (r["top1"] if _missing(r.get("top1_ci95_high")) else r["top1_ci95_high"]) for r in rows])
    colors = ["C2" if r.get("is_best") else ("C3" if r.get("significant_vs_best") else "C0") for r in rows]
    ax.errorbar(top1, y, xerr=[top1 - lo, hi - top1], fmt="none", ecolor="0.4", capsize=4)
    ax.scatter(top1, y, c=colors, zorder=3)
    if chance:
        ax.axvline(100 * chance, color="0.5", linestyle=":", label=f"chance {100 * chance:.1f}%")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, [tex_safe(r["model"]) for r in rows])
    ax.set_xlabel(f"top-1 accuracy on {side} (%), 95% Wilson interval")
    ax.grid(axis="x", alpha=0.3)
    return _png_uri(fig)


def _bin_arrays(bins: Sequence[dict[str, Any]]):
    centres = np.array([(b["lo"] + b["hi"]) / 2 for b in bins])
    width = float(bins[0]["hi"] - bins[0]["lo"]) if bins else 0.1
    acc = np.array([np.nan if b["accuracy"] is None else b["accuracy"] for b in bins], dtype=float)
    conf = np.array([np.nan if b["confidence"] is None else b["confidence"] for b in bins], dtype=float)
    counts = np.array([b["count"] for b in bins], dtype=float)
    return centres, width, acc, conf, counts


def reliability_overview_png(curves: dict[str, Sequence[dict[str, Any]]]) -> str | None:
    """Accuracy against confidence for every model in one chart (non-empty bins only)."""
    curves = {k: v for k, v in curves.items() if v and any(b["count"] for b in v)}
    if not curves:
        return None
    fig = _figure(5.2, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ":", color="0.5", label="perfect calibration")
    for i, (name, bins) in enumerate(curves.items()):
        _, _, acc, conf, counts = _bin_arrays(bins)
        keep = counts > 0
        ax.plot(conf[keep], acc[keep], "-o", color=f"C{i % 10}", markersize=3, label=tex_safe(name))
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="accuracy",
           title="reliability: below the diagonal = overconfident")
    ax.grid(alpha=0.3)
    # Outside the axes: curves of under- and overconfident models fill either corner.
    fig.legend(fontsize=8, loc="outside lower center", ncols=min(3, len(curves) + 1))
    return _png_uri(fig)


def reliability_png(bins: Sequence[dict[str, Any]], title: str = "") -> str | None:
    """One model's reliability diagram: accuracy per confidence bin with the gap to the
    diagonal, and below it how many images fall in each bin."""
    if not bins or not any(b["count"] for b in bins):
        return None
    centres, width, acc, conf, counts = _bin_arrays(bins)
    fig = _figure(4.6, 5.2)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    keep = counts > 0
    top.bar(centres[keep], acc[keep], width=width, color="C0", edgecolor="white", label="accuracy")
    gap = conf[keep] - acc[keep]
    # Hatched outline from accuracy to mean confidence: above the blue bar when overconfident,
    # over it when underconfident; a fill would hide the accuracy in the second case.
    top.bar(centres[keep], gap, bottom=acc[keep], width=width, fill=False, hatch="///", edgecolor="C3",
            linewidth=0.8, label="gap to mean confidence")
    top.plot([0, 1], [0, 1], ":", color="0.3")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    fig.suptitle(tex_safe(title) or "reliability")
    # Outside the axes: under- and overconfident models fill either corner of the chart.
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    bottom.bar(centres, counts, width=width, color="0.55", edgecolor="white")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="images")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return _png_uri(fig)


# -- confusion ----------------------------------------------------------------------


def focus_classes(cm: np.ndarray, pairs: Sequence[tuple[int, int]], max_classes: int = 24) -> list[int]:
    """Class indexes to draw: every seen class when there are at most ``max_classes``,
    else the classes of the most confused pairs (in pair order, so partners sit together)."""
    cm = np.asarray(cm)
    seen = np.flatnonzero((cm.sum(axis=0) + cm.sum(axis=1)) > 0)
    if len(seen) <= max_classes:
        return [int(i) for i in seen]
    out: list[int] = []
    for a, b in pairs:
        for c in (a, b):
            if c not in out and len(out) < max_classes:
                out.append(int(c))
    return out


def confusion_png(cm: np.ndarray, class_names: Sequence[str], classes: Sequence[int], *, title: str = "",
                  latex: Callable[[str], str] | None = None) -> str | None:
    """Confusion heatmap over ``classes`` (true on rows), coloured by the fraction of the
    whole true class and annotated with counts, names in their LaTeX form."""
    if not classes:
        return None
    cm = np.asarray(cm, dtype=np.float64)
    idx = np.asarray(classes)
    frac = cm[idx][:, idx] / np.maximum(cm[idx].sum(axis=1, keepdims=True), 1)
    counts = cm[idx][:, idx].astype(np.int64)
    names = _names([class_names[i] for i in idx], latex)
    k = len(idx)
    # Shown at its natural size (100 dpi) so the labels stay readable: about 0.3 inch per class.
    side = float(min(10, max(4.5, 0.3 * k + 2.2)))
    fig = _figure(side + 1.6, side)
    ax = fig.add_subplot()
    from matplotlib.colors import PowerNorm

    # A square-root scale, so a 2% confusion is visible next to a 98% diagonal.
    im = ax.imshow(frac, cmap="viridis", norm=PowerNorm(0.5, vmin=0, vmax=1), interpolation="nearest")
    size = 9 if k <= 16 else 8
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=size - 1,
                    color="black" if frac[i, j] > 0.45 else "white")
    ax.set_xticks(range(k), names, rotation=90, fontsize=size + 1)
    ax.set_yticks(range(k), names, fontsize=size + 1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(tex_safe(title) or "confusion")
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
