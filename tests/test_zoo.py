"""The model zoo: every registered architecture trains, saves and reloads safely;
generated metadata (params, MACs, size) is right and cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mathsym_zoo import modelinfo
from mathsym_zoo.cli import run
from mathsym_zoo.plugins import PluginSet

REPO = Path(__file__).resolve().parents[1]

#: Small settings so the zoo test stays fast; an architecture not listed here is tested at its defaults.
SMALL = {
    "resnet-lite": {"width": 4, "depths": [1, 1]},
    "mobilenet-head": {"alpha": 0.25, "expansion": 2, "last_channels": 16},
}
ARCHITECTURES = [c.name for c in PluginSet().list("architecture")]
NUM_CLASSES = 7


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own model-info cache."""
    monkeypatch.setenv(modelinfo.ENV_HOME, str(tmp_path / "home"))


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    """Models saved by the zoo test, reloaded in a fresh process by the test after it."""
    return tmp_path_factory.mktemp("saved")


def _plugin_objects_only():
    """Keras' global custom-object registry as a fresh process has it after ``PluginSet()``:
    only what plugin modules register when imported."""
    import keras

    registry = keras.saving.get_custom_objects()
    return {k: v for k, v in registry.items()
            if getattr(v, "__module__", "").startswith(("mathsym_zoo_plugins", "mathsym_zoo_local_"))}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_trains_saves_and_reloads(name, saved_dir):
    import keras

    plugins = PluginSet()
    comp = plugins.get("architecture", name)
    params = comp.params(**SMALL.get(name, {}))
    rng = np.random.default_rng(0)
    for channels in (1, 3):
        keras.utils.set_random_seed(0)
        model = comp.factory(params, (45, 45, channels), NUM_CLASSES)
        assert isinstance(model, keras.Model)
        assert not model.compiled, "factories return uncompiled models"
        x = rng.random((8, 45, 45, channels), dtype=np.float32)  # images scaled to 0-1
        y = rng.integers(0, NUM_CLASSES, 8)
        # Eager: tracing a graph costs more than the one step of these tiny models.
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
        before = [w.copy() for w in model.get_weights()]
        loss = model.train_on_batch(x, y)
        assert np.isfinite(loss)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "a step changed nothing"

        probs = np.asarray(model(x, training=False))
        assert probs.shape == (8, NUM_CLASSES)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)  # softmax output

        path = saved_dir / f"{name}-{channels}.keras"
        model.save(path)
        np.save(saved_dir / f"{name}-{channels}.x.npy", x)
        np.save(saved_dir / f"{name}-{channels}.y.npy", probs)
        # Reload as a fresh process would: safe mode, no custom_objects argument, and only
        # the custom objects that importing the plugin modules registers.
        registry = keras.saving.get_custom_objects()
        saved_registry = dict(registry)
        registry.clear()
        registry.update(_plugin_objects_only())
        try:
            loaded = keras.saving.load_model(path, safe_mode=True)
        finally:
            registry.clear()
            registry.update(saved_registry)
        np.testing.assert_allclose(np.asarray(loaded(x, training=False)), probs, rtol=1e-5, atol=1e-6)


