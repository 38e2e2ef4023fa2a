"""The training recipe of ``[train]``: optimizer, learning-rate schedule, EMA of weights, class weights.

Everything here is a pure function of :class:`TrainConfig` (and the step count
or labels), so a resumed run rebuilds exactly the optimizer it was trained with;
its variables (moments, EMA averages, iterations) come back from the checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import TrainConfig

#: Variables AdamW / SGD weight decay leaves alone: biases and BatchNorm / LayerNorm scale
#: and offset (decaying them only shrinks normalisation; Loshchilov & Hutter decay weights).
NO_DECAY_NAMES = ("bias", "gamma", "beta")
ADAMW_DEFAULT_DECAY = 0.004  # Keras' own AdamW default, used when train.weight_decay is 0


def learning_rate(cfg: TrainConfig, steps_per_epoch: int) -> Any:
    """A float (``constant``, ``plateau``) or a Keras schedule over the run's planned steps.

    ``warmup-cosine`` rises linearly from 0 to ``learning_rate`` over
    ``warmup_epochs`` (at most half the planned epochs, so a short trial such as
    ``--set train.epochs=1`` still runs and still decays) and then follows a cosine
    to 0 at the last planned step.
    """
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.lr_schedule == "cosine":
        return _cosine(cfg.learning_rate, total)
    if cfg.lr_schedule == "warmup-cosine":
        import keras

        warmup = min(total - 1, int(round(min(cfg.warmup_epochs, cfg.epochs / 2) * steps_per_epoch)))
        return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=max(1, total - warmup),
                                                      warmup_target=cfg.learning_rate, warmup_steps=warmup)
    return cfg.learning_rate


def _cosine(lr: float, steps: int):
    import keras

    return keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)


def build_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    """The Keras optimizer of ``cfg``, with the EMA of weights when ``train.ema`` is set.

    Decoupled weight decay (``adamw``, and ``adam``/``sgd`` with ``weight_decay``)
    skips :data:`NO_DECAY_NAMES`.
    """
    import keras

    lr = learning_rate(cfg, steps_per_epoch)
    ema = {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema else {}
    decay = cfg.weight_decay or (ADAMW_DEFAULT_DECAY if cfg.optimizer == "adamw" else None)
    if cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, weight_decay=decay, **ema)
    elif cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=decay, **ema)
    else:
        opt = keras.optimizers.SGD(lr, momentum=0.9, weight_decay=decay, **ema)
    if decay:
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return opt


def class_weights(labels: np.ndarray, num_classes: int, power: float = 1.0) -> dict[int, float]:
    """Class ``c`` gets ``count_c ** -power``, scaled so the weights average 1 over the images.

    ``power = 1`` is inverse frequency (a balanced set gets weight 1 everywhere);
    ``0.5`` ("square-root inverse frequency") helps rare classes without letting a
    class of two images dominate the loss. Classes absent from ``labels`` get 0.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    raw = np.zeros(num_classes)
    raw[present] = counts[present] ** -float(power)
    weights = raw * counts.sum() / max(float((raw * counts).sum()), 1e-12)
    return {i: float(w) for i, w in enumerate(weights)}
