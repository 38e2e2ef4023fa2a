"""Writer-shift augmentation layers: seeded, identity at inference, symbol re-fitted to the
box (longer side fills it, centred), no flips, ink kept connected, safe_mode save/load."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from mathsym_zoo.errors import ConfigError
from mathsym_zoo.registry import resolve

keras = pytest.importorskip("keras")
from mathsym_zoo_plugins import augment_layers as al  # noqa: E402  (imports TensorFlow)

SIZE = 45
LAYERS = {
    "random_affine": (al.RandomAffineRefit, {}),
    "elastic": (al.ElasticRefit, {}),
    "random_erasing": (al.RandomErasingRefit, {"min_area": 0.05, "max_area": 0.1}),
}


def fitted(draw_fn) -> np.ndarray:
    """A 45x45 symbol drawn like the data: 1 px dark strokes, longer side filling the box, centred."""
    big = Image.new("L", (200, 200), 255)
    draw_fn(ImageDraw.Draw(big))
    arr = np.asarray(big)
    rows, cols = np.flatnonzero((arr < 128).any(1)), np.flatnonzero((arr < 128).any(0))
    crop = big.crop((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))
    scale = SIZE / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.BILINEAR)
    out = Image.new("L", (SIZE, SIZE), 255)
    out.paste(crop, ((SIZE - crop.width) // 2, (SIZE - crop.height) // 2))
    return np.asarray(out, np.float32) / 255.0


def glyphs() -> np.ndarray:
    """A ring, an L (asymmetric: shows flips), a cross, a tall bar and a wide bar."""
    shapes = [
        lambda d: d.ellipse((40, 20, 160, 180), outline=0, width=6),
        lambda d: d.line([(60, 20), (60, 180), (150, 180)], fill=0, width=6),
        lambda d: (d.line([(100, 20), (100, 180)], fill=0, width=6), d.line([(30, 100), (170, 100)], fill=0, width=6)),
        lambda d: d.line([(100, 10), (110, 190)], fill=0, width=6),
        lambda d: d.line([(10, 95), (190, 105)], fill=0, width=6),
    ]
    return np.stack([fitted(s) for s in shapes])[..., None]


def batch() -> np.ndarray:
    return np.concatenate([glyphs()] * 4)  # 20 images: several random draws per shape


def ink(images: np.ndarray) -> np.ndarray:
    return (1.0 - images[..., 0]) > 0.3


def box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Height, width, row centre, column centre of the ink bounding box."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1, (rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2


def layer(name: str, **kw):
    cls, defaults = LAYERS[name]
    return cls(**{"seed": 7, "probability": 1.0, **defaults, **kw})


@pytest.mark.parametrize("name", LAYERS)
def test_deterministic_under_a_seed(name):
    x = batch()
    a = np.asarray(layer(name)(x, training=True))
    b = np.asarray(layer(name)(x, training=True))
    c = np.asarray(layer(name, seed=8)(x, training=True))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, x)  # it does change the images


@pytest.mark.parametrize("name", LAYERS)
def test_identity_at_inference(name):
    x = batch()
    aug = layer(name)
    assert np.array_equal(np.asarray(aug(x, training=False)), x)
    assert np.array_equal(np.asarray(aug(x)), x)  # no training flag: inference


@pytest.mark.parametrize("name", LAYERS)
def test_symbol_refitted_to_the_box(name):
    x = batch()
    y = np.asarray(layer(name)(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0 + 1e-6
    for i in range(len(y)):
        h, w, cy, cx = box(ink(y[i : i + 1])[0])
        assert max(h, w) >= SIZE - 2, f"image {i}: ink box {h}x{w} does not fill the box"
        assert abs(cy - (SIZE - 1) / 2) <= 1.5 and abs(cx - (SIZE - 1) / 2) <= 1.5, f"image {i}: not centred"


@pytest.mark.parametrize("name", ["random_affine", "elastic"])
def test_strokes_stay_connected(name):
    x = batch()
    y = np.asarray(layer(name)(x, training=True))
    for i in range(len(y)):
        before = ndimage.label(ink(x[i : i + 1])[0], structure=np.ones((3, 3)))[1]
        after = ndimage.label(ink(y[i : i + 1])[0], structure=np.ones((3, 3)))[1]
        assert after <= before + 1, f"image {i}: {before} stroke piece(s) became {after}"


def test_affine_without_distortion_is_the_identity_and_never_flips():
    x = glyphs()
    y = np.asarray(layer("random_affine", rotation=0.0, shear=0.0, aspect=0.0)(x, training=True))
    # Re-fitting an already fitted symbol changes nothing but sub-pixel centring.
    for a, b in zip(ink(x), ink(y)):
        assert (b & ~ndimage.binary_dilation(a)).sum() <= 0.02 * b.sum()
        assert (a & ~ndimage.binary_dilation(b)).sum() <= 0.02 * a.sum()
    # The L keeps its corner bottom-left under the strongest allowed distortion.
    ell = np.repeat(x[1:2], 16, axis=0)
    y = np.asarray(layer("random_affine", rotation=15.0, shear=0.4, aspect=0.4)(ell, training=True))
    half = SIZE // 2
    for img in ink(y):
        assert img[half:, :half].sum() > img[:half, half:].sum()


def test_probability_zero_changes_nothing():
    x = batch()
    for name in LAYERS:
        assert np.array_equal(np.asarray(layer(name, probability=0.0)(x, training=True)), x)


def test_erasing_that_would_remove_all_ink_keeps_the_image():
    dot = np.ones((1, SIZE, SIZE, 1), np.float32)
    dot[0, 22, 22, 0] = 0.0
    y = np.asarray(layer("random_erasing", min_area=1.0, max_area=1.0)(dot, training=True))
    assert np.array_equal(y, dot)


def test_runs_in_a_compiled_graph_and_trains():
    import tensorflow as tf

    x = batch()
    aug = layer("elastic")
    compiled = tf.function(lambda t: aug(t, training=True))
    assert compiled(tf.constant(x)).shape == x.shape
    inputs = keras.Input((SIZE, SIZE, 1))
    h = layer("random_affine")(inputs)
    h = layer("random_erasing")(h)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, np.arange(len(x)) % 2, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_registry_steps_build_the_layers():
    from mathsym_zoo.data.pipeline import build_online_layers

    raw = {"sources": {"demo": {"type": "demo"}}, "data": {"source": "demo"},
           "preprocessing": [{"type": "random_affine", "rotation": 5, "seed": 1}, {"type": "elastic"},
                             {"type": "random_erasing", "probability": 0.5}]}
    built = build_online_layers(resolve(raw=raw))
    assert [type(b).__name__ for b in built] == ["RandomAffineRefit", "ElasticRefit", "RandomErasingRefit"]
    assert built[0].rotation == 5 and built[0].seed == 1 and built[2].probability == 0.5


def test_bad_parameters_are_named():
    raw = {"preprocessing": [{"type": "random_erasing", "min_area": 0.3, "max_area": 0.1}]}
    with pytest.raises(ConfigError, match=r"preprocessing\[0\].*min_area \(0.3\) must not exceed max_area"):
        resolve(raw=raw, source="demo")


def test_saved_model_loads_with_safe_mode(tmp_path):
    from mathsym_zoo.data.pipeline import wrap_model

    arch_in = keras.Input((SIZE, SIZE, 1))
    arch = keras.Model(arch_in, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(arch_in)))
    online = [layer("random_affine", rotation=12.0), layer("elastic", magnitude=1.5), layer("random_erasing")]
    model = wrap_model(arch, (SIZE, SIZE, 1), online)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    names = [type(lay).__name__ for lay in loaded.layers]
    assert {"RandomAffineRefit", "ElasticRefit", "RandomErasingRefit"} <= set(names)
    affine = next(lay for lay in loaded.layers if isinstance(lay, al.RandomAffineRefit))
    assert affine.rotation == 12.0 and affine.seed == 7
    x = batch() * 255.0
    assert np.allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-6)


@pytest.mark.slow
def test_a_fresh_process_loads_it_after_registering_plugin_classes(tmp_path):
    inputs = keras.Input((SIZE, SIZE, 1))
    outputs = keras.layers.Flatten()(layer("elastic")(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "m.keras")
    script = textwrap.dedent(f"""
        import sys, keras
        from mathsym_zoo.plugins import PluginSet
        if sys.argv[1] == "register":
            PluginSet().register_keras_classes()
        keras.saving.load_model({str(tmp_path / "m.keras")!r}, safe_mode=True)
    """)
    ok = subprocess.run([sys.executable, "-c", script, "register"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    bare = subprocess.run([sys.executable, "-c", script, "bare"], capture_output=True, text=True)
    assert bare.returncode != 0 and "ElasticRefit" in bare.stderr  # the registration is what makes it load


def test_bilinear_sampling_reads_pixels_and_paper_outside():
    img = np.random.default_rng(0).random((2, 9, 7, 1)).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(9.0), np.arange(7.0), indexing="ij")
    ys, xs = np.stack([ys, ys]).astype(np.float32), np.stack([xs, xs]).astype(np.float32)
    assert np.allclose(al.bilinear_sample(img, ys, xs, 1.0), img)
    half = np.asarray(al.bilinear_sample(img, ys[:, :8] + 0.5, xs[:, :8], 1.0))
    assert np.allclose(half, (img[:, :8] + img[:, 1:]) / 2)
    for dy in (-50.0, -9.0, 9.0, 60.0):  # every position at or beyond the border
        assert np.allclose(al.bilinear_sample(img, ys + dy, xs, 1.0), 1.0)
