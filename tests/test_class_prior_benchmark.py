"""benchmarks/class_prior.py: every strength of undo_class_weights scored from one trained run equals what
that run predicts with the strength applied; its saved strength gives evaluate's scores."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from benchmark_helpers import load_benchmark
from mathsym_zoo.data.dataset import Dataset
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.evaluate import evaluate_model, load_model
from test_compare import CLASSES, _images, make_job

bench = load_benchmark("class_prior")


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_restrength_moves_the_prior_along_its_line():
    rng = np.random.default_rng(0)
    raw = _softmax(rng.normal(size=(5, 4)))
    shift = rng.normal(size=4)
    saved = _softmax(np.log(raw) + 0.8 * shift)  # what a model saved with strength 0.8 outputs
    np.testing.assert_allclose(bench.restrength(saved, 0.8 * shift, 0.8, 0.8), saved, atol=1e-12)
    np.testing.assert_allclose(bench.restrength(saved, 0.8 * shift, 0.8, 0.0), raw, atol=1e-12)
    np.testing.assert_allclose(bench.restrength(saved, 0.8 * shift, 0.8, 1.0), _softmax(np.log(raw) + shift),
                               atol=1e-12)


def test_a_run_without_a_prior_is_refused_with_the_fix():
    run = types.SimpleNamespace(path="runs/x", info={"job": {"train": {"undo_class_weights": 0.0}}})
    with pytest.raises(ConfigError, match="undo_class_weights > 0"):
        bench.saved_prior(run, types.SimpleNamespace(layers=[]))


def test_the_val_choice_breaks_ties_by_macro_recall():
    table = {0.8: {"val": (0.95, 0.86)}, 1.0: {"val": (0.95, 0.84)}, 1.2: {"val": (0.94, 0.80)}}
    assert bench.chosen(table) == 0.8


@pytest.fixture(scope="module")
def weighted_run(tmp_path_factory):
    """A tiny run trained with class weights on imbalanced classes (40/12/6 images), prior fully undone."""
    from mathsym_zoo.training import train_model

    tmp = tmp_path_factory.mktemp("prior")
    labels = np.repeat(np.arange(3), [40, 12, 6])
    ds = Dataset.from_arrays(_images(labels, np.random.default_rng(0)), labels, CLASSES, path=tmp / "ds",
                             key="prior-test", source={"describe": "imbalanced bars", "fingerprint": "e" * 64})
    job = make_job(tmp)
    train = job.train.model_copy(update={"class_weights": True, "undo_class_weights": 1.0, "epochs": 3})
    job = dataclasses.replace(job, train=train)
    result = train_model(job, "tiny-2", dataset=ds)
    return job, ds, result.run


def test_each_strength_is_what_the_run_predicts_with_it(weighted_run):
    job, ds, run = weighted_run
    table = bench.analyse([run], [0.0, 0.5], job=job, dataset=ds)
    assert sorted(table) == [0.0, 0.5, 1.0]  # the saved strength is always a row
    _, split = run.training_data(job, dataset=ds)
    test_rows = np.asarray(split.indices["test"], np.int64)
    saved = evaluate_model(load_model(run), ds, test_rows, latency_repeats=2)
    assert table[1.0]["test"] == pytest.approx((saved.metrics["top1"], saved.metrics["balanced_accuracy"]))

    model = run.load_model()
    strength, shift = bench.saved_prior(run, model)
    assert strength == 1.0 and np.ptp(shift) > 0.5  # imbalanced classes: a real prior to vary
    images = np.asarray(ds.images[test_rows], np.float32)
    raw = np.asarray(model(images, training=True))  # ClassPrior passes probabilities through in training
    half = _softmax(np.log(np.maximum(raw, 1e-30)) + 0.5 * shift)
    saved_probs = bench.member_outputs(run, ds, split)["probs"]["test"]
    for strength, probs in ((0.0, raw), (0.5, half)):
        np.testing.assert_allclose(bench.restrength(saved_probs, shift, 1.0, strength), probs, atol=1e-4)
