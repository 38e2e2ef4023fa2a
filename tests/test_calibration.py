"""Calibration metrics: expected calibration error (15 bins), reliability bins, NLL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mathsym_zoo import metrics as M

# Five images, two classes. Top-1 confidence, correct?, and 15-bin bin (lo, hi]:
#   0.90 right  -> bin 13 (0.867, 0.933]
#   0.92 wrong  -> bin 13            together: accuracy 0.5, confidence 0.91, gap 0.41
#   0.95 wrong  -> bin 14 (0.933, 1]  gap 0.95
#   0.60 right  -> bin 8 (0.533, 0.6] (exactly on an edge: the lower bin) gap 0.40
#   0.70 right  -> bin 10 (0.667, 0.733] gap 0.30
# ECE = (2 * 0.41 + 0.95 + 0.40 + 0.30) / 5 = 2.47 / 5 = 0.494
Y = np.array([0, 1, 1, 0, 1])
PROBS = np.array([[0.90, 0.10], [0.92, 0.08], [0.95, 0.05], [0.60, 0.40], [0.30, 0.70]])


def test_ece_against_a_hand_computed_example():
    assert M.expected_calibration_error(Y, PROBS) == pytest.approx(0.494)


def test_reliability_bins_by_hand():
    bins = M.reliability_bins(Y, PROBS)
    assert len(bins) == M.ECE_BINS == 15
    assert [b["count"] for b in bins] == [0] * 8 + [1, 0, 1, 0, 0, 2, 1]
    assert bins[13]["accuracy"] == 0.5 and bins[13]["confidence"] == pytest.approx(0.91)
    assert bins[8]["lo"] == pytest.approx(8 / 15) and bins[8]["hi"] == pytest.approx(0.6)
    assert bins[0]["accuracy"] is None and bins[0]["confidence"] is None


def test_ece_is_zero_when_confidence_matches_accuracy():
    # Ten images at confidence 0.8, eight of them right.
    y = np.array([0] * 8 + [1] * 2)
    probs = np.tile([0.8, 0.2], (10, 1))
    assert M.expected_calibration_error(y, probs) == pytest.approx(0.0)
    assert M.expected_calibration_error(y, probs, n_bins=1) == pytest.approx(0.0)


def test_nll_by_hand_and_clipped():
    expected = -(math.log(0.9) + math.log(0.08) + math.log(0.05) + math.log(0.6) + math.log(0.7)) / 5
    assert M.nll(Y, PROBS) == pytest.approx(expected)
    # A zero probability for the true class is clipped (as Keras does), not infinite.
    assert M.nll([1], [[1.0, 0.0]]) == pytest.approx(-math.log(M.NLL_EPS))


def test_nll_equals_the_keras_loss_of_a_softmax_model():
    import keras

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 6))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 6, size=50)
    loss = float(keras.losses.SparseCategoricalCrossentropy()(y, probs.astype(np.float32)))
    assert M.nll(y, probs) == pytest.approx(loss, rel=1e-5)


def test_empty_and_malformed_inputs():
    assert math.isnan(M.expected_calibration_error(np.zeros(0, int), np.zeros((0, 3))))
    assert math.isnan(M.nll(np.zeros(0, int), np.zeros((0, 3))))
    with pytest.raises(ValueError, match="probs must be"):
        M.nll([0, 1], [[1.0, 0.0]])


def test_summarize_carries_calibration():
    s = M.summarize(Y, PROBS, ["a", "b"])
    assert s["ece"] == pytest.approx(0.494) and s["nll"] == pytest.approx(M.nll(Y, PROBS))
    assert s["ece_bins"] == 15 and len(s["reliability"]) == 15
