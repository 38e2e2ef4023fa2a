"""The training recipe of [train]: warm-up + cosine schedule, decoupled weight decay that spares biases and
normalisation, class weights, the EMA of weights (validated, saved, resumed exactly)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mathsym_zoo.data.dataset import Dataset
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.registry import TrainConfig, resolve
from mathsym_zoo.runs import Run
from mathsym_zoo.training.recipe import build_optimizer, class_weights, learning_rate

PLUGIN = Path(__file__).resolve().parent / "tiny_arch_plugin.py"
BN_PLUGIN = Path(__file__).resolve().parent / "tiny_bn_plugin.py"  # "tiny-bn": conv, BatchNorm, softmax


def bright_dataset(path, n=192, size=12, classes=4) -> Dataset:
    """Learnable generated images: brightness encodes the class."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    images = (rng.random((n, size, size)) * 40 + labels[:, None, None] * 50).astype(np.uint8)
    return Dataset.from_arrays(images, labels, [f"s{c}" for c in range(classes)], path=path, key=f"bright-{n}",
                               source={"name": "bright"}, preprocessing=[])


def job_for(root: Path, *overrides: str, **train):
    settings = {"epochs": 3, "batch_size": 16, "runs_dir": str(root / "runs"), "early_stopping_patience": 0,
                "learning_rate": 0.01, **train}
    root.mkdir(parents=True, exist_ok=True)
    lines = [f'plugin_paths = ["{PLUGIN}", "{BN_PLUGIN}"]', "[data]", 'source = "demo"',
             f'cache_dir = "{root / "cache"}"', "[models.tiny]", 'type = "tiny-test"', "width = 4",
             "[models.bn]", 'type = "tiny-bn"', "[train]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    (root / "registry.toml").write_text("\n".join(lines) + "\n")
    return resolve(root / "registry.toml", overrides=overrides)


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"ema": 0.5}, "ema is the averaging momentum per step: 0 (off) or in [0.9, 1)"),
    ({"ema": 1.0}, "less than 1"),
    ({"class_weight_power": 0}, "greater than 0"),
    ({"lr_schedule": "warmup"}, "'warmup-cosine'"),
    ({"undo_class_weights": True}, "undo_class_weights undoes class_weights at inference: set class_weights = true"),
    ({"class_weights": True, "undo_class_weights": 1.5}, "less than or equal to 1"),
    ({"train_on_val": True, "early_stopping_patience": 2}, "cannot stop training .* set early_stopping_patience = 0"),
    ({"train_on_val": True, "lr_schedule": "plateau"}, "other than 'plateau'"),
])
def test_recipe_settings_are_validated(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        job_for(tmp_path, **settings)


@pytest.mark.parametrize("value, share", [(True, 1.0), (False, 0.0), (0.75, 0.75)])
def test_undo_class_weights_is_all_none_or_a_share(tmp_path, value, share):
    """true/false as before; a share in [0, 1] adds back that much of the weights' log."""
    assert job_for(tmp_path, class_weights=True, undo_class_weights=value).train.undo_class_weights == share


def test_warmup_then_cosine():
    cfg = TrainConfig(epochs=10, learning_rate=0.002, lr_schedule="warmup-cosine", warmup_epochs=2)
    schedule = learning_rate(cfg, steps_per_epoch=50)
    lr = [float(schedule(step)) for step in (0, 50, 100, 300, 500)]
    assert lr[0] == 0.0 and lr[1] == pytest.approx(0.001) and lr[2] == pytest.approx(0.002)
    assert lr[2] > lr[3] > lr[4] and lr[4] == pytest.approx(0.0, abs=1e-9)
    assert learning_rate(TrainConfig(), 50) == 1e-3  # constant stays a float


def test_warmup_is_at_most_half_the_run():
    """`--set train.epochs=1` on the shipped recipe (warmup_epochs = 1) warms up over half the epoch, then decays."""
    cfg = TrainConfig(epochs=1, learning_rate=0.002, lr_schedule="warmup-cosine", warmup_epochs=1)
    schedule = learning_rate(cfg, steps_per_epoch=100)
    assert float(schedule(25)) == pytest.approx(0.001) and float(schedule(50)) == pytest.approx(0.002)
    assert float(schedule(99)) < 0.0001
    long = learning_rate(TrainConfig(epochs=10, lr_schedule="warmup-cosine", warmup_epochs=1), steps_per_epoch=100)
    assert float(long(50)) == pytest.approx(0.0005)  # a 10-epoch run keeps its one-epoch warm-up


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_weight_decay_spares_biases_and_normalisation(optimizer):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    cfg = TrainConfig(optimizer=optimizer, weight_decay=0.1, learning_rate=0.5)
    opt = build_optimizer(cfg, steps_per_epoch=1)
    for v in model.trainable_variables:
        v.assign(np.ones(v.shape, "float32"))
    opt.apply([np.zeros(v.shape, "float32") for v in model.trainable_variables], model.trainable_variables)
    values = {v.path.split("/")[-1]: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    assert np.all(values["kernel"] < 1)  # decayed (zero gradients: decay is the only update)
    for name in ("bias", "gamma", "beta"):
        assert np.all(values[name] == 1), name


def test_class_weights_inverse_and_square_root():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    inverse, root = class_weights(labels, 4), class_weights(labels, 4, power=0.5)
    for w in (inverse, root):
        assert sum(w[c] * n for c, n in enumerate((90, 9, 1, 0))) == pytest.approx(100)  # mean weight 1 per image
        assert w[3] == 0 and w[0] < w[1] < w[2]
    assert inverse[2] / inverse[0] == pytest.approx(90) and root[2] / root[0] == pytest.approx(90 ** 0.5)


# -- undoing the class weights at inference -------------------------------------------------------


def skewed_dataset(path, size=12) -> Dataset:
    """Brightness encodes the class, with a common class (0) beside rare ones (80/40/20/20 images)."""
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2, 3], [80, 40, 20, 20])
    images = (rng.random((len(labels), size, size)) * 60 + labels[:, None, None] * 45).astype(np.uint8)
    return Dataset.from_arrays(images, labels, [f"s{c}" for c in range(4)], path=path, key="skewed",
                               source={"name": "skewed"}, preprocessing=[])


