"""Training settings change what training does, checked through the public API only.

Every job here reads a folder of generated PNGs through the ``archive`` source, is
resolved by ``registry.resolve`` and trained by ``mathsym_zoo.api.train``; what a run
did is read from the returned result (history, metrics, status, model), never from
file names of the run folder. Each expectation is worked out independently of the
code under test: the cosine formula, the optimum of a weighted or smoothed
cross-entropy, a validation set built to disagree with the training set.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mathsym_zoo import api
from mathsym_zoo.registry import resolve

TESTS = Path(__file__).resolve().parent
PLUGIN = TESTS / "tiny_arch_plugin.py"  # the "tiny-test" architecture: one conv, global pooling, softmax
BN_PLUGIN = TESTS / "tiny_bn_plugin.py"  # "tiny-bn": conv, BatchNorm, softmax
MLP_PLUGIN = TESTS.parent / "examples" / "plugins" / "tiny_mlp.py"  # the README's "tiny-mlp" example


def write_images(folder: Path, images: dict[str, list[np.ndarray]]) -> Path:
    """``folder/extracted_images/<label>/<label>_<i>.png`` (lossless), the Kaggle layout."""
    for label, arrays in images.items():
        (folder / "extracted_images" / label).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(arrays):
            Image.fromarray(a, "L").save(folder / "extracted_images" / label / f"{label}_{i:03d}.png")
    return folder


def job_table(root: Path, data: Path, *, preprocessing=None, models=None, **train) -> dict:
    """A registry (as a dict) reading the image folder ``data``, caches and runs under ``root``."""
    settings = {"epochs": 3, "batch_size": 16, "early_stopping_patience": 0, "runs_dir": str(root / "runs"), **train}
    return {"plugin_paths": [str(PLUGIN), str(MLP_PLUGIN)],
            "data": {"source": "local", "cache_dir": str(root / "cache"), "workers": 1},
            "sources": {"local": {"type": "archive", "path": str(data)}},
            "preprocessing": preprocessing or [{"type": "grayscale"}],
            "split": {"train": 0.6, "val": 0.2, "test": 0.2},
            "models": models or {"tiny-test": {"type": "tiny-test"}},
            "train": settings}


def make_job(root: Path, data: Path, **kwargs):
    return resolve(raw=job_table(root, data, **kwargs))


def noise(rng, n: int, mean: float, size: int = 8) -> list[np.ndarray]:
    """``n`` distinct images: grey level ``mean`` plus noise (no two hash alike)."""
    return [np.clip(rng.normal(mean, 25, (size, size)), 0, 255).astype(np.uint8) for _ in range(n)]


def probabilities(result, images: list[np.ndarray]) -> np.ndarray:
    """The trained model's softmax on raw 0-255 images (the model scales them itself)."""
    x = np.stack(images)[..., None].astype("float32")
    return np.asarray(result.model(x, training=False))


def probe_val_side(root: Path, rng, names: dict[str, int]):
    """``(split, member paths on its val side)`` for a folder holding ``names`` images per class.

    The split depends only on member paths, labels and the seed (pixels matter only for exact
    duplicates), so a probe folder with the same names tells which images will be validated."""
    probe = write_images(root / "probe", {c: noise(rng, n, 128) for c, n in names.items()})
    probe_job = make_job(root, probe)
    split = api.load_split(probe_job)
    return split, set(np.asarray(api.load_dataset(probe_job).paths)[split.indices["val"]])


# -- early stopping --------------------------------------------------------------


