"""Pillow's image steps as TensorFlow ops: decoding, alpha over white, grayscale, resampling.

Exported SavedModels take encoded image bytes and must see the pixels the decoded
cache holds, which Pillow computed. These functions follow Pillow's C code
(libImaging ``Convert.c``, ``AlphaComposite.c``, ``Resample.c``) including its
fixed-point arithmetic and its order of passes (which changed in Pillow 13), so the results are Pillow's own for the filters below
(float64 sums of integers are exact; tests allow +-1 grey level for libm and
summation-order differences in the filter weights).

Where the graph differs from the cache (``mathsym_zoo.data.images.to_8bit``):
16-bit PNGs are reduced to 8 bits by libpng (high byte) instead of ``round(v / 257)``
(at most 1 grey level before resizing); EXIF orientation is not applied (TensorFlow's
decoders ignore it: rotate such files first); GIF transparency is not seen (TensorFlow
decodes GIFs to RGB). Pillow's ``nearest`` resize walks source coordinates by
accumulated float additions; it is not reproduced (:data:`FILTERS` lists what is).
All functions take and return uint8 tensors ``(H, W, C)`` and run inside a ``tf.function``.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = ["FILTERS", "decode", "over_white", "to_luma", "to_channels", "resize", "fit_size", "pad_to"]

PRECISION_BITS = 22  # Resample.c: 32 bits - 8 for the value - 2 of headroom
ALPHA_BITS = 7  # AlphaComposite.c


def _sinc(x):
    safe = tf.where(x == 0.0, tf.ones_like(x), x * math.pi)
    return tf.where(x == 0.0, tf.ones_like(x), tf.sin(safe) / safe)


def _bicubic(x):
    a = -0.5
    x = tf.abs(x)
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * a
    return tf.where(x < 1.0, inner, tf.where(x < 2.0, outer, tf.zeros_like(x)))


def _bilinear(x):
    x = tf.abs(x)
    return tf.where(x < 1.0, 1.0 - x, tf.zeros_like(x))


def _box(x):
    return tf.where((x > -0.5) & (x <= 0.5), tf.ones_like(x), tf.zeros_like(x))


def _hamming(x):
    x = tf.abs(x)
    safe = tf.where(x == 0.0, tf.ones_like(x), x * math.pi)
    # Pillow writes 0.54f and 0.46f: float32 constants promoted to double.
    value = tf.sin(safe) / safe * (float(np.float32(0.54)) + float(np.float32(0.46)) * tf.cos(safe))
    return tf.where(x == 0.0, tf.ones_like(x), tf.where(x >= 1.0, tf.zeros_like(x), value))


def _lanczos(x):
    return tf.where((x >= -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3), tf.zeros_like(x))


#: Pillow resampling filters reproduced here: name -> (filter, support).
FILTERS = {"box": (_box, 0.5), "bilinear": (_bilinear, 1.0), "hamming": (_hamming, 1.0),
           "bicubic": (_bicubic, 2.0), "lanczos": (_lanczos, 3.0)}


def decode(data):
    """Encoded PNG/JPEG/BMP/GIF bytes (scalar string) -> uint8 (H, W, C), C in 1-4; first GIF frame.

    JPEGs use libjpeg's accurate integer DCT, as Pillow does (TensorFlow's default is the fast one).
    """
    is_jpeg = tf.strings.substr(data, 0, 3) == b"\xff\xd8\xff"
    image = tf.cond(is_jpeg,
                    lambda: tf.io.decode_jpeg(data, channels=0, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_image(data, channels=0, expand_animations=False))
    return tf.ensure_shape(image, (None, None, None))


def _composite(channels, alpha):
    """AlphaComposite.c with an opaque white background: int32 channels (H, W) and alpha (H, W)."""
    coef1 = alpha * (1 << ALPHA_BITS)  # src_a*255*255*128 / (255*255): exact
    coef2 = 255 * (1 << ALPHA_BITS) - coef1
    out = []
    for ch in channels:
        tmp = ch * coef1 + 255 * coef2 + (0x80 << ALPHA_BITS)
        value = tf.bitwise.right_shift(tf.bitwise.right_shift(tf.bitwise.right_shift(tmp, 8) + tmp, 8), ALPHA_BITS)
        out.append(tf.where(alpha == 0, 255, value))
    return out


def _by_channels(image, branches):
    """``branches[C - 1]()``, chosen while tracing when C is known (other branches would not trace)."""
    static = image.shape[-1]
    if static is not None:
        return branches[static - 1]()
    return tf.switch_case(tf.shape(image)[-1] - 1, branches)


def over_white(image):
    """Transparent pixels become white paper: LA -> L, RGBA -> RGB (1 and 3 channels pass through)."""
    x = tf.cast(image, tf.int32)

    def gray_alpha():
        return tf.stack(_composite([x[..., 0]], x[..., 1]), -1)

    def rgba():
        return tf.stack(_composite([x[..., 0], x[..., 1], x[..., 2]], x[..., 3]), -1)

    out = _by_channels(x, [lambda: x, gray_alpha, lambda: x, rgba])
    return tf.cast(tf.ensure_shape(out, (None, None, None)), tf.uint8)


def to_luma(image):
    """Convert.c's RGB -> L (ITU-R 601-2 luma in 16-bit fixed point); one channel passes through.
    Composite alpha first (:func:`over_white`)."""
    x = tf.cast(image, tf.int32)

    def luma():
        value = x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000
        return tf.bitwise.right_shift(value, 16)[..., None]

    out = _by_channels(x, [lambda: x, lambda: x[..., :1], luma, luma])  # 2 and 4: composite first
    return tf.cast(tf.ensure_shape(out, (None, None, 1)), tf.uint8)


def _coefficients(in_size, out_size, name: str):
    """Resample.c's precompute_coeffs + normalize_coeffs_8bpc as a dense (out, in) float64 matrix."""
    filt, base_support = FILTERS[name]
    in_f = tf.cast(in_size, tf.float64)
    scale = in_f / tf.cast(out_size, tf.float64)
    filterscale = tf.maximum(scale, 1.0)
    support = base_support * filterscale
    center = (tf.range(tf.cast(out_size, tf.float64)) + 0.5) * scale
    xmin = tf.maximum(tf.floor(center - support + 0.5), 0.0)
    xmax = tf.minimum(tf.floor(center + support + 0.5), in_f)
    x = tf.range(in_f)[None, :]
    inside = (x >= xmin[:, None]) & (x < xmax[:, None])
    w = tf.where(inside, filt((x - center[:, None] + 0.5) * (1.0 / filterscale)), 0.0)
    total = tf.reduce_sum(w, axis=1, keepdims=True)
    w = tf.where(total != 0.0, w / tf.where(total != 0.0, total, 1.0), w)
    fixed = tf.floor(tf.abs(w) * (1 << PRECISION_BITS) + 0.5)  # C casts (0.5 + w * 2^22) toward zero
    return tf.sign(w) * fixed


