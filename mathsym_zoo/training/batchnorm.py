"""BatchNorm statistics re-estimated before every validation pass (``train.recalibrate_batchnorm``).

Training normalises by each batch's statistics; validation, ``best.keras`` and
inference use the moving statistics that training leaves behind. With momentum
0.9 (mobilenet-head: Keras' 0.99 lagged short CPU trainings) those are an average
of the last ten or so batches, and while the weights still move they can miss
badly: on CROHME, mobilenet-head's validation accuracy dropped from 93% to 6-25%
at single epochs and came back at the next. Its epoch-9 checkpoint (24.7% val
top-1) scores 92.7% once its statistics come from 512 training images, and the
whole training side gives the same figure, so one fixed batch of 512 is enough.
A collapse like that misleads the history, the best checkpoint and early
stopping (it stopped a resnet-lite seed at epoch 4).

Training never reads the moving statistics, so re-estimating them changes what
is validated and saved, not the weights' trajectory. The calibration batch runs
through the whole model in training mode (online augmentation included, as the
batch statistics were gathered); its random draws happen after the epoch's last
step and :class:`~.callbacks.EpochSeeds` resets every generator when the next
epoch begins, so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import keras
import numpy as np

CALIBRATION_IMAGES = 512  # training images per re-estimate; more changed nothing measurable


def calibration_images(images, train_rows, n: int = CALIBRATION_IMAGES) -> np.ndarray:
    """``n`` training images evenly spaced in row order, fixed for the whole run (rows are sorted by class
    in a cache, so the first ``n`` would hold a few classes only)."""
    rows = np.sort(np.asarray(train_rows))
    rows = rows[np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).astype(np.int64))]
    return np.asarray(images[rows])


def batchnorm_layers(model) -> list:
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batchnorm(model, images) -> None:
    """Set every BatchNormalization layer's moving statistics to those of ``images`` under the current weights."""
    layers = batchnorm_layers(model)
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0  # moving statistics := this batch's statistics
        model(keras.ops.cast(images, "float32"), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


class BatchNormCalibration(keras.callbacks.Callback):
    """Re-estimates BatchNorm statistics from a fixed batch of training images before fit's validation passes,
    so the validated, committed and saved model carries statistics that fit its weights."""

    def __init__(self, images):
        super().__init__()
        self.images = images
        self._training = False

    @classmethod
    def for_training(cls, images, train_rows, n: int = CALIBRATION_IMAGES) -> "BatchNormCalibration":
        return cls(calibration_images(images, train_rows, n))

    def on_train_begin(self, logs=None):
        self._training = True

    def on_test_begin(self, logs=None):
        if self._training:  # fit's validation pass; a plain evaluate() scores the model as it is
            recalibrate_batchnorm(self.model, self.images)

    def on_train_end(self, logs=None):
        self._training = False
