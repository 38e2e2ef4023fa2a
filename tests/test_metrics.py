"""Metrics against values worked out by hand on tiny arrays."""

import math

import numpy as np
import pytest

from mathsym_zoo import metrics as M

PROBS = np.array([[.5, .3, .2], [.5, .3, .2], [.1, .2, .7], [.6, .3, .1]])
Y = np.array([0, 1, 2, 2])


def test_top_k():
    # row 0 right; row 1 true class is 2nd; row 2 right; row 3 true class is 3rd
    assert M.top_k_accuracy(Y, PROBS, 1) == 0.5
    assert M.top_k_accuracy(Y, PROBS, 2) == 0.75
    assert M.top_k_accuracy(Y, PROBS, 3) == 1.0
    assert M.top_k_accuracy(Y, PROBS, 5) == 1.0  # k beyond C


def test_top_k_ties_break_by_index():
    probs = np.array([[.5, .5, 0.0]])
    assert M.top_k_accuracy([0], probs, 1) == 1.0
    assert M.top_k_accuracy([1], probs, 1) == 0.0
    assert M.top_k_accuracy([1], probs, 2) == 1.0


# y_true 0 0 1 1 2 2 / y_pred 0 1 1 1 2 0:
#   cm = [[1,1,0],[0,2,0],[1,0,1]]
#   precision 1/2, 2/3, 1; recall 1/2, 1, 1/2; F1 1/2, 4/5, 2/3
T = np.array([0, 0, 1, 1, 2, 2])
P = np.array([0, 1, 1, 1, 2, 0])


def test_confusion_and_per_class():
    cm = M.confusion_matrix(T, P, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    pc = M.per_class_scores(cm)
    np.testing.assert_allclose(pc.precision, [1 / 2, 2 / 3, 1])
    np.testing.assert_allclose(pc.recall, [1 / 2, 1, 1 / 2])
    np.testing.assert_allclose(pc.f1, [1 / 2, 4 / 5, 2 / 3])
    assert pc.support.tolist() == [2, 2, 2]
    rows = pc.rows(["a", "b", "c"])
    assert [r["class"] for r in rows] == ["a", "c", "b"]  # ordered by F1


def test_macro_f1_and_balanced_accuracy():
    cm = M.confusion_matrix(T, P, 3)
    assert M.macro_f1(cm) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert M.balanced_accuracy(cm) == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    # A 4th class the model knows but nobody shows or predicts changes nothing.
    cm4 = M.confusion_matrix(T, P, 4)
    assert M.macro_f1(cm4) == pytest.approx(M.macro_f1(cm))
    assert M.balanced_accuracy(cm4) == pytest.approx(M.balanced_accuracy(cm))


def test_zero_division_is_zero():
    cm = M.confusion_matrix([0, 0], [1, 1], 2)  # class 1 predicted, never true
    pc = M.per_class_scores(cm)
    assert pc.precision.tolist() == [0.0, 0.0] and pc.recall.tolist() == [0.0, 0.0]
    assert M.macro_f1(cm) == 0.0
    assert M.balanced_accuracy(cm) == 0.0


def test_confusion_rejects_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        M.confusion_matrix([0, 3], [0, 0], 3)


def test_most_confused_pairs():
    cm = np.array([[5, 3, 0], [1, 5, 0], [0, 4, 5]])
    pairs = M.most_confused_pairs(cm, ["1", "|", "l"], k=5)
    assert pairs[0] == {"a": "1", "b": "|", "a_as_b": 3, "b_as_a": 1, "total": 4}
    assert [(p["a"], p["b"], p["total"]) for p in pairs] == [("1", "|", 4), ("l", "|", 4)]
    assert pairs[1]["a_as_b"] == 4 and pairs[1]["b_as_a"] == 0


def test_wilson_interval():
    # 8/10 at 95%: centre (0.8 + z^2/20) / (1 + z^2/10), half-width z*sqrt(.016 + z^2/400)/(1 + z^2/10)
    lo, hi = M.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)
    assert M.wilson_interval(0, 10)[0] == 0.0
    assert M.wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in M.wilson_interval(0, 0))


def test_bootstrap_interval_brackets_mean():
    correct = np.array([1] * 80 + [0] * 20, dtype=bool)
    lo, hi = M.bootstrap_interval(correct, n_boot=500, seed=1)
    assert lo < 0.8 < hi
    assert 0.65 < lo and hi < 0.92