FRESH_LOADER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from mathsym_zoo.plugins import PluginSet
    PluginSet()  # imports the plugin modules, registering their custom objects (if any)
    import keras
    worst = {}
    for path in sorted(Path(sys.argv[1]).glob("*.keras")):
        model = keras.saving.load_model(path, safe_mode=True)
        x = np.load(path.with_suffix(".x.npy")); y = np.load(path.with_suffix(".y.npy"))
        worst[path.stem] = float(np.abs(np.asarray(model(x, training=False)) - y).max())
    print(json.dumps(worst))
    """
)


def test_saved_models_load_in_a_fresh_process(saved_dir):
    """The files the zoo test wrote load in a new interpreter and predict the same."""
    expected = {p.stem for p in saved_dir.glob("*.keras")}
    if not expected:
        pytest.skip("run together with test_architecture_trains_saves_and_reloads")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", FRESH_LOADER, str(saved_dir)], capture_output=True, text=True,
                         timeout=300, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    worst = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(worst) == expected
    assert max(worst.values()) < 1e-5, worst


# -- parameters and MACs --------------------------------------------------------


def test_notebook_cnn_parameter_count_is_the_notebooks():
    info = modelinfo.model_info("notebook-cnn", input_shape=(45, 45, 3), num_classes=83)
    assert info["total_params"] == info["trainable_params"] == 90_707


def test_notebook_cnn_macs_by_hand():
    info = modelinfo.model_info("notebook-cnn")  # 45x45x1, 82 classes
    convs = 43 * 43 * 64 * (3 * 3 * 1) + 19 * 19 * 64 * (3 * 3 * 64) + 7 * 7 * 48 * (3 * 3 * 64)
    dense = 3 * 3 * 48 * 48 + 48 * 32 + 32 * 16 + 16 * 82
    assert info["by_layer_type"] == {"Conv2D": convs, "Dense": dense}
    assert info["macs"] == convs + dense == 15_751_776
    assert info["uncounted_layers"] == []


def test_macs_of_a_tiny_model_by_hand():
    import keras
    from keras import layers

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3)(inputs)  # 6x6x4: 36 positions * 4 filters * 27 = 3888
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)  # 6x6x8: 36 * 8 * 9 = 2592
    x = layers.Conv2D(8, 1, groups=2)(x)  # 36 * 8 * (1 * 8 / 2) = 1152
    x = layers.BatchNormalization()(x)  # folded: 0
    x = layers.SeparableConv2D(5, 3, strides=2, padding="same")(x)  # 3x3: dw 9*8*9=648 + pw 9*8*5=360
    x = layers.Conv2DTranspose(2, 2, strides=2)(x)  # 3x3x5 in: 9 * 5 * 4 * 2 = 360
    x = layers.Flatten()(x)  # 6x6x2 = 72
    x = layers.Dense(10)(x)  # 720
    shared = layers.Dense(10)
    x = shared(shared(x))  # called twice: 2 * 100
    x = keras.Sequential([layers.Dense(7)])(x)  # nested model: 70
    x = layers.LayerNormalization()(x)  # has weights, not counted: reported
    model = keras.Model(inputs, x)

    result = modelinfo.count_macs(model)
    assert result["by_layer_type"] == {"Conv2D": 3888 + 1152, "DepthwiseConv2D": 2592, "SeparableConv2D": 1008,
                                       "Conv2DTranspose": 360, "Dense": 720 + 200 + 70}
    assert result["macs"] == 3888 + 2592 + 1152 + 1008 + 360 + 720 + 200 + 70
    assert len(result["uncounted_layers"]) == 1 and "LayerNormalization" in result["uncounted_layers"][0]


# -- the metadata cache -----------------------------------------------------------


def test_metadata_cache_fills_and_serves_models_command(monkeypatch, capsys, tmp_path):
    from mathsym_zoo.api import attach_model_metadata, list_components

    # As for a plugin's own architecture: nothing shipped, only the user cache.
    monkeypatch.setattr(modelinfo, "builtin_path", lambda: tmp_path / "none.json")

    rows = attach_model_metadata(list_components("architecture", "notebook-cnn"))
    assert rows[0]["columns"]["params"] == modelinfo.MISSING and rows[0]["info"] is None

    info = modelinfo.model_info("notebook-cnn")
    assert info["total_params"] == 89_538 and info["size_bytes"] > 89_538 * 4
    assert info["version"] and info["input_shape"] == [45, 45, 1] and info["num_classes"] == 82
    path = modelinfo.cache_path()
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    assert json.loads(path.read_text())["entries"]

    # Served from the cache: no model is built the second time.
    with monkeypatch.context() as m:
        m.setattr(modelinfo, "_measure", lambda model: pytest.fail("rebuilt despite the cache"))
        assert modelinfo.model_info("notebook-cnn") == info
    # ... but a different configuration, or package version, is a miss.
    assert modelinfo.cached_info("notebook-cnn", {"spatial_dropout": 0.3, "dropout": 0.4}) is None
    with monkeypatch.context() as m:
        m.setattr(modelinfo, "__version__", "999")
        assert modelinfo.cached_info("notebook-cnn", rows[0]["defaults"]) is None

    assert run(["models", "notebook-cnn", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["columns"] == {"params": "89,538", "MACs": "15.8 M", "size": modelinfo.format_size(info["size_bytes"])}
    assert row["info"]["macs"] == 15_751_776


def test_models_compute_fills_the_cache_for_every_architecture(capsys):
    assert run(["models", "notebook-cnn", "--compute"]) == 0
    assert "89,538" in capsys.readouterr().out
    assert modelinfo.cached_info("notebook-cnn", PluginSet().get("architecture", "notebook-cnn").defaults())


def test_unreadable_cache_is_treated_as_empty():
    path = modelinfo.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert modelinfo.cached_info("notebook-cnn", {}) is None
    modelinfo.model_info("notebook-cnn", input_shape=(32, 32, 1), num_classes=5)  # rewrites it
    assert len(json.loads(path.read_text())["entries"]) == 1


def test_shipped_builtin_metadata_is_fresh(tmp_path, monkeypatch):
    """`models` on a fresh machine shows params/MACs from plugins/model_info.json;
    it must equal what the graph gives today (else: python -m mathsym_zoo.modelinfo --write-builtin)."""
    import json

    from mathsym_zoo import modelinfo
    from mathsym_zoo.api import attach_model_metadata, list_components

    monkeypatch.setenv("MATHSYM_ZOO_HOME", str(tmp_path))  # empty user cache
    shipped = json.loads(modelinfo.builtin_path().read_text())["entries"]
    rows = {r["name"]: r for r in attach_model_metadata(list_components("architecture"))}
    stale = "stale: run `python -m mathsym_zoo.modelinfo --write-builtin`"
    for name in ("notebook-cnn", "resnet-lite", "mobilenet-head"):
        info = rows[name]["info"]
        assert info is not None, f"{name}: no shipped metadata for the current defaults; {stale}"
        live = modelinfo.model_info(name, use_cache=False)
        for field in ("total_params", "trainable_params", "macs"):
            assert info[field] == live[field], f"{name}.{field} {stale}"
        assert abs(info["size_bytes"] - live["size_bytes"]) < 0.05 * live["size_bytes"]
        assert rows[name]["columns"]["MACs"] != "-"
    assert len(shipped) == 3
