"""Classification metrics and paired significance, in plain numpy.

Conventions (the same as scikit-learn where both exist):

* ``y_true`` / ``y_pred`` are int class indexes ``(N,)``; ``probs`` is ``(N, C)``.
* The confusion matrix has true classes on rows, predicted classes on columns.
* Precision, recall or F1 with a zero denominator is 0.
* Macro-F1 averages over the classes that occur in ``y_true`` or ``y_pred``;
  balanced accuracy averages recall over the classes that occur in ``y_true``.
  Classes a model knows but the test side never shows nor predicts don't
  dilute the score.
* McNemar's test is two-sided: exact binomial when the discordant count
  ``b + c`` is below 25, chi-square with Edwards' continuity correction
  otherwise (:data:`MCNEMAR_EXACT_BELOW`). The correction never goes past
  zero: the statistic is ``max(|b - c| - 1, 0)^2 / (b + c)``, so ``b == c``
  gives p = 1, as the exact test does. statsmodels' ``mcnemar(exact=False)``
  and R's ``mcnemar.test`` square ``|b - c| - 1 = -1`` and report p ~ 0.84 for
  b = c = 13 (R's own ``chisq.test`` clamps its correction the same way we do).
  Clamped, the chi-square p-value stays within 0.003 of the exact binomial
  one for every table with 25 <= b + c < 200; unclamped it is off by 0.16.

No TensorFlow and no scipy: the binomial tail uses ``math.comb`` and the
chi-square(1) tail ``math.erfc``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

#: McNemar uses the exact binomial test when b + c is below this, else chi-square.
MCNEMAR_EXACT_BELOW = 25

_Z95 = 1.959963984540054  # two-sided 95% normal quantile


def _as_int(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a.astype(np.int64, copy=False)


# -- accuracy ------------------------------------------------------------------


def top_k_hits(y_true, probs, k: int = 1) -> np.ndarray:
    """Boolean ``(N,)``: is the true class among the ``k`` highest scores?

    Ties are broken by class index (lower wins), like a stable sort.
    """
    y_true = _as_int(y_true, "y_true")
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0]:
        raise ValueError(f"probs must be (N, C) with N={y_true.shape[0]}, got shape {probs.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n, c = probs.shape
    if k >= c:
        return np.ones(n, dtype=bool)
    # A class is in the top k when fewer than k classes beat it (higher score,
    # or equal score at a lower index).
    true_score = probs[np.arange(n), y_true][:, None]
    idx = np.arange(c)[None, :]
    beats = (probs > true_score) | ((probs == true_score) & (idx < y_true[:, None]))
    return beats.sum(axis=1) < k


def top_k_accuracy(y_true, probs, k: int = 1) -> float:
    """Fraction of rows whose true class is among the ``k`` highest scores."""
    hits = top_k_hits(y_true, probs, k)
    return float(hits.mean()) if hits.size else float("nan")


# -- confusion and per-class scores -------------------------------------------


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts: row = true class, column = predicted class."""
    y_true = _as_int(y_true, "y_true")
    y_pred = _as_int(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape[0]} vs {y_pred.shape[0]}")
    for name, a in (("y_true", y_true), ("y_pred", y_pred)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} has class indexes outside 0..{num_classes - 1}: min {a.min()}, max {a.max()}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclasses.dataclass(frozen=True)
