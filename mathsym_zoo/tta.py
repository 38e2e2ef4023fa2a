"""Test-time augmentation (``evaluate --tta N``, ``predict --tta N``): probabilities averaged over N
deterministic variants of each image.

Variant 0 is the image itself; the others are small fixed rotations and shears of
the *symbol*, re-fitted to the box the way the data was made (the ink's longer
side fills the box, centred), in one resampling. Zooming or shifting the finished
image instead would show the model shapes it never met (see the ``random_affine``
augmentation, which distorts and re-fits the same way with random parameters).
Runs in the TensorFlow graph, inside :class:`mathsym_zoo.inference.CompiledModel`.
"""

from __future__ import annotations

import math

#: (rotation in degrees, horizontal shear) of each variant, in order; ``--tta N`` uses the first N.
VARIANTS = ((0.0, 0.0), (5.0, 0.0), (-5.0, 0.0), (0.0, 0.1), (0.0, -0.1), (10.0, 0.0), (-10.0, 0.0),
            (5.0, 0.1), (-5.0, -0.1))
MAX_VARIANTS = len(VARIANTS)
INK_THRESHOLD = 0.3 * 255  # how far from the paper's grey level a pixel must be to count as ink


def check_tta(n: int) -> int:
    """``n`` when it is a valid variant count, else a ValueError saying the range."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_VARIANTS:
        raise ValueError(f"--tta {n!r}: expected a number of variants from 1 (off) to {MAX_VARIANTS}")
    return n


def _paper(images):
    """Per image, the paper's grey level: the median of the four corner pixels (first channel)."""
    import tensorflow as tf

    corners = tf.stack([images[:, 0, 0, 0], images[:, 0, -1, 0], images[:, -1, 0, 0], images[:, -1, -1, 0]], axis=1)
    corners = tf.sort(corners, axis=1)
    return (corners[:, 1] + corners[:, 2]) / 2.0


def distort_refit(images, degrees: float, shear: float):
    """``images`` (B, H, W, C) float 0-255 rotated and sheared about the centre, the ink then scaled so its
    longer side fills the box, centred (aspect kept). Images without ink come back unchanged."""
    import tensorflow as tf

    h, w = int(images.shape[1]), int(images.shape[2])
    a = math.radians(degrees)
    axx, axy, ayx, ayy = math.cos(a), math.cos(a) * shear - math.sin(a), math.sin(a), math.sin(a) * shear + math.cos(a)
    det = axx * ayy - axy * ayx
    ixx, ixy, iyx, iyy = ayy / det, -axy / det, -ayx / det, axx / det
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    paper = _paper(images)
    centred = images - paper[:, None, None, None]  # the paper at 0, so the fill is 0 whatever its grey level
    ink = tf.reduce_max(tf.abs(centred), axis=-1) > INK_THRESHOLD  # (B, H, W)
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32) - cy, tf.range(w, dtype=tf.float32) - cx, indexing="ij")
    ty, tx = ayx * xs + ayy * ys + cy, axx * xs + axy * ys + cx  # where each pixel centre goes
    big = tf.constant(1e9)
    r0, r1 = (tf.reduce_min(tf.where(ink, ty, big), axis=[1, 2]), tf.reduce_max(tf.where(ink, ty, -big), axis=[1, 2]))
    c0, c1 = (tf.reduce_min(tf.where(ink, tx, big), axis=[1, 2]), tf.reduce_max(tf.where(ink, tx, -big), axis=[1, 2]))
    scale = tf.maximum((r1 - r0 + 1.0) / h, (c1 - c0 + 1.0) / w)  # distorted pixels per output pixel
    ox = (c0 + c1) / 2.0 - scale * (w - 1) / 2.0 - cx
    oy = (r0 + r1) / 2.0 - scale * (h - 1) / 2.0 - cy
    zero = tf.zeros_like(scale)
    # output (x, y) -> distorted (scale * x + ox + cx, ...) -> input through the inverse distortion
    transforms = tf.stack([ixx * scale, ixy * scale, ixx * ox + ixy * oy + cx,
                           iyx * scale, iyy * scale, iyx * ox + iyy * oy + cy, zero, zero], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=centred, transforms=transforms, output_shape=tf.constant([h, w], tf.int32),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="CONSTANT")
    out = tf.clip_by_value(out + paper[:, None, None, None], 0.0, 255.0)
    return tf.where(tf.reduce_any(ink, axis=[1, 2])[:, None, None, None], out, images)


def tta_probabilities(model, images, n: int):
    """The model's probabilities for float images (B, H, W, C), averaged over the first ``n`` variants."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    views = [images if (deg, sh) == (0.0, 0.0) else distort_refit(images, deg, sh) for deg, sh in VARIANTS[:n]]
    probs = tf.cast(model(tf.concat(views, axis=0), training=False), tf.float32)
    return tf.reduce_mean(tf.reshape(probs, [n, batch, -1]), axis=0)