def test_early_stopping_stops_and_restores_the_best_epoch(tmp_path):
    """The validation images say the opposite of the training images (dark <-> light),
    so every epoch of learning makes val_loss worse: the best epoch is the first, and
    training must stop after exactly 1 + patience epochs with the first epoch's weights
    (which images are validated is read from a probe folder with the same names first)."""
    rng = np.random.default_rng(0)
    names = {"dark": 40, "light": 40}
    probe_split, val = probe_val_side(tmp_path, rng, names)
    assert len(val) == 16

    def drawn(label: str, i: int) -> np.ndarray:
        light = label == "light"
        if f"extracted_images/{label}/{label}_{i:03d}.png" in val:
            light = not light  # the validation side says the opposite
        return noise(rng, 1, 190 if light else 60)[0]

    data = write_images(tmp_path / "data", {c: [drawn(c, i) for i in range(n)] for c, n in names.items()})
    patience, epochs = 2, 12
    job = make_job(tmp_path, data, epochs=epochs, early_stopping_patience=patience, learning_rate=0.01, batch_size=8)
    assert api.load_split(job).hash == probe_split.hash  # the same images are on the validation side

    result = api.train(job, "tiny-test")
    val_losses = [row["val_loss"] for row in result.history]
    assert result.status == "early-stopped"
    assert result.best_epoch == 1 and result.epochs == 1 + patience < epochs
    assert len(result.history) == result.epochs
    assert all(b > a for a, b in zip(val_losses, val_losses[1:])), val_losses  # worse every epoch
    assert result.metrics["val"]["loss"] == pytest.approx(val_losses[0], rel=1e-4)  # best weights restored
    assert result.metrics["val"]["loss"] < val_losses[-1] - 1e-3


# -- training on the validation side too ----------------------------------------------


def test_train_on_val_fits_the_validation_images_and_keeps_the_last_epoch(tmp_path):
    """On the train side "dark" is grey level 20 and "light" 235; on the val side "dark" is
    160, lighter than their midpoint. Trained on the train side alone the (brightness-only)
    model calls those val images light; trained on both sides it must learn that 160 is
    dark. The kept model is the last epoch's, whatever the (now fitted) val loss says, and
    the run says its val side is not held out: `evaluate --side val` refuses it."""
    from mathsym_zoo.errors import ConfigError

    rng = np.random.default_rng(3)
    names = {"dark": 40, "light": 40}
    probe_split, val = probe_val_side(tmp_path, rng, names)

    def drawn(label: str, i: int) -> np.ndarray:
        on_val = f"extracted_images/{label}/{label}_{i:03d}.png" in val
        return noise(rng, 1, 235 if label == "light" else 160 if on_val else 20)[0]

    data = write_images(tmp_path / "data", {c: [drawn(c, i) for i in range(n)] for c, n in names.items()})
    settings = dict(epochs=20, learning_rate=0.05, batch_size=8, lr_schedule="cosine")
    held_out = api.train(make_job(tmp_path / "held-out", data, **settings), "tiny-test")
    fitted_job = make_job(tmp_path / "fitted", data, train_on_val=True, **settings)
    fitted = api.train(fitted_job, "tiny-test")
    assert api.load_split(make_job(tmp_path, data)).hash == probe_split.hash

    assert held_out.metrics["val"]["accuracy"] <= 0.75  # the val "dark" images look light to it
    assert fitted.metrics["val"]["accuracy"] == 1.0
    assert fitted.best_epoch == fitted.epochs == 20
    assert fitted.metrics["val"]["loss"] == pytest.approx(fitted.history[-1]["val_loss"], rel=1e-4)
    assert fitted.run.fit_sides == ("train", "val") and held_out.run.fit_sides == ("train",)
    assert "val top-1 1.0000 (trained on: train_on_val)" in fitted.summary_line()
    assert api.runs(tmp_path / "fitted" / "runs")[0]["best_val_top1"] is None
    with pytest.raises(ConfigError, match="trained on the val side too.*--side test"):
        api.evaluate(fitted.run, job=fitted_job, side="val", report=False)
    assert api.evaluate(fitted.run, job=fitted_job, side="test", report=False)[0].metrics["top1"] == pytest.approx(
        fitted.metrics["test"]["accuracy"])


# -- learning-rate schedule ------------------------------------------------------


def test_cosine_learning_rate_recorded_per_epoch_follows_the_curve(tmp_path):
    """CosineDecay over the whole run: after epoch k of E the rate is lr0 (1 + cos(pi k / E)) / 2,
    whatever the number of steps per epoch (it decays over epochs * steps)."""
    rng = np.random.default_rng(1)
    data = write_images(tmp_path / "data", {"a": noise(rng, 30, 80), "b": noise(rng, 30, 170)})
    lr0, epochs = 0.02, 4
    cosine = api.train(make_job(tmp_path, data, epochs=epochs, learning_rate=lr0, lr_schedule="cosine"), "tiny-test")
    recorded = [row["learning_rate"] for row in cosine.history]
    expected = [lr0 * (1 + math.cos(math.pi * k / epochs)) / 2 for k in range(1, epochs + 1)]
    assert recorded == pytest.approx(expected, rel=1e-5, abs=1e-9), (recorded, expected)
    assert recorded[-1] == pytest.approx(0.0, abs=1e-9)