def test_class_prior_layer_is_identity_in_training_and_shifts_log_probabilities_at_inference():
    from mathsym_zoo.model_layers import ClassPrior, prior_shift

    p = np.array([[0.6, 0.3, 0.1, 0.0]], np.float32)
    layer = ClassPrior([0.5, 0.0, -0.5, 1.0])
    np.testing.assert_array_equal(np.asarray(layer(p, training=True)), p)
    expected = np.array([0.6 * np.exp(0.5), 0.3, 0.1 * np.exp(-0.5), 0.0])
    np.testing.assert_allclose(np.asarray(layer(p, training=False))[0], expected / expected.sum(), rtol=1e-5, atol=1e-12)
    # -log(weight), centred; a class without training images gets the lowest shift of the others.
    weights = class_weights(np.array([0] * 90 + [1] * 9 + [2] * 1), 4, power=0.5)
    shift = prior_shift(weights, 4)
    assert shift[0] - shift[2] == pytest.approx(0.5 * np.log(90)) and shift[3] == min(shift[:3])
    assert sum(shift[:3]) == pytest.approx(0)
    assert prior_shift(weights, 4, strength=0.75) == pytest.approx([0.75 * v for v in shift])
    with pytest.raises(ValueError, match="finite"):
        ClassPrior([0.0, float("inf")])


def test_undo_class_weights_saves_a_model_that_predicts_with_the_data_prior(tmp_path):
    """The saved model (loaded with safe_mode=True) is the weighted model plus the fixed shift, which
    has no weights: the same weight tensors as without it, so resume and --init-from are unchanged."""
    import keras

    from mathsym_zoo.model_layers import prior_shift
    from mathsym_zoo.runs import load_keras_model
    from mathsym_zoo.training import train_model

    ds = skewed_dataset(tmp_path / "data")
    plain = train_model(job_for(tmp_path / "a", epochs=2, class_weights=True), "tiny", dataset=ds)
    undone = train_model(job_for(tmp_path / "b", epochs=2, class_weights=True, undo_class_weights=True), "tiny",
                         dataset=ds)
    model = load_keras_model(Run(undone.run_dir).best_path)
    train = Run(undone.run_dir).training_data(dataset=ds)[1].indices["train"]
    expected_shift = prior_shift(class_weights(ds.labels[train], 4, power=1.0), 4)
    assert model.get_layer("class_prior").shift == pytest.approx(expected_shift)
    assert expected_shift[0] > expected_shift[3]  # the common class is raised back
    for mine, theirs in zip(model.get_weights(), load_keras_model(Run(plain.run_dir).best_path).get_weights()):
        np.testing.assert_array_equal(mine, theirs)  # same training (the layer is identity there)
    images = np.asarray(ds.images).astype("float32")
    weighted = keras.Model(model.inputs, model.get_layer("class_prior").input).predict(images, verbose=0)
    logits = np.log(np.maximum(weighted, 1e-30)) + np.array(expected_shift)
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict(images, verbose=0), want / want.sum(axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-6)
    half = train_model(job_for(tmp_path / "c", epochs=1, class_weights=True, undo_class_weights=0.5), "tiny",
                       dataset=ds)
    shift = load_keras_model(Run(half.run_dir).best_path).get_layer("class_prior").shift
    assert shift == pytest.approx([0.5 * v for v in expected_shift])  # a share adds back that much


