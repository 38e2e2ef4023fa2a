"""Keras layers of the writer-shift augmentations (see ``preprocess_augment``).

Every image of this data is normalised: the symbol's longer side fills the box,
centred. So each layer distorts the *symbol* and then re-fits its ink to the box
the same way (:func:`refit`), instead of zooming or shifting the finished image,
which would teach shapes the model never meets. Layers act in training only
(identity at inference), never flip, draw from a seeded ``keras.random.SeedGenerator``
and take images scaled to 0-1 with white paper (1.0), as ``wrap_model`` feeds them.

This module imports TensorFlow; the plugin imports it only when a layer is built.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

PACKAGE = "mathsym_zoo"


def ink_box(canvas, paper: float, threshold: float):
    """Per image: first/last ink row and column (float32, pixel centres) and whether it has ink."""
    ink = tf.reduce_max(paper - canvas, axis=-1) > threshold  # (B, H, W)
    rows, cols = tf.reduce_any(ink, axis=2), tf.reduce_any(ink, axis=1)

    def first_last(hits):
        n = tf.shape(hits)[1]
        first = tf.argmax(tf.cast(hits, tf.int32), axis=1, output_type=tf.int32)
        last = n - 1 - tf.argmax(tf.cast(tf.reverse(hits, [1]), tf.int32), axis=1, output_type=tf.int32)
        return tf.cast(first, tf.float32), tf.cast(last, tf.float32)

    (r0, r1), (c0, c1) = first_last(rows), first_last(cols)
    return r0, r1, c0, c1, tf.reduce_any(rows, axis=1)


def fit_transform(r0, r1, c0, c1, out_h: int, out_w: int):
    """Per image, the output -> canvas affine map (a0, a1, a2, b0, b1, b2, 0, 0) that scales
    the box [r0..r1] x [c0..c1] so its longer side fills (out_h, out_w), centred, aspect kept."""
    scale = tf.maximum((r1 - r0 + 1.0) / out_h, (c1 - c0 + 1.0) / out_w)  # canvas pixels per output pixel
    cy, cx = (r0 + r1) / 2.0, (c0 + c1) / 2.0
    zero = tf.zeros_like(scale)
    return tf.stack([scale, zero, cx - scale * (out_w - 1) / 2.0,
                     zero, scale, cy - scale * (out_h - 1) / 2.0, zero, zero], axis=1)


def project(canvas, transforms, out_h: int, out_w: int, paper: float):
    """Resample ``canvas`` through per-image output -> canvas affine maps (bilinear, paper outside)."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=canvas, transforms=transforms, output_shape=tf.constant([out_h, out_w], tf.int32),
        fill_value=tf.constant(paper, canvas.dtype), interpolation="BILINEAR", fill_mode="CONSTANT")
    return tf.ensure_shape(out, [None, out_h, out_w, canvas.shape[-1]])


def refit(canvas, out_h: int, out_w: int, paper: float, threshold: float):
    """The ink of ``canvas`` re-fitted to (out_h, out_w) like the data was made; (images, has_ink)."""
    r0, r1, c0, c1, has_ink = ink_box(canvas, paper, threshold)
    return project(canvas, fit_transform(r0, r1, c0, c1, out_h, out_w), out_h, out_w, paper), has_ink


def bilinear_sample(images, y, x, paper: float):
    """``images`` (B, H, W, C) read at float positions y, x (B, h, w); paper outside."""
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [1, 2], [1, 2], [0, 0]], constant_values=paper)
    flat = tf.reshape(padded, [-1, images.shape[-1]])  # one gather over all images is the fast path
    base = (tf.range(b) * (h + 3) * (w + 3))[:, None, None]
    # Positions beyond the image land on the paper border of `padded`.
    y = tf.clip_by_value(y, -1.0, tf.cast(h, tf.float32))
    x = tf.clip_by_value(x, -1.0, tf.cast(w, tf.float32))
    y0, x0 = tf.floor(y), tf.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    iy, ix = tf.cast(y0, tf.int32) + 1, tf.cast(x0, tf.int32) + 1
    top = base + iy * (w + 3) + ix
    corners = tf.gather(flat, tf.stack([top, top + 1, top + w + 3, top + w + 4]))  # (4, B, h, w, C)
    upper = corners[0] * (1 - wx) + corners[1] * wx
    lower = corners[2] * (1 - wx) + corners[3] * wx
    return upper * (1 - wy) + lower * wy


