"""The exponential moving average of the weights (``train.ema``) as the model that is validated and saved.

Keras' optimizer keeps the average (``use_ema``, updated in the training graph
after every step) in its own slot variables. :class:`EmaWeights` swaps the
values of the model's trainable variables and those slots, so that:

- validation (``val_loss``, hence the best checkpoint and early stopping) scores
  the averaged weights;
- every committed checkpoint, and so ``best.keras`` and ``last.keras``, holds the
  averaged weights as the model's weights (what inference, export and
  ``--init-from`` use) and the raw training weights in the optimizer's
  ``average`` slots;
- when an epoch begins the raw weights are swapped back in and training goes on
  exactly as without the swap. A checkpoint always holds the swapped state, so a
  resumed run swaps back at its first epoch like an uninterrupted one.

BatchNorm moving statistics are not averaged (Keras averages trainable variables
only), and those gathered under the raw weights do not fit the averaged ones (seen:
20% against 78% validation accuracy for mobilenet-head after 3 epochs). So whenever
the averages are swapped in, every BatchNorm layer's statistics are re-estimated
from one fixed batch of training images (as SWA's ``update_bn`` does). Training
never reads the moving statistics (it normalises by batch statistics), so this
changes what is validated and saved, not the training trajectory; and it is a
pure function of the averaged weights, that batch and the epoch's seeds, so
resume stays exact.
"""

from __future__ import annotations

import keras

from .batchnorm import calibration_images, recalibrate_batchnorm


def ema_slots(optimizer) -> list | None:
    """``[(variable, average), ...]`` of a built optimizer with ``use_ema``; None before it is built."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under mixed precision: the LossScaleOptimizer's
    averages = getattr(inner, "_model_variables_moving_average", None)  # Keras' slot list, created by build()
    if not getattr(inner, "use_ema", False) or not averages:
        return None
    return [(v, a) for v, a in zip(inner._trainable_variables, averages) if a is not None]


def swap_with_average(optimizer) -> bool:
    """Exchange each trainable variable's value with its EMA slot; False when there is no EMA yet."""
    pairs = ema_slots(optimizer)
    if pairs is None:
        return False
    for var, avg in pairs:
        raw = keras.ops.convert_to_numpy(var)  # a copy: the variable is overwritten next
        var.assign(avg)
        avg.assign(raw)
    return True


class EmaWeights(keras.callbacks.Callback):
    """Validates and saves the averaged weights; trains the raw ones. Place it before the callbacks
    that read the weights at epoch end (early stopping's best weights, the epoch committer)."""

    def __init__(self, calibration_images=None):
        """``calibration_images``: a fixed batch of training images (uint8, as the model takes them) from
        which BatchNorm statistics are re-estimated for the averaged weights."""
        super().__init__()
        self.calibration_images = calibration_images
        self._averaged = False  # the model's variables hold the averages (and the slots the raw weights)
        self._training = False
        self._final = None

    @classmethod
    def for_training(cls, images, train_rows) -> "EmaWeights":
        """Calibrating on a fixed batch of training images (:func:`~.batchnorm.calibration_images`)."""
        return cls(calibration_images(images, train_rows))

    def _to(self, averaged: bool) -> None:
        if self._averaged != averaged and swap_with_average(self.model.optimizer):
            self._averaged = averaged
            if averaged and self.calibration_images is not None:
                recalibrate_batchnorm(self.model, self.calibration_images)

    def on_train_begin(self, logs=None):
        self._training = True
        # Fresh optimizers start unswapped; one restored from a checkpoint was saved swapped.
        self._averaged = ema_slots(self.model.optimizer) is not None and int(self.model.optimizer.iterations) > 0

    def on_epoch_begin(self, epoch, logs=None):
        self._to(False)

    def on_test_begin(self, logs=None):
        if self._training:  # fit's validation pass; a plain evaluate() scores whatever the model holds
            self._to(True)

    def on_epoch_end(self, epoch, logs=None):
        self._to(True)
        self._final = [keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables] \
            if self._averaged else None

    def on_train_end(self, logs=None):
        self._training = False
        # fit() ends with optimizer.finalize_variable_values(), which copies the slots (here: the
        # raw weights) into the model; put the averages back so the model in memory is the saved one.
        if self._final is not None:
            for var, value in zip(self.model.trainable_variables, self._final):
                var.assign(value)
