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

BatchNorm moving statistics are not averaged (Keras averages trainable
variables only); they follow the raw weights, which is close at momentum 0.999.
"""

from __future__ import annotations

import keras


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

    def __init__(self):
        super().__init__()
        self._averaged = False  # the model's variables hold the averages (and the slots the raw weights)
        self._training = False
        self._final = None

    def _to(self, averaged: bool) -> None:
        if self._averaged != averaged and swap_with_average(self.model.optimizer):
            self._averaged = averaged

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
