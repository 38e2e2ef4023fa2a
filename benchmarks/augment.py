"""Cost of the writer-shift augmentation layers per batch of 64 on the CPU.

Each layer runs in training mode inside one ``tf.function`` (as in ``fit``) on real
45x45 images (``crohme_bench.zip`` when present, else the demo source). In one run
it times, fastest of ``--rounds`` rounds of ``--steps`` batches each (robust to
other load on the machine):

* the baselines: the existing ``augment`` step (Keras rotation/zoom/translation)
  and one training step (forward + backward + update) of ``mobilenet-head``;
* ``random_affine``, ``elastic``, ``random_erasing`` and all three in a row.

Headline lines last: milliseconds per batch, then each layer's cost as a share of
the mobilenet-head training step.

    python benchmarks/augment.py [--source crohme] [--rounds 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BATCH = 64


def images(source: str) -> tuple[np.ndarray, np.ndarray, int]:
    from mathsym_zoo.data.cache import load_dataset
    from mathsym_zoo.registry import resolve

    try:
        ds = load_dataset(resolve(source=source), progress=False)
    except Exception as exc:  # the benchmark archive is not shipped; fall back to generated data
        print(f"source {source!r} unavailable ({exc}); using demo")
        ds = load_dataset(resolve(source="demo"), progress=False)
    idx = np.random.default_rng(0).choice(len(ds), BATCH, replace=False)
    return np.asarray(ds.images[idx], np.float32), np.asarray(ds.labels[idx]), ds.num_classes


def fastest_ms(fn, x, rounds: int, steps: int) -> float:
    fn(x)  # trace and warm up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            out = fn(x)
        np.asarray(out)  # wait for the last result
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1000


def layer_fn(layers):
    import tensorflow as tf

    @tf.function
    def run(x):
        x = x / 255.0
        for layer in layers:
            x = layer(x, training=True)
        return x

    return run


def train_step_fn(num_classes: int, labels):
    import keras
    import tensorflow as tf

    from mathsym_zoo.data.pipeline import wrap_model
    from mathsym_zoo.plugins import PluginSet

    arch = PluginSet().get("architecture", "mobilenet-head")
    model = wrap_model(arch.factory(arch.params(), (45, 45, 1), num_classes), (45, 45, 1))
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    y = tf.constant(labels)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="crohme")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import tensorflow as tf

    from mathsym_zoo.plugins import PluginSet

    x, labels, num_classes = images(args.source)
    xt = tf.constant(x)
    plugins = PluginSet()

    def build(name: str, **params):
        comp = plugins.get("preprocessor", name)
        return comp.factory(comp.params(**{"seed": 0, **params})).keras_layer()

    train_ms = fastest_ms(train_step_fn(num_classes, labels), xt, args.rounds, args.steps)
    timings = {"augment (baseline: zoom/shift)": fastest_ms(layer_fn([build("augment")]), xt, args.rounds, args.steps)}
    for name in ("random_affine", "elastic", "random_erasing"):
        timings[name] = fastest_ms(layer_fn([build(name, probability=1.0)]), xt, args.rounds, args.steps)
    all_three = [build(n, probability=1.0) for n in ("random_affine", "elastic", "random_erasing")]
    timings["all three"] = fastest_ms(layer_fn(all_three), xt, args.rounds, args.steps)

    print(f"batch {BATCH}, {x.shape[1]}x{x.shape[2]}, fastest of {args.rounds} rounds x {args.steps} batches, "
          f"{os.cpu_count()} CPU cores visible")
    print(f"mobilenet-head train step ms per batch of {BATCH}: {train_ms:.2f}")
    for name, ms in timings.items():
        print(f"{name} ms per batch of {BATCH}: {ms:.2f}")
    for name, ms in timings.items():
        print(f"{name} cost / mobilenet-head train step: {ms / train_ms:.3f}")


if __name__ == "__main__":
    main()