def _pass(x, coefficients, equation: str):
    """One fixed-point pass: sums are integers below 2^53, so float64 is exact; then clip8()."""
    sums = tf.einsum(equation, coefficients, x) + (1 << (PRECISION_BITS - 1))
    return tf.clip_by_value(tf.floor(sums / (1 << PRECISION_BITS)), 0.0, 255.0)


def _vertical_first() -> bool:
    """Pillow 13 runs the vertical pass first when the height shrinks more than twice as much as the
    width (Resample.c, ImagingResampleInner); earlier versions always start horizontally."""
    import PIL

    return int(PIL.__version__.split(".")[0]) >= 13


def resize(image, height, width, name: str = "bicubic"):
    """``Image.resize((width, height), filter)`` of a uint8 image (H, W, C), as Pillow computes it:
    two fixed-point passes rounded to uint8 in between, in Pillow's order. A pass whose size does
    not change is an identity (its coefficients are exactly 1 at the pixel centre)."""
    x = tf.cast(image, tf.float64)
    shape = tf.shape(x)

    def horizontal(x):
        return _pass(x, _coefficients(tf.shape(x)[1], width, name), "ow,hwc->hoc")

    def vertical(x):
        return _pass(x, _coefficients(tf.shape(x)[0], height, name), "oh,hwc->owc")

    if _vertical_first():
        shrink_h, shrink_w = shape[0] - height, shape[1] - width
        x = tf.cond((shrink_h > 0) & (shrink_h > shrink_w * 2),
                    lambda: horizontal(vertical(x)), lambda: vertical(horizontal(x)))
    else:
        x = vertical(horizontal(x))
    return tf.cast(x, tf.uint8)


def fit_size(in_height, in_width, height: int, width: int):
    """ResizePad's target size: the scale that fits, sides rounded half to even (Python's round)."""
    h_f, w_f = tf.cast(in_height, tf.float64), tf.cast(in_width, tf.float64)
    scale = tf.minimum(width / w_f, height / h_f)
    new_w = tf.maximum(tf.round(w_f * scale), 1.0)
    new_h = tf.maximum(tf.round(h_f * scale), 1.0)
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def pad_to(image, height: int, width: int, fill: int):
    """Centre ``image`` on a (height, width) canvas of ``fill`` (offsets rounded down, like ResizePad)."""
    shape = tf.shape(image)
    top, left = (height - shape[0]) // 2, (width - shape[1]) // 2
    paddings = [[top, height - shape[0] - top], [left, width - shape[1] - left], [0, 0]]
    return tf.pad(image, paddings, constant_values=tf.cast(fill, image.dtype))


def to_channels(image, channels: int):
    """Bring an image to the model's channels as the cache/predict do: luma for 1, grey repeated for 3."""
    if channels == 1:
        return to_luma(over_white(image))
    image = over_white(image)
    out = _by_channels(image, [lambda: tf.concat([image] * channels, -1)] + [lambda: image[..., :channels]] * 3)
    return tf.ensure_shape(out, (None, None, channels))
