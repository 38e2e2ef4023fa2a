"""The demo source: class coverage, determinism, realism statistics, cache path."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mathsym_zoo.plugins import PluginSet
from mathsym_zoo.registry import resolve
from mathsym_zoo_plugins import demo_generator as gen
from mathsym_zoo_plugins.source_demo import DemoParams, build_demo

# The 82 class folders of the Kaggle "Handwritten math symbols" data set (and of
# the CROHME benchmark zip in ../shared/data), in Python's sorted order.
KAGGLE_CLASSES = (
    "!", "(", ")", "+", ",", "-", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "=", "A", "C", "Delta",
    "G", "H", "M", "N", "R", "S", "T", "X", "[", "]", "alpha", "ascii_124", "b", "beta", "cos", "d", "div",
    "e", "exists", "f", "forall", "forward_slash", "gamma", "geq", "gt", "i", "in", "infty", "int", "j", "k",
    "l", "lambda", "ldots", "leq", "lim", "log", "lt", "mu", "neq", "o", "p", "phi", "pi", "pm", "prime", "q",
    "rightarrow", "sigma", "sin", "sqrt", "sum", "tan", "theta", "times", "u", "v", "w", "y", "z", "{", "}",
)

# Reference statistics of the real CROHME images, measured once on a random
# sample of 3,000 of the 46,479 images of crohme_bench.zip (random.seed(0);
# PIL grayscale; ink = pixel < 128): every image is 45x45, the ink bounding box
# spans all 45 px on its longer side and is centred at (22, 22) in every image;
# mean ink fraction 0.0425 (p10 0.0227, p90 0.0612); pixels are near-binary
# (95.9% >= 235, 4.1% < 20); strokes are one pixel wide ("-": 1 px per column).
# The demo is class-balanced, so its mean is compared with the real set's mean of
# per-class means (60 random images per class, all where fewer): 0.0465.
REAL_INK_MEAN = 0.0425
REAL_INK_MEAN_CLASS_BALANCED = 0.0465
REAL_INK_P10, REAL_INK_P90 = 0.0227, 0.0612
INK_TOLERANCE = 0.20  # relative, on the class-balanced mean


def _source(**params):
    return build_demo(DemoParams(**params))


def _images(source) -> tuple[list[str], np.ndarray]:
    recs = list(source.records())
    return [r.label for r in recs], np.stack([r.image for r in recs])


@pytest.fixture(scope="module")
def sample():
    """Six images per class with the default parameters."""
    labels, images = _images(_source(images_per_class=6))
    return labels, images


def test_registered_through_the_plugin_system():
    comp = PluginSet().get("source", "demo")
    assert comp.defaults() == {"images_per_class": 100, "seed": 0, "distortion": 1.0, "writers": 20}
    src = comp.factory(comp.params(images_per_class=1), None)
    assert src.fingerprint().startswith(f"demo:v{gen.GENERATOR_VERSION}:")


def test_all_82_kaggle_classes(sample):
    labels, images = sample
    assert gen.CLASS_NAMES == KAGGLE_CLASSES
    assert sorted(set(labels)) == list(KAGGLE_CLASSES)
    assert all(labels.count(c) == 6 for c in KAGGLE_CLASSES)
    assert images.shape == (82 * 6, 45, 45) and images.dtype == np.uint8


def test_records_paths_groups_and_order():
    recs = list(_source(images_per_class=3, writers=2).records())
    assert [r.path for r in recs[:4]] == ["!/0.png", "!/1.png", "!/2.png", "(/0.png"]
    assert {r.group for r in recs} == {"writer-0000", "writer-0001"}
    assert all(r.data is None and r.skip is None for r in recs)


def test_same_seed_gives_identical_images():
    _, a = _images(_source(images_per_class=2, seed=7))
    _, b = _images(_source(images_per_class=2, seed=7))
    assert a.tobytes() == b.tobytes()


def test_images_do_not_depend_on_generation_order():
    _, batch = _images(_source(images_per_class=3, seed=5))
    label_index = KAGGLE_CLASSES.index("sqrt")
    alone = gen.generate("sqrt", 5, 2, writer=2 % 20)
    assert np.array_equal(batch[label_index * 3 + 2], alone)


def test_different_seeds_differ():
    _, a = _images(_source(images_per_class=2, seed=0))
    _, b = _images(_source(images_per_class=2, seed=1))
    differ = [not np.array_equal(x, y) for x, y in zip(a, b)]
    assert np.mean(differ) > 0.9


def test_fingerprint_follows_parameters():
    base = _source().fingerprint()
    assert _source().fingerprint() == base
    for change in ({"seed": 1}, {"images_per_class": 5}, {"distortion": 0.5}, {"writers": 3}):
        assert _source(**change).fingerprint() != base, change


def test_unknown_parameter_rejected():
    with pytest.raises(Exception, match="extra"):
        DemoParams(per_class=3)


def test_bounding_box_fills_the_box_and_is_centred(sample):
    _, images = sample
    for img in images:
        ys, xs = np.nonzero(img < 128)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert max(h, w) == 45
        assert abs((ys.max() + ys.min()) / 2 - 22) <= 0.5 and abs((xs.max() + xs.min()) / 2 - 22) <= 0.5


def test_ink_statistics_close_to_real(sample):
    _, images = sample
    ink = (images < 128).mean(axis=(1, 2))
    assert abs(ink.mean() - REAL_INK_MEAN_CLASS_BALANCED) <= INK_TOLERANCE * REAL_INK_MEAN_CLASS_BALANCED, ink.mean()
    assert np.percentile(ink, 10) >= REAL_INK_P10 * 0.6
    assert np.percentile(ink, 90) <= REAL_INK_P90 * 1.4


def test_strokes_are_thin_and_binary(sample):
    _, images = sample
    assert set(np.unique(images)) <= {0, 255}
    # A horizontal minus sign is one pixel thick, like the real ones.
    _, minus = _images(_source(images_per_class=4))
    minus = minus[[i for i, c in enumerate(np.repeat(KAGGLE_CLASSES, 4)) if c == "-"]]
    for img in minus:
        per_column = (img < 128).sum(axis=0)
        assert np.median(per_column[per_column > 0]) == 1


def test_zero_distortion_is_clean_and_valid():
    labels, images = _images(_source(images_per_class=1, distortion=0.0))
    assert len(labels) == 82 and all((img < 128).any() for img in images)


def test_metadata():
    meta = _source().metadata()
    assert meta["name"] and meta["license"] and "82" in meta["description"]


def _build(cache_dir, seed=0):
    from mathsym_zoo.data.cache import load_dataset

    raw = {
        "data": {"source": "demo", "cache_dir": str(cache_dir), "workers": 1},
        "sources": {"demo": {"type": "demo", "images_per_class": 3, "seed": seed}},
    }
    return load_dataset(resolve(raw=raw), progress=False)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_goes_through_the_shared_cache_byte_identically(tmp_path):
    a = _build(tmp_path / "a")
    b = _build(tmp_path / "b")
    assert len(a) == 82 * 3 and a.class_names == KAGGLE_CLASSES and a.input_shape == (45, 45, 1)
    assert set(a.groups) <= {f"writer-{w:04d}" for w in range(20)}
    assert a.key == b.key
    for name in ("images.npy", "labels.npy", "paths.npy", "groups.npy", "hashes.npy"):
        assert _digest(a.path / name) == _digest(b.path / name), name
    c = _build(tmp_path / "c", seed=1)
    assert c.key != a.key and _digest(c.path / "images.npy") != _digest(a.path / "images.npy")
