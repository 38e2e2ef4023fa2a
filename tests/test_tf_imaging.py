"""The TensorFlow versions of the offline image steps reproduce Pillow exactly.

Exported SavedModels decode and preprocess images in the graph (mathsym_zoo/tf_imaging.py);
these tests compare each operation with Pillow on random images, including sizes where
Pillow 13 runs its vertical pass first.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from mathsym_zoo import tf_imaging as T  # noqa: E402

SIZES = [  # (in_w, in_h, out_w, out_h)
    (29, 69, 19, 45), (69, 29, 45, 19), (100, 100, 45, 45), (20, 20, 45, 45), (20, 91, 10, 68),
    (67, 227, 21, 82), (300, 50, 45, 8), (7, 300, 3, 45), (45, 45, 45, 20), (45, 30, 45, 45), (1, 1, 45, 45),
]


@pytest.mark.parametrize("name", sorted(T.FILTERS))
def test_resize_equals_pillow(name):
    rng = np.random.default_rng(0)
    resample = getattr(Image.Resampling, name.upper())
    for in_w, in_h, out_w, out_h in SIZES:
        array = rng.integers(0, 256, (in_h, in_w), dtype=np.uint8)
        expected = np.asarray(Image.fromarray(array).resize((out_w, out_h), resample))
        got = T.resize(tf.constant(array[..., None]), out_h, out_w, name).numpy()[..., 0]
        assert np.array_equal(got, expected), f"{name} {in_w}x{in_h}->{out_w}x{out_h}"


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_alpha_over_white_and_luma_equal_pillow(mode):
    from mathsym_zoo_plugins.preprocess_image import Grayscale, GrayscaleParams

    rng = np.random.default_rng(1)
    channels = len(mode)
    array = rng.integers(0, 256, (17, 23, channels), dtype=np.uint8)
    array[0, :, -1] = 0  # fully transparent row (or black row)
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode)
    expected = np.asarray(Grayscale(GrayscaleParams()).apply(image))
    got = T.to_luma(T.over_white(tf.constant(array))).numpy()[..., 0]
    assert np.array_equal(got, expected)


def test_resize_pad_graph_apply_equals_apply():
    from mathsym_zoo_plugins.preprocess_image import ResizePad, ResizePadParams

    step = ResizePad(ResizePadParams())
    rng = np.random.default_rng(2)
    for w, h in [(90, 60), (45, 45), (10, 200), (200, 10), (46, 44), (3, 2), (1000, 77)]:
        array = rng.integers(0, 256, (h, w), dtype=np.uint8)
        expected = np.asarray(step.apply(Image.fromarray(array)))
        got = step.graph_apply(tf.constant(array[..., None])).numpy()[..., 0]
        assert np.array_equal(got, expected), (w, h)


def test_decode_matches_pillow_for_each_format():
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    for fmt, mode in [("PNG", "RGB"), ("JPEG", "RGB"), ("JPEG", "L"), ("BMP", "RGB"), ("GIF", "P")]:
        buf = io.BytesIO()
        Image.fromarray(array).convert(mode).save(buf, fmt)
        expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB" if mode != "L" else "L"))
        got = T.decode(tf.constant(buf.getvalue())).numpy()
        got = got[..., 0] if mode == "L" else got
        assert np.array_equal(got, expected), fmt