# -- class weights ---------------------------------------------------------------


def test_class_weights_balance_what_the_model_learns(tmp_path):
    """Images carry no class signal and 80% are class "a". Unweighted cross-entropy is
    minimised by predicting the prior, P(b) = 0.2, where the loss is H(0.2) = 0.500.
    Inverse-frequency weights (w_a = 0.625, w_b = 2.5: mean weight 1) make both classes
    weigh the same: the optimum is P(b) = 0.5 and the reported (weighted) loss ln 2 = 0.693."""
    rng = np.random.default_rng(2)
    images = {"a": noise(rng, 80, 128), "b": noise(rng, 20, 128)}
    data = write_images(tmp_path / "data", images)
    everything = images["a"] + images["b"]
    p_b, loss = {}, {}
    for weighted in (False, True):
        job = make_job(tmp_path / str(weighted), data, epochs=12, learning_rate=0.01, batch_size=8,
                       class_weights=weighted)
        result = api.train(job, "tiny-test")
        p_b[weighted] = float(probabilities(result, everything)[:, 1].mean())
        loss[weighted] = float(np.mean([row["loss"] for row in result.history[-6:]]))
    assert p_b[False] == pytest.approx(0.2, abs=0.07), p_b
    assert p_b[True] == pytest.approx(0.5, abs=0.1), p_b
    assert loss[False] == pytest.approx(0.500, abs=0.05), loss
    assert loss[True] == pytest.approx(math.log(2), abs=0.05), loss


# -- label smoothing -------------------------------------------------------------


def test_label_smoothing_caps_the_confidence(tmp_path):
    """Two easily told classes. With smoothing eps over C = 2 classes the target of the true
    class is 1 - eps + eps / C = 0.9 (eps = 0.2), the optimum of the smoothed loss: the
    model's confidence settles there. Without smoothing it keeps growing towards 1."""
    rng = np.random.default_rng(3)
    images = {"dark": noise(rng, 30, 50), "light": noise(rng, 30, 205)}
    data = write_images(tmp_path / "data", images)
    confidence = {}
    for eps in (0.0, 0.2):
        job = make_job(tmp_path / str(eps), data, epochs=8, batch_size=8, learning_rate=0.05, label_smoothing=eps)
        probs = probabilities(api.train(job, "tiny-test"), images["dark"] + images["light"])
        truth = np.repeat([0, 1], 30)
        assert (probs.argmax(1) == truth).mean() == 1.0, eps  # both runs learned the task
        confidence[eps] = probs[np.arange(60), truth]
    target = 1 - 0.2 + 0.2 / 2
    assert confidence[0.2].mean() == pytest.approx(target, abs=0.03), confidence[0.2].mean()
    assert confidence[0.2].max() < 0.95 < confidence[0.0].min()  # every image: capped vs not


# -- a model learns ----------------------------------------------------------------

EASY_CLASSES = ("+", "-", "0", "1")  # visually distinct, and early in the demo's class order


def demo_images(per_class: int, classes=EASY_CLASSES) -> dict[str, list[np.ndarray]]:
    """Images of a few classes from the built-in demo source (stops once it has them)."""
    source = resolve(raw={"data": {"source": "demo"}, "sources": {"demo": {
        "type": "demo", "images_per_class": per_class, "seed": 0, "distortion": 0.5}}}).build_source()
    out: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for record in source.records():
        if record.label in out:
            out[record.label].append(np.asarray(record.image).reshape(record.image.shape[:2]))
        if all(len(v) == per_class for v in out.values()):
            return out
    raise AssertionError(f"the demo source has no {classes}")


