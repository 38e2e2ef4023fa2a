"""Keras layers the core adds to the models it trains (imported only with Keras).

``ClassPrior`` undoes class-weighted training at inference (``undo_class_weights``).
Weighting the loss by ``count ** -power`` teaches a model the posterior of a
re-weighted data set: it learns the rare classes' shapes, but it also learns to call
a common class's ambiguous images (an ``X`` like ``\\times``, a ``1`` like ``|``) the
rare one. Adding ``power * log(count)`` back to the log-probabilities at inference
returns predictions to the training set's class frequencies (the prior correction
of importance weighting; the "logit adjustment" of Menon et al., 2021, run backwards),
while the features keep what the weighting taught. In training the layer is the
identity, so the weighted loss is what is optimised.

The shift is part of the layer's config (a list of numbers), not a weight: the
model's weights, and so resume and ``--init-from``, are the same with or without it.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops

PACKAGE = "mathsym_zoo"
#: Probabilities are clipped here before the log: float32 softmax underflows to 0.
_TINY = 1e-30


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassPrior(keras.layers.Layer):
    """Probabilities in, probabilities out: ``softmax(log p + shift)`` at inference, ``p`` in training."""

    def __init__(self, shift: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.shift = [float(s) for s in shift]
        if not all(math.isfinite(s) for s in self.shift):
            raise ValueError("ClassPrior: every shift must be a finite number")

    def call(self, probabilities, training=None):
        if training:
            return probabilities
        shift = ops.convert_to_tensor(self.shift, dtype=probabilities.dtype)
        return ops.softmax(ops.log(ops.maximum(probabilities, _TINY)) + shift, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "shift": list(self.shift)}


def prior_shift(weights: dict[int, float], num_classes: int, strength: float = 1.0) -> list[float]:
    """The log-shift that undoes per-class loss weights ``weights`` (``-strength * log w``, centred at 0).

    ``strength`` 1 returns predictions to the training set's class frequencies; a share below
    1 stops part-way, between the weighted model's macro recall and the unweighted one's top-1.
    A class without training images (weight 0) gets the lowest shift of the others:
    nothing taught the model to predict it, and nothing here should raise it.
    """
    present = {c: -strength * math.log(w) for c, w in weights.items() if w > 0}
    if not present:
        return [0.0] * num_classes
    mean = sum(present.values()) / len(present)
    low = min(present.values()) - mean
    return [present[c] - mean if c in present else low for c in range(num_classes)]
