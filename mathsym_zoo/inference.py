"""The one compiled-inference path: ``model(x, training=False)`` behind fixed-signature ``tf.function``s.

Evaluation, ``predict``, the draw page and the benchmarks all call models through
:class:`CompiledModel`: uint8 images in (the cached pixels, cast inside the graph),
float32 probabilities out. One image costs a compiled call, not ``model.predict``'s
per-call set-up, so single-image latency is milliseconds.
"""

from __future__ import annotations

import time

import numpy as np


class CompiledModel:
    """Two traced functions over one Keras model: batches ``[None, H, W, C]`` and single images ``[1, H, W, C]``."""

    def __init__(self, model, *, tta: int = 1) -> None:
        """``tta`` > 1 averages the probabilities over that many test-time variants (:mod:`mathsym_zoo.tta`)."""
        import tensorflow as tf

        from .tta import check_tta, tta_probabilities

        self.model = model
        self.tta = check_tta(tta)
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])

        def call(x):  # a def, not a lambda: AutoGraph cannot parse lambdas and warns
            if self.tta > 1:
                return tta_probabilities(model, tf.cast(x, tf.float32), self.tta)
            return tf.cast(model(tf.cast(x, tf.float32), training=False), tf.float32)

        spec = lambda n: [tf.TensorSpec((n, *self.input_shape), tf.uint8, name="image")]  # noqa: E731
        self.batch = tf.function(call, input_signature=spec(None), jit_compile=False)
        self.single = tf.function(call, input_signature=spec(1), jit_compile=False)

    @property
    def num_classes(self) -> int:
        return int(self.model.output_shape[-1])

    def warm(self, *batch_sizes: int) -> "CompiledModel":
        """Trace and run once per size: the first calls pay for tracing and oneDNN kernel set-up."""
        for n in batch_sizes:
            self(np.zeros((n, *self.input_shape), np.uint8))
        return self

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, C)`` of a uint8 batch."""
        images = np.asarray(images, dtype=np.uint8)
        fn = self.single if images.shape[0] == 1 else self.batch
        return fn(images).numpy()

    def predict(self, images: np.ndarray, rows: np.ndarray | None = None,
                batch_size: int = 256) -> tuple[np.ndarray, float]:
        """Probabilities of ``images[rows]`` (all rows when None) and batch throughput in
        images/s, timed after a warm-up call. Rows are gathered per batch, so a memory
        map stays on disk."""
        rows = np.arange(images.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        n = rows.shape[0]
        if n == 0:
            return np.zeros((0, self.num_classes), np.float32), float("nan")
        batch = lambda lo: np.asarray(images[rows[lo:lo + batch_size]], dtype=np.uint8)  # noqa: E731
        first = batch(0)
        self.batch(first)  # trace + warm up; not timed
        out = []
        start = time.perf_counter()
        for lo in range(0, n, batch_size):
            out.append(self.batch(first if lo == 0 else batch(lo)).numpy())
        elapsed = time.perf_counter() - start
        return np.concatenate(out), (n / elapsed if elapsed > 0 else float("nan"))

    def latency(self, images: np.ndarray, *, repeats: int = 50, warmup: int = 5) -> dict[str, float | None]:
        """Single-image latency in ms (p50, p95) over ``repeats`` compiled calls."""
        if images.shape[0] == 0:
            return {"latency_ms_p50": None, "latency_ms_p95": None}
        xs = [np.asarray(images[i % images.shape[0]][None], dtype=np.uint8) for i in range(min(repeats, 64))]
        for i in range(warmup):
            self.single(xs[i % len(xs)]).numpy()
        times = []
        for i in range(repeats):
            t0 = time.perf_counter()
            self.single(xs[i % len(xs)]).numpy()
            times.append((time.perf_counter() - t0) * 1000.0)
        p50, p95 = np.percentile(times, [50, 95])
        return {"latency_ms_p50": float(p50), "latency_ms_p95": float(p95)}
