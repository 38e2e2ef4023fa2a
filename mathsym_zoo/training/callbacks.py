"""Keras callbacks of the training loop, one concern each.

They share one ``state`` dict, the resume state that :meth:`Run.commit_epoch`
writes after every epoch, so a resumed run continues with exactly the counters
an uninterrupted one would have. Order in the callback list matters:
``EpochSeeds`` and ``NonFiniteLoss`` first; then ``EpochRecorder``, ``ResumableEarlyStopping``,
``ResumablePlateau`` (they update ``state``); ``EpochCommitter`` after them.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import keras

MONITOR = "val_loss"  # lower is better; the best checkpoint and early stopping follow it


def epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of epoch ``epoch``: a pure function of (run seed, epoch)."""
    return (int(seed) * 1_000_003 + int(epoch)) % (2**31 - 1)


def _seed_generators(model) -> list:
    """Every ``keras.random.SeedGenerator`` the model's layers draw from (dropout, augmentation)."""
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for gen in getattr(layer, "_seed_generators", ()):
            if id(gen) not in seen:
                seen.add(id(gen))
                found.append(gen)
    return found


class EpochSeeds(keras.callbacks.Callback):
    """Sets every random state from (seed, epoch) when an epoch begins.

    Dropout masks and augmentation draw from SeedGenerator variables that
    ``model.save`` does not restore (a loaded model gets fresh seeds), so a
    resumed epoch would draw other masks. Resetting them, and the global
    Python/NumPy/TensorFlow seeds, at each epoch start makes epoch k's random
    draws the same whether the run was resumed or not.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        base = epoch_seed(self.seed, epoch)
        keras.utils.set_random_seed(base)
        from keras.src.backend.common import global_state  # the unseeded ops' generator has no public handle

        generators = _seed_generators(self.model)
        global_gen = global_state.get_global_attribute("global_seed_generator")
        if global_gen is not None:
            generators.append(global_gen)
        for i, gen in enumerate(generators):
            gen.state.assign(keras.ops.convert_to_tensor([(base + 7919 * (i + 1)) % (2**31 - 1), 0],
                                                         dtype=gen.state.dtype))


class NonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite and records why in ``state``.

    The epoch is not committed (:class:`EpochCommitter` skips it), so the run keeps
    its last good checkpoint; the engine then marks the run failed.
    """

    def __init__(self, state: dict[str, Any]):
        super().__init__()
        self.state = state
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.state["failure"] = (f"loss became {'NaN' if math.isnan(float(loss)) else 'infinite'} at epoch "
                                     f"{self._epoch + 1} step {batch + 1}")
            self.model.stop_training = True


class EpochRecorder(keras.callbacks.Callback):
    """Appends one history row per epoch (logs, learning rate, seconds, images/s) to ``state``."""

    def __init__(self, state: dict[str, Any], *, images_per_epoch: int):
        super().__init__()
        self.state = state
        self.images_per_epoch = images_per_epoch
        self._t0 = self._t_train = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = self._t_train = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._t_train = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.state.get("failure"):
            return  # the failed epoch is not part of the run
        seconds = time.perf_counter() - self._t0
        train_phase = max(self._t_train - self._t0, 1e-9)  # without validation
        row: dict[str, Any] = {"epoch": epoch + 1}
        for k, v in (logs or {}).items():
            try:
                row[k] = float(v)
            except (TypeError, ValueError):
                continue
        try:
            row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # an optimizer without a readable rate: leave the column out
            pass
        row["seconds"] = round(seconds, 3)
        row["images_per_second"] = round(self.images_per_epoch / train_phase, 1)
        st = self.state
        st["history"].append(row)
        st["epochs_done"] = epoch + 1
        st["train_seconds"] = st.get("train_seconds", 0.0) + seconds
        st["train_phase_seconds"] = st.get("train_phase_seconds", 0.0) + train_phase
        st["train_images"] = st.get("train_images", 0) + self.images_per_epoch