def test_a_tiny_model_learns_easy_demo_symbols(tmp_path):
    """300 demo images of 4 distinct symbols, a 20x20 input, the README's one-hidden-layer
    MLP, a few epochs: test accuracy far above chance (25%). Seeded: the same figure each run."""
    data = write_images(tmp_path / "data", demo_images(75))
    job = make_job(tmp_path, data, epochs=4, learning_rate=0.01, batch_size=16,
                   preprocessing=[{"type": "grayscale"}, {"type": "resize_pad", "size": [20, 20]}, {"type": "invert"}],
                   models={"tiny-mlp": {"type": "tiny-mlp", "units": 64}})
    result = api.train(job, "tiny-mlp")
    assert result.metrics["test"]["images"] >= 50
    assert result.metrics["test"]["accuracy"] >= 0.8, result.metrics
    assert result.history[-1]["loss"] < 0.6 * result.history[0]["loss"]


# -- two workers (MultiWorkerMirroredStrategy over TF_CONFIG, on one machine) --------

WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mathsym_zoo import api
    from mathsym_zoo.registry import resolve

    raw, run_dir, out = json.loads(open(sys.argv[1]).read()), sys.argv[2], sys.argv[3]
    result = api.train(resolve(raw=raw), next(iter(raw["models"])), run_dir=run_dir)
    np.savez(out + ".npz", *result.model.get_weights())
    with open(out + ".json", "w") as f:
        json.dump({"status": result.status, "history": result.history,
                   "devices": result.devices}, f, default=str)
""")


def _free_ports(k: int) -> list[int]:
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_one_model_with_two_replicas(tmp_path):
    rng = np.random.default_rng(4)
    data = write_images(tmp_path / "data", {"a": noise(rng, 64, 80, 12), "b": noise(rng, 64, 170, 12)})
    # With BatchNorm: its statistics are re-estimated before each validation on every worker alike.
    table = job_table(tmp_path, data, epochs=2, batch_size=16, strategy="multi-worker",
                      models={"tiny-bn": {"type": "tiny-bn"}})
    table["plugin_paths"].append(str(BN_PLUGIN))
    api.load_split(resolve(raw=table))  # decode and split once here, so the workers only read the cache
    raw = tmp_path / "job.json"
    raw.write_text(json.dumps(table))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}))
        procs.append(subprocess.Popen([sys.executable, str(script), str(raw), str(tmp_path / f"run-{i}"),
                                       str(tmp_path / f"out-{i}")], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
    try:
        logs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    infos = [json.loads((tmp_path / f"out-{i}.json").read_text()) for i in range(2)]
    assert [i["status"] for i in infos] == ["completed", "completed"]
    assert infos[0]["history"][-1]["loss"] == pytest.approx(infos[1]["history"][-1]["loss"])  # averaged logs
    w0, w1 = np.load(tmp_path / "out-0.npz"), np.load(tmp_path / "out-1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for key in w0.files:  # gradients were all-reduced: one model, not two
        assert np.array_equal(w0[key], w1[key]), key
    # Only the chief (worker 0) writes its run folder, and that run loads.
    assert not any((tmp_path / "run-1").glob("*"))  # absent or empty
    # Keras' TensorBoard callback works under the hand-driven multi-worker loop (chief only).
    assert list((tmp_path / "run-0" / "tb" / "train").glob("events.out.tfevents.*"))
    assert api.load_classifier(tmp_path / "run-0").predict(np.full((12, 12, 1), 128, np.uint8))[0].ok
    _assert_batchnorm_calibrated(tmp_path / "run-0", resolve(raw=table))
    devices = [i["devices"] for i in infos]
    assert [d["strategy"] for d in devices] == ["multi-worker", "multi-worker"]
    assert [d["replicas"] for d in devices] == [2, 2]  # both workers' replicas trained in sync


def _assert_batchnorm_calibrated(run_dir: Path, job) -> None:
    """The chief's saved BatchNorm statistics are those of the calibration batch under its weights
    (without the re-estimate they would still sit near their initial 0 / 1 after a few steps)."""
    import keras

    from mathsym_zoo.runs import Run
    from mathsym_zoo.training.batchnorm import calibration_images

    run = Run.open(run_dir)
    dataset, split = run.training_data(job)
    layers = list(run.load_model()._flatten_layers(include_self=False))
    conv = next(x for x in layers if isinstance(x, keras.layers.Conv2D))
    bn = next(x for x in layers if isinstance(x, keras.layers.BatchNormalization))
    images = calibration_images(dataset.images, split.indices["train"]).astype("float32") / 255
    features = keras.ops.convert_to_numpy(conv(images))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), features.mean(axis=(0, 1, 2)),
                               rtol=1e-3, atol=1e-5)