# -- EMA of weights -------------------------------------------------------------------------------


def _val_loss(model_path: Path, ds, indices) -> float:
    import keras

    from mathsym_zoo.runs import load_keras_model

    model = load_keras_model(model_path)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy())
    return float(model.evaluate(np.asarray(ds.images)[indices].astype("float32"), ds.labels[indices],
                                batch_size=16, verbose=0))


def test_ema_weights_are_validated_and_saved(tmp_path):
    """best.keras / last.keras hold the averaged weights, and val_loss in history.csv is theirs."""
    import keras

    from mathsym_zoo.training import train_model

    ds = bright_dataset(tmp_path / "data")
    result = train_model(job_for(tmp_path, epochs=2, ema=0.9), "bn", dataset=ds)
    run = Run.open(result.run_dir)
    val = result.run.training_data(dataset=ds)[1].indices["val"]
    last_row = run.history()[-1]
    assert _val_loss(run.last_path, ds, val) == pytest.approx(last_row["val_loss"], rel=1e-4)
    # The saved optimizer's EMA slots hold the raw weights, which differ from the averages.
    saved = keras.saving.load_model(run.last_path, safe_mode=True)
    from mathsym_zoo.training.ema import ema_slots

    pairs = ema_slots(saved.optimizer)
    assert pairs and any(not np.allclose(keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(a))
                         for v, a in pairs)
    # Its BatchNorm statistics are those of the averaged weights on the calibration batch.
    _assert_calibrated(run.last_path, ds, result.run.training_data(dataset=ds)[1].indices["train"])
    # The model in memory is the saved one (fit's finalize step did not put the raw weights back).
    for mine, theirs in zip(result.model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_ema_run_extended_equals_a_longer_run(tmp_path):
    """Resuming swaps the raw weights back in: 1 epoch + 2 more == 3 epochs, to the last digit."""
    from mathsym_zoo.training import resume_run, train_model

    ds = bright_dataset(tmp_path / "data")
    long = train_model(job_for(tmp_path / "a", epochs=3, ema=0.9), "bn", dataset=ds)
    short = train_model(job_for(tmp_path / "b", epochs=1, ema=0.9), "bn", dataset=ds)
    resume_run(short.run_dir, job=job_for(tmp_path / "b", epochs=3, ema=0.9), dataset=ds)
    a, b = long.run.history(), Run(short.run_dir).history()
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6), (ra["epoch"], key)


def test_batchnorm_statistics_are_re_estimated_for_the_averaged_weights():
    """The averaged weights get BatchNorm statistics of their own (those of the raw weights do not fit them)."""
    import keras

    from mathsym_zoo.training.batchnorm import recalibrate_batchnorm

    conv, bn = keras.layers.Conv2D(3, 3), keras.layers.BatchNormalization(momentum=0.9)
    model = keras.Sequential([keras.Input((8, 8, 1)), conv, bn])
    images = np.random.default_rng(0).integers(0, 255, (32, 8, 8, 1)).astype("uint8")
    recalibrate_batchnorm(model, images)
    features = keras.ops.convert_to_numpy(conv(images.astype("float32")))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), features.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), features.var(axis=(0, 1, 2)),
                               rtol=1e-3)
    assert bn.momentum == 0.9  # put back


