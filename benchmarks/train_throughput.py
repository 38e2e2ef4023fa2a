"""Training throughput of the zoo's architectures on this machine: precision and XLA, in one run.

For each model of the shipped registry it builds the network the tool trains
(``wrap_model``: rescaling, architecture, float32 output, ClassPrior) with the shipped
optimizer and loss, and times ``fit`` on random 45x45 images for each configuration:

* ``float32``: no XLA (the tool's CPU path);
* ``float32+xla``: ``jit_compile=True``;
* ``mixed+xla``: ``mixed_float16`` compute, float32 output, XLA (the tool's GPU path:
  ``mixed_precision = "auto"`` and ``xla = "auto"``);
* ``mixed``: ``mixed_float16`` without XLA.

Images per second are the median of ``--rounds`` timed fits of ``--steps`` steps, after
one untimed fit that compiles. Ratios are against ``float32`` at the same batch size,
measured in the same run; where a backend cannot run a configuration (Keras on JAX
always compiles with XLA, so "no XLA" is not a way it trains) the ratio is against the
first configuration it ran. The online augmentation layers are left out: they are
TensorFlow code, and this script also runs on Keras' JAX backend (``KERAS_BACKEND=jax``),
which is how it ran on a GPU machine that has no TensorFlow (see the README).

Headline lines last, one per line: per model, the fastest configuration's images/s and
its ratio, and what one epoch of ``crohme_bench.zip``'s writer-disjoint training side
(38,589 images) would take at that rate.

    python benchmarks/train_throughput.py [--models mobilenet-head] [--batch 64 512]
        [--configs float32 mixed+xla] [--steps 40] [--rounds 3]

On a GPU machine without TensorFlow: install keras, pydantic and this package with
``pip install --no-deps .`` beside a CUDA build of JAX, then run it with
``KERAS_BACKEND=jax ... --batch 64 512 --configs float32+xla mixed+xla``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CONFIGS = {  # name -> (Keras dtype policy, jit_compile)
    "float32": ("float32", False),
    "float32+xla": ("float32", True),
    "mixed+xla": ("mixed_float16", True),
    "mixed": ("mixed_float16", False),
}
TRAIN_IMAGES = 38589  # the training side of crohme_bench.zip's writer-disjoint split
SHAPE, CLASSES = (45, 45, 1), 82


def device_name() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}, {jax.devices()[0].device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"tensorflow {tf.__version__}, " + (tf.config.experimental.get_device_details(gpus[0]).get(
        "device_name", "GPU") if gpus else "CPU")


def build(job, model_name: str, policy: str, jit: bool, steps: int):
    """The model ``train`` builds for ``model_name`` (without online augmentation), compiled."""
    import keras

    from mathsym_zoo.components import call_factory
    from mathsym_zoo.data.pipeline import wrap_model
    from mathsym_zoo.model_layers import prior_shift
    from mathsym_zoo.training.recipe import build_optimizer

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    entry = job.model(model_name)
    arch = call_factory(entry.component, entry.params, SHAPE, CLASSES)
    prior = prior_shift({c: 1.0 + c / CLASSES for c in range(CLASSES)}, CLASSES)
    model = wrap_model(arch, SHAPE, [], name=model_name, class_prior=prior)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=job.train.label_smoothing)
    model.compile(optimizer=build_optimizer(job.train, steps), loss=loss, jit_compile=jit)
    keras.mixed_precision.set_global_policy("float32")
    return model


def images_per_second(model, batch: int, steps: int, rounds: int) -> float:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * steps, *SHAPE)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, batch * steps)]
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compiles
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        rates.append(batch * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def runnable(config: str, backend: str) -> str | None:
    """Why ``config`` is skipped on ``backend`` (None: it runs)."""
    policy, jit = CONFIGS[config]
    if backend == "jax" and not jit:
        return "Keras on JAX compiles every step with XLA"
    return None


def main() -> None:
    import keras

    from mathsym_zoo.registry import resolve

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet-head", "resnet-lite", "notebook-cnn"])
    parser.add_argument("--batch", nargs="+", type=int, default=[64])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["float32", "float32+xla"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    job = resolve(source="demo")
    backend = keras.backend.backend()
    print(f"{device_name()} (Keras {keras.__version__}, backend {backend})")
    print(f"{'model':<16}{'batch':>6}  {'config':<13}{'images/s':>10}  ratio")
    best: dict[str, tuple[float, str, int, float, str]] = {}
    for name in args.models:
        for batch in args.batch:
            base, base_config = None, ""
            for config in args.configs:
                why = runnable(config, backend)
                if why:
                    print(f"{name:<16}{batch:>6}  {config:<13}{'skipped':>10}  ({why})")
                    continue
                rate = images_per_second(build(job, name, *CONFIGS[config], args.steps), batch, args.steps,
                                         args.rounds)
                if base is None:
                    base, base_config = rate, config
                print(f"{name:<16}{batch:>6}  {config:<13}{rate:>10.0f}  {rate / base:.2f}x", flush=True)
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, config, batch, rate / base, base_config)
    for name, (rate, config, batch, ratio, base_config) in best.items():
        print(f"{name} images/s ({config}, batch {batch}): {rate:.0f}")
        print(f"{name} {config} vs {base_config}: {ratio:.2f}")
        print(f"{name} seconds per crohme epoch: {TRAIN_IMAGES / rate:.1f}")


if __name__ == "__main__":
    main()