class _RefitAugmentation(keras.layers.Layer):
    """Shared plumbing: training-only, per-image probability, seeded draws, config."""

    def __init__(self, probability: float = 1.0, paper: float = 1.0, ink_threshold: float = 0.3,
                 seed: int | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # image ops in float32, also under mixed precision
        super().__init__(**kwargs)
        self.probability, self.paper, self.ink_threshold, self.seed = probability, paper, ink_threshold, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def uniform(self, shape, low=0.0, high=1.0):
        return keras.random.uniform(shape, minval=low, maxval=high, seed=self.seed_generator)

    def call(self, images, training=None):
        if not training:
            return images
        images = tf.convert_to_tensor(images, self.compute_dtype)
        batch = tf.shape(images)[0]
        augmented = self.augment(images, batch)
        chosen = self.uniform((batch,)) < self.probability
        return tf.where(chosen[:, None, None, None], augmented, images)

    def augment(self, images, batch):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "probability": self.probability, "paper": self.paper,
                "ink_threshold": self.ink_threshold, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomAffineRefit(_RefitAugmentation):
    """Small rotation, shear and anisotropic scale of the symbol, then a re-fit to the box,
    in one resampling (the map is composed, so nothing is clipped at the border)."""

    def __init__(self, rotation: float = 10.0, shear: float = 0.3, aspect: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.shear, self.aspect = rotation, shear, aspect

    def augment(self, images, batch):
        h, w = images.shape[1], images.shape[2]
        angle = self.uniform((batch,), -1.0, 1.0) * math.radians(self.rotation)
        shear = self.uniform((batch,), -self.shear, self.shear)
        ratio = tf.exp(self.uniform((batch,), -1.0, 1.0) * math.log1p(self.aspect))
        cos, sin = tf.cos(angle), tf.sin(angle)
        # A = rotation @ shear @ diag(ratio, 1/ratio), acting on (x, y) about the centre.
        axx, axy = cos * ratio, (cos * shear - sin) / ratio
        ayx, ayy = sin * ratio, (sin * shear + cos) / ratio
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32) - cy, tf.range(w, dtype=tf.float32) - cx, indexing="ij")
        ty = ayx[:, None, None] * xs + ayy[:, None, None] * ys + cy  # where each pixel centre goes
        tx = axx[:, None, None] * xs + axy[:, None, None] * ys + cx
        ink = tf.reduce_max(self.paper - images, axis=-1) > self.ink_threshold
        big = tf.constant(1e9)
        r0 = tf.reduce_min(tf.where(ink, ty, big), axis=[1, 2])
        r1 = tf.reduce_max(tf.where(ink, ty, -big), axis=[1, 2])
        c0 = tf.reduce_min(tf.where(ink, tx, big), axis=[1, 2])
        c1 = tf.reduce_max(tf.where(ink, tx, -big), axis=[1, 2])
        fit = fit_transform(r0, r1, c0, c1, h, w)  # output -> distorted coordinates
        # Compose with the inverse distortion: output -> distorted -> input coordinates.
        det = axx * ayy - axy * ayx
        ixx, ixy, iyx, iyy = ayy / det, -axy / det, -ayx / det, axx / det
        s, ox, oy = fit[:, 0], fit[:, 2] - cx, fit[:, 5] - cy
        transforms = tf.stack([ixx * s, ixy * s, ixx * ox + ixy * oy + cx,
                               iyx * s, iyy * s, iyx * ox + iyy * oy + cy,
                               tf.zeros_like(s), tf.zeros_like(s)], axis=1)
        out = project(images, transforms, h, w, self.paper)
        return tf.where(tf.reduce_any(ink, axis=[1, 2])[:, None, None, None], out, images)

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "shear": self.shear, "aspect": self.aspect}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ElasticRefit(_RefitAugmentation):
    """A smooth random displacement field (bicubic upsampling of a coarse grid of random
    offsets) on a canvas with room around the box, then a re-fit to the box."""

    def __init__(self, magnitude: float = 2.0, grid: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.magnitude, self.grid = magnitude, grid

    def augment(self, images, batch):
        h, w = images.shape[1], images.shape[2]
        pad = int(math.ceil(self.magnitude)) + 1  # room, so displaced ink is not cut at the border
        ch, cw = h + 2 * pad, w + 2 * pad
        coarse = self.uniform((batch, self.grid, self.grid, 2), -1.0, 1.0)
        field = tf.image.resize(coarse, (ch, cw), method="bicubic") * self.magnitude
        ys, xs = tf.meshgrid(tf.range(ch, dtype=tf.float32) - pad, tf.range(cw, dtype=tf.float32) - pad, indexing="ij")
        canvas = bilinear_sample(images, ys[None] + field[..., 0], xs[None] + field[..., 1], self.paper)
        out, has_ink = refit(canvas, h, w, self.paper, self.ink_threshold)
        return tf.where(has_ink[:, None, None, None], out, images)

    def get_config(self):
        return {**super().get_config(), "magnitude": self.magnitude, "grid": self.grid}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomErasingRefit(_RefitAugmentation):
    """Paper over one random rectangle (a missing or faint piece of stroke), then re-fit
    what ink is left; an image whose ink would vanish is kept as it was."""

    def __init__(self, min_area: float = 0.02, max_area: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.min_area, self.max_area = min_area, max_area

    def augment(self, images, batch):
        h, w = images.shape[1], images.shape[2]
        area = self.uniform((batch,), self.min_area, self.max_area)
        ratio = tf.exp(self.uniform((batch,), math.log(0.3), math.log(3.3)))
        eh = tf.minimum(tf.sqrt(area * ratio) * h, float(h))
        ew = tf.minimum(tf.sqrt(area / ratio) * w, float(w))
        top = self.uniform((batch,)) * (h - eh)
        left = self.uniform((batch,)) * (w - ew)
        ys = tf.range(h, dtype=tf.float32)[None, :, None]
        xs = tf.range(w, dtype=tf.float32)[None, None, :]
        inside = ((ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None])
                  & (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None]))
        erased = tf.where(inside[..., None], tf.constant(self.paper, images.dtype), images)
        out, has_ink = refit(erased, h, w, self.paper, self.ink_threshold)
        return tf.where(has_ink[:, None, None, None], out, images)

    def get_config(self):
        return {**super().get_config(), "min_area": self.min_area, "max_area": self.max_area}