class PerClass:
    """Per-class scores from a confusion matrix (arrays of length C)."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # true count per class
    predicted: np.ndarray  # predicted count per class

    def rows(self, class_names: Sequence[str], *, only_seen: bool = True) -> list[dict[str, Any]]:
        """One dict per class, ordered by F1 ascending (worst first); ``only_seen``
        drops classes neither present nor predicted."""
        out = []
        for i, name in enumerate(class_names):
            if only_seen and self.support[i] == 0 and self.predicted[i] == 0:
                continue
            out.append({"class": str(name), "precision": float(self.precision[i]), "recall": float(self.recall[i]),
                        "f1": float(self.f1[i]), "support": int(self.support[i]), "predicted": int(self.predicted[i])})
        return sorted(out, key=lambda r: (r["f1"], -r["support"], r["class"]))


def per_class_scores(cm: np.ndarray) -> PerClass:
    """Precision, recall and F1 of every class of a confusion matrix."""
    cm = np.asarray(cm)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return PerClass(precision, recall, f1, support.astype(np.int64), predicted.astype(np.int64))


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over classes present in the truth or the predictions."""
    pc = per_class_scores(cm)
    seen = (pc.support > 0) | (pc.predicted > 0)
    return float(pc.f1[seen].mean()) if seen.any() else float("nan")


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over classes present in the truth."""
    pc = per_class_scores(cm)
    present = pc.support > 0
    return float(pc.recall[present].mean()) if present.any() else float("nan")


def most_confused_pairs(cm: np.ndarray, class_names: Sequence[str], k: int = 20) -> list[dict[str, Any]]:
    """The ``k`` unordered class pairs with the most confusions in either direction.

    Each entry: ``a``, ``b``, ``a_as_b`` (true a predicted b), ``b_as_a`` and
    ``total``; ordered by total, then by name. Pairs with no confusion are left out.
    """
    cm = np.asarray(cm)
    both = cm + cm.T
    iu, ju = np.triu_indices(cm.shape[0], k=1)
    totals = both[iu, ju]
    keep = totals > 0
    iu, ju, totals = iu[keep], ju[keep], totals[keep]
    order = sorted(range(len(totals)), key=lambda t: (-int(totals[t]), class_names[iu[t]], class_names[ju[t]]))[:k]
    out = []
    for t in order:
        i, j = int(iu[t]), int(ju[t])
        # Put the larger direction first, so "a -> b" reads as the main confusion.
        if cm[j, i] > cm[i, j]:
            i, j = j, i
        out.append({"a": str(class_names[i]), "b": str(class_names[j]), "a_as_b": int(cm[i, j]),
                    "b_as_a": int(cm[j, i]), "total": int(totals[t])})
    return out


# -- intervals -----------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction).

    Only 95% is built in without scipy; other levels use ``statistics.NormalDist``.
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..n={n}, got {successes}")
    if abs(confidence - 0.95) < 1e-12:
        z = _Z95
    else:
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    z2 = z * z
    den = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # The bounds are exact at the edges; keep float noise from showing 0.9999999.
    return (0.0 if successes == 0 else lo, 1.0 if successes == n else hi)


def bootstrap_interval(correct, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a boolean ``(N,)`` array."""
    correct = np.asarray(correct, dtype=np.float64)
    n = correct.shape[0]
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # chunks keep memory at 256*N
        stop = min(n_boot, start + 256)
        means[start:stop] = correct[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


# -- paired significance -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class McNemar:
    """McNemar's test of two classifiers on the same items.

    ``b``: A right and B wrong; ``c``: A wrong and B right. ``method`` is
    ``"exact"`` (two-sided binomial, p = min(1, 2 P[X <= min(b, c)]) with
    X ~ Bin(b + c, 1/2)) or ``"chi2-cc"`` (max(|b - c| - 1, 0)^2 / (b + c), 1 df).
    """

    b: int
    c: int
    statistic: float | None
    p_value: float
    method: str

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def binomial_two_sided_p(b: int, c: int) -> float:
    """Exact two-sided sign-test p-value for b successes against c (p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # Sum in log space so large n doesn't underflow 0.5**n.
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    m = max(terms)
    tail = math.exp(m) * sum(math.exp(t - m) for t in terms)
    return min(1.0, 2.0 * tail)


def mcnemar_from_counts(b: int, c: int, *, exact_below: int = MCNEMAR_EXACT_BELOW) -> McNemar:
    """McNemar from the two discordant counts."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n < exact_below:
        return McNemar(b, c, None, binomial_two_sided_p(b, c), "exact")
    # Clamped continuity correction: |b - c| = 0 must not become 1 (see the module docstring).
    stat = max(abs(b - c) - 1, 0) ** 2 / n
    p = math.erfc(math.sqrt(stat / 2))  # chi-square(1) survival function
    return McNemar(b, c, float(stat), float(min(1.0, p)), "chi2-cc")


def mcnemar(correct_a, correct_b, *, exact_below: int = MCNEMAR_EXACT_BELOW) -> McNemar:
    """McNemar's test from per-item correctness of two models on the same items."""
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(f"correctness arrays must be 1-D and equal in length, got {a.shape} and {b_.shape}")
    return mcnemar_from_counts(int((a & ~b_).sum()), int((~a & b_).sum()), exact_below=exact_below)


# -- one call for an evaluation ------------------------------------------------


def summarize(y_true, probs, class_names: Sequence[str], *, top_k: Sequence[int] = (1, 5), pairs: int = 20) -> dict[str, Any]:
    """Every score of one evaluation, JSON-ready (plus ``confusion`` as a list of lists).

    ``y_true`` indexes ``class_names`` (the model's classes); ``probs`` is ``(N, C)``.
    """
    y_true = _as_int(y_true, "y_true")
    probs = np.asarray(probs)
    num_classes = len(class_names)
    n = int(y_true.shape[0])
    y_pred = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    correct = int((y_pred == y_true).sum())
    lo, hi = wilson_interval(correct, n)
    out: dict[str, Any] = {"n": n, "correct": correct}
    for k in top_k:
        out[f"top{k}"] = top_k_accuracy(y_true, probs, k) if n else float("nan")
    out.update({
        "macro_f1": macro_f1(cm),
        "balanced_accuracy": balanced_accuracy(cm),
        "top1_ci95": [lo, hi],
        "ci_method": "wilson",
        "per_class": per_class_scores(cm).rows(class_names),
        "confused_pairs": most_confused_pairs(cm, class_names, pairs),
        "confusion": cm.tolist(),
    })
    out.update(calibration(y_true, probs))
    return out


# -- calibration ---------------------------------------------------------------

#: Bins of the expected calibration error and the reliability diagram (Guo et al., 2017).
ECE_BINS = 15
#: Probabilities are clipped to [eps, 1] before the log, as Keras' cross-entropy does,
#: so the NLL of a softmax model equals its (unsmoothed) test loss.
NLL_EPS = 1e-7


def _checked(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_int(y_true, "y_true")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0]:
        raise ValueError(f"probs must be (N, C) with N={y_true.shape[0]}, got shape {probs.shape}")
    return y_true, probs


def reliability_bins(y_true, probs, n_bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Top-1 confidence against accuracy in ``n_bins`` equal-width bins of (0, 1].

    Bin ``b`` holds the rows whose confidence is in ``(b/n, (b+1)/n]`` (a
    confidence of exactly 0 goes to the first). Each entry: ``lo``, ``hi``,
    ``count``, and ``accuracy`` / ``confidence`` (means; None for an empty bin).
    """
    y_true, probs = _checked(y_true, probs)
    conf = probs.max(axis=1) if len(y_true) else np.zeros(0)
    correct = (probs.argmax(axis=1) == y_true) if len(y_true) else np.zeros(0, dtype=bool)
    which = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], conf, side="left")  # as scikit-learn bins
    out = []
    for b in range(n_bins):
        members = which == b
        count = int(members.sum())
        out.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "count": count,
                    "accuracy": float(correct[members].mean()) if count else None,
                    "confidence": float(conf[members].mean()) if count else None})
    return out


def expected_calibration_error(y_true, probs, n_bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean gap |accuracy - confidence| over the reliability bins
    (0 = confidence matches accuracy; NaN without rows)."""
    bins = reliability_bins(y_true, probs, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return float("nan")
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / n)


def nll(y_true, probs, eps: float = NLL_EPS) -> float:
    """Mean negative log-likelihood of the true class (natural log; NaN without rows)."""
    y_true, probs = _checked(y_true, probs)
    if not len(y_true):
        return float("nan")
    p = np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)
    return float(-np.log(p).mean())


def calibration(y_true, probs, n_bins: int = ECE_BINS) -> dict[str, Any]:
    """``ece``, ``nll`` and the reliability bins of one evaluation, JSON-ready."""
    return {"ece": expected_calibration_error(y_true, probs, n_bins), "nll": nll(y_true, probs),
            "ece_bins": n_bins, "reliability": reliability_bins(y_true, probs, n_bins)}