class ResumableEarlyStopping(keras.callbacks.Callback):
    """Early stopping on ``val_loss`` with best-weights tracking, its counters kept in ``state``.

    What ``EarlyStopping(restore_best_weights=True)`` does, except that ``best``,
    ``best_epoch`` and ``wait`` live in the resume state. ``keep_last``: every epoch
    is the new best (``train_on_val``: a loss on training images picks nothing).
    """

    def __init__(self, state: dict[str, Any], *, patience: int, keep_last: bool = False):
        super().__init__()
        self.state = state
        self.patience = patience
        self.keep_last = keep_last
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        st = self.state
        if st.get("failure"):
            return
        current = (logs or {}).get(MONITOR)
        current = float(current) if current is not None else None
        improved = current is not None and math.isfinite(current) and (st["best"] is None or current < st["best"])
        if improved or self.keep_last:
            st["best"], st["best_epoch"], st["wait"] = current, epoch + 1, 0
            self.best_weights = self.model.get_weights()
        else:
            st["wait"] += 1
        if self.patience and st["wait"] >= self.patience:
            st["stopped_early"] = True
            self.model.stop_training = True


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters are restored from, and saved to, ``state``."""

    def __init__(self, state: dict[str, Any], **kwargs):
        super().__init__(**kwargs)
        self.state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for k, v in (self.state.get("plateau") or {}).items():
            setattr(self, k, v)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.state["plateau"] = {"wait": int(self.wait), "best": float(self.best),
                                 "cooldown_counter": int(self.cooldown_counter)}


class EpochCommitter(keras.callbacks.Callback):
    """Commits each finished epoch to the run folder (checkpoint, then state, then derived files)."""

    def __init__(self, run, state: dict[str, Any], save_model: Callable[[Any, Path], None]):
        super().__init__()
        self.run = run
        self.state = state
        self.save_model = save_model

    def on_epoch_end(self, epoch, logs=None):
        if self.state.get("failure"):
            return  # a failed epoch is never committed: the last good checkpoint stays
        self.run.commit_epoch(lambda path: self.save_model(self.model, path), self.state)


class EpochLog(keras.callbacks.Callback):
    """One plain line per epoch (logs, CI, pipes): no bars, no tables, no wrapping tricks."""

    def __init__(self, *, epochs: int, stream: TextIO | None = None):
        super().__init__()
        self.epochs = epochs
        self.stream = stream
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self._t0
        parts = [f"epoch {epoch + 1}/{self.epochs}"] + [f"{k} {fmt(logs.get(k))}" for k in
                                                        ("loss", "accuracy", "val_loss", "val_accuracy")]
        print("  ".join(parts) + f"  {seconds:.1f}s", file=self.stream or sys.stdout, flush=True)


class RunTensorBoard(keras.callbacks.TensorBoard):
    """Keras' own TensorBoard callback (epoch scalars with the learning rate, the model graph,
    weight histograms), its epochs numbered from 1 as in ``history.csv``.

    Resumed runs continue the same curves: Keras is given the run's global epoch
    (``initial_epoch``), and a resume appends a new event file to the same folders.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


def tensorboard_logs(log_dir: Path, epochs: int) -> list:
    """``[RunTensorBoard]`` writing to ``log_dir`` (``train/``, ``validation/``), with weight
    histograms twice per run (each costs about a second on a small CPU model); ``[]`` and a warning without the ``tensorboard`` package."""
    import importlib.util
    import warnings

    if importlib.util.find_spec("tensorboard") is None:
        warnings.warn("TensorBoard logs are off: the tensorboard package is not installed "
                      "(pip install 'mathsym-zoo[tensorboard]')", stacklevel=2)
        return []
    return [RunTensorBoard(log_dir=str(log_dir), histogram_freq=max(1, epochs // 2), write_graph=True,
                           update_freq="epoch", profile_batch=0)]


def fmt(v) -> str:
    try:
        return f"{float(v):.4f}"
    except (TypeError, ValueError):
        return "-"