def _conv_and_bn(path: Path):
    """The tiny-bn model's convolution and BatchNorm layers, loaded from ``path``."""
    import keras

    layers = list(keras.saving.load_model(path, safe_mode=True)._flatten_layers(include_self=False))
    conv = next(x for x in layers if isinstance(x, keras.layers.Conv2D))
    return conv, next(x for x in layers if isinstance(x, keras.layers.BatchNormalization))


def _assert_calibrated(path: Path, ds, train_rows):
    """The saved BatchNorm statistics are those of the calibration batch (512 training rows evenly spaced,
    here all of them) under the saved convolution."""
    train = np.sort(train_rows)
    rows = train[np.unique(np.linspace(0, len(train) - 1, min(512, len(train))).astype(np.int64))]
    conv, bn = _conv_and_bn(path)
    features = keras_numpy(conv(np.asarray(ds.images[rows]).astype("float32") / 255))
    np.testing.assert_allclose(keras_numpy(bn.moving_mean), features.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(keras_numpy(bn.moving_variance), features.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)
    return conv, bn


def test_batchnorm_statistics_are_re_estimated_before_validation(tmp_path):
    """recalibrate_batchnorm (the default): the saved model's statistics are those of the calibration batch under
    its weights, validation scores that model, and the weights are exactly those trained without it."""
    from mathsym_zoo.training import train_model

    ds = bright_dataset(tmp_path / "data")
    on = train_model(job_for(tmp_path / "on", epochs=2), "bn", dataset=ds)
    off = train_model(job_for(tmp_path / "off", epochs=2, recalibrate_batchnorm=False), "bn", dataset=ds)
    split = on.run.training_data(dataset=ds)[1]
    conv, bn = _assert_calibrated(on.run.last_path, ds, split.indices["train"])
    assert _val_loss(on.run.last_path, ds, split.indices["val"]) == pytest.approx(on.run.history()[-1]["val_loss"],
                                                                                  rel=1e-4)
    # Training never reads the moving statistics: same weights, other statistics.
    conv_off, bn_off = _conv_and_bn(off.run.last_path)
    np.testing.assert_array_equal(keras_numpy(conv.kernel), keras_numpy(conv_off.kernel))
    np.testing.assert_array_equal(keras_numpy(bn.gamma), keras_numpy(bn_off.gamma))
    assert not np.allclose(keras_numpy(bn.moving_mean), keras_numpy(bn_off.moving_mean))
    assert [r["loss"] for r in on.run.history()] == [r["loss"] for r in off.run.history()]


def test_recalibrated_run_extended_equals_a_longer_run(tmp_path):
    """The calibration batch's random draws do not leak into later epochs: 1 epoch + 2 more == 3 epochs."""
    from mathsym_zoo.training import resume_run, train_model

    ds = bright_dataset(tmp_path / "data")
    long = train_model(job_for(tmp_path / "a", epochs=3), "bn", dataset=ds)
    short = train_model(job_for(tmp_path / "b", epochs=1), "bn", dataset=ds)
    resume_run(short.run_dir, job=job_for(tmp_path / "b", epochs=3), dataset=ds)
    for ra, rb in zip(long.run.history(), Run(short.run_dir).history(), strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6), (ra["epoch"], key)


def keras_numpy(x):
    import keras

    return keras.ops.convert_to_numpy(x)


def test_train_on_val_keeps_the_last_epoch_whatever_val_loss_says():
    """With train_on_val the val loss is a training loss: every epoch becomes the best (its weights
    kept), where the default keeps the epoch with the lowest val loss."""
    import keras

    from mathsym_zoo.training.callbacks import ResumableEarlyStopping

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    states = {keep: {"best": None, "best_epoch": None, "wait": 0} for keep in (False, True)}
    stoppers = {keep: ResumableEarlyStopping(states[keep], patience=0, keep_last=keep) for keep in (False, True)}
    for epoch, loss in enumerate([1.0, 2.0, 3.0]):  # val loss rises every epoch
        model.set_weights([np.full((1, 1), float(epoch)), np.zeros(1)])
        for stopper in stoppers.values():
            stopper.set_model(model)
            stopper.on_epoch_end(epoch, {"val_loss": loss})
    assert states[False]["best_epoch"] == 1 and stoppers[False].best_weights[0][0, 0] == 0.0
    assert states[True]["best_epoch"] == 3 and stoppers[True].best_weights[0][0, 0] == 2.0
