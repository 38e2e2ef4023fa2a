"""How training progress is drawn: a rich live bar on a terminal, plain lines elsewhere.

Imported only by commands that train (it imports Keras).
"""

from __future__ import annotations

import time

import keras

from ..training.callbacks import EpochLog, fmt


class RichEpochBar(keras.callbacks.Callback):
    """A live bar per epoch (batches, images/s, loss, accuracy, ETA), then one line per epoch."""

    def __init__(self, console, *, batch_size: int, epochs: int):
        super().__init__()
        self.console = console
        self.batch_size = batch_size
        self.epochs = epochs
        self._progress = None
        self._task = None
        self._t0 = self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._t0 = self._last = time.perf_counter()
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7} img/s"), TextColumn("loss {task.fields[loss]}"),
            TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=True)
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.params.get("steps"), rate="-", loss="-", acc="-")

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        steps = self.params.get("steps") or 0
        if self._progress is None or (now - self._last < 0.2 and batch + 1 < steps):
            return
        self._last = now
        logs = logs or {}
        rate = (batch + 1) * self.batch_size / max(now - self._t0, 1e-9)
        self._progress.update(self._task, completed=batch + 1, rate=f"{rate:,.0f}", loss=fmt(logs.get("loss")),
                              acc=fmt(logs.get("accuracy")))

    def on_epoch_end(self, epoch, logs=None):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        logs = logs or {}
        seconds = time.perf_counter() - self._t0
        parts = [f"epoch {epoch + 1}/{self.epochs}"] + [f"{k} {fmt(logs.get(k))}" for k in
                                                        ("loss", "accuracy", "val_loss", "val_accuracy")]
        self.console.print("  ".join(parts) + f"  {seconds:.1f}s", highlight=False)

    def on_train_end(self, logs=None):
        if self._progress is not None:
            self._progress.stop()


def training_display(console, *, live: bool, batch_size: int, epochs: int) -> list:
    """The progress callbacks for ``train`` and ``compare``."""
    if live:
        return [RichEpochBar(console, batch_size=batch_size, epochs=epochs)]
    return [EpochLog(epochs=epochs, stream=console.file)]