def test_mcnemar_exact_small_table():
    # b=10, c=2: P[X<=2], X~Bin(12,1/2) = (1 + 12 + 66)/4096; two-sided doubles it
    r = M.mcnemar_from_counts(10, 2)
    assert r.method == "exact"
    assert r.p_value == pytest.approx(2 * 79 / 4096)
    assert r.significant()
    # b=5, c=3: 2 * (1 + 8 + 28 + 56)/256 = 186/256
    assert M.mcnemar_from_counts(5, 3).p_value == pytest.approx(186 / 256)
    assert M.mcnemar_from_counts(0, 0).p_value == 1.0
    assert M.mcnemar_from_counts(4, 4).p_value == 1.0


def test_mcnemar_chi2_large_table():
    # b=30, c=10: (|30-10|-1)^2/40 = 9.025, p = P[chi2_1 > 9.025] = erfc(sqrt(9.025/2)) ~ 0.002663
    r = M.mcnemar_from_counts(30, 10)
    assert r.method == "chi2-cc"
    assert r.statistic == pytest.approx(9.025)
    assert r.p_value == pytest.approx(0.0026635, rel=1e-3)
    # b=15, c=12: (3-1)^2/27 = 0.148, not significant
    r = M.mcnemar_from_counts(15, 12)
    assert r.statistic == pytest.approx(4 / 27)
    assert r.p_value == pytest.approx(0.7003, abs=1e-3)
    assert not r.significant()


def test_mcnemar_from_correctness():
    a = np.array([1, 1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 0, 1, 0, 1], dtype=bool)
    r = M.mcnemar(a, b)
    assert (r.b, r.c) == (2, 1)


def test_summarize_keys():
    s = M.summarize(Y, PROBS, ["a", "b", "c"])
    assert s["top1"] == 0.5 and s["top5"] == 1.0 and s["n"] == 4 and s["correct"] == 2
    assert len(s["confusion"]) == 3 and s["ci_method"] == "wilson"


# -- against scipy's references (scipy is a test dependency only) ----------------

# Small tables (exact test), the b + c = 25 switch, tied counts (b == c) on both sides of it, large tables.
MCNEMAR_GRID = [(1, 0), (0, 5), (3, 3), (10, 2), (12, 12), (7, 17), (12, 13), (13, 12), (13, 13), (14, 11),
                (18, 7), (20, 20), (30, 10), (45, 60), (100, 100), (101, 100), (150, 100), (500, 430)]


@pytest.mark.parametrize("b, c", MCNEMAR_GRID)
def test_mcnemar_grid_against_scipy(b, c):
    from scipy import stats

    r = M.mcnemar_from_counts(b, c)
    exact = stats.binomtest(b, b + c, 0.5).pvalue  # two-sided
    if b + c < M.MCNEMAR_EXACT_BELOW:
        assert r.method == "exact" and r.statistic is None
        assert r.p_value == pytest.approx(exact, rel=1e-9)
    else:
        # Edwards' correction clamped at zero (the documented choice for b == c).
        stat = max(abs(b - c) - 1, 0) ** 2 / (b + c)
        assert r.method == "chi2-cc"
        assert r.statistic == pytest.approx(stat, abs=1e-12)
        assert r.p_value == pytest.approx(stats.chi2.sf(stat, df=1), rel=1e-9, abs=1e-15)
        assert abs(r.p_value - exact) < 0.005  # the approximation stays close to the exact test


@pytest.mark.parametrize("k", [13, 14, 20, 100])
def test_mcnemar_tied_counts_give_p_one_like_the_exact_test(k):
    """b == c: no evidence either way. We clamp the continuity correction, so p = 1
    (the exact binomial p); statsmodels/R's mcnemar square |b - c| - 1 = -1 instead."""
    from scipy import stats

    r = M.mcnemar_from_counts(k, k)
    assert r.method == "chi2-cc" and r.statistic == 0.0 and r.p_value == 1.0
    assert stats.binomtest(k, 2 * k, 0.5).pvalue == pytest.approx(1.0)
    unclamped = stats.chi2.sf(1 / (2 * k), df=1)  # statsmodels' mcnemar(exact=False): 0.84 at k = 13
    assert unclamped < 0.96 and r.p_value - unclamped > 0.04
    # One apart is tied too once corrected: |13 - 14| - 1 = 0.
    assert M.mcnemar_from_counts(k, k + 1).p_value == 1.0


@pytest.mark.parametrize("confidence", [0.90, 0.95, 0.99])
@pytest.mark.parametrize("successes, n", [(0, 1), (1, 1), (0, 10), (3, 10), (8, 10), (10, 10), (1, 37),
                                          (50, 100), (97, 100), (4321, 4648), (46_000, 46_479)])
def test_wilson_interval_against_scipy(successes, n, confidence):
    from scipy import stats

    ref = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = M.wilson_interval(successes, n, confidence)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)
    assert lo <= successes / n <= hi
