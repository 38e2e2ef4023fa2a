"""Run folders for the predict and export tests, built by hand (no registry, no cache).

A run folder holds ``best.keras`` (input: the cached uint8 image as float 0-255,
scaling inside) and a ``run.json`` with ``class_names``, the offline
``preprocessing`` as resolved dicts and ``input_shape``, as training writes it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params

BENCH_ZIP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "crohme_bench.zip"
INPUT_SHAPE = (45, 45, 1)
DEFAULT_PREPROCESSING = [
    {"name": "grayscale", "type": "grayscale", "plugin": "image_ops", "params": {}},
    {"name": "resize_pad", "type": "resize_pad", "plugin": "image_ops",
     "params": {"size": [45, 45], "resample": "bicubic", "fill": 255}},
]
#: Real classes of crohme_bench.zip used by the agreement tests (all have hundreds of images).
BENCH_CLASSES = ("+", "-", "2", "3", "=", "sqrt")


def small_cnn(input_shape, num_classes: int, seed: int = 0):
    """A small CNN with a dense layer big enough for dynamic-range quantization to act on."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="small_cnn")


def wrap(arch, input_shape):
    """Raw 0-255 float input -> Rescaling(1/255) -> architecture, as training saves models."""
    from mathsym_zoo.data.pipeline import wrap_model

    return wrap_model(arch, input_shape, ())


def write_run(run_dir: Path, model, class_names, preprocessing=None, input_shape=INPUT_SHAPE,
              extra: dict | None = None) -> Path:
    """A run folder; ``extra`` adds fields to run.json (status, source, created...)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "best.keras")
    info = {"class_names": list(class_names),
            "preprocessing": DEFAULT_PREPROCESSING if preprocessing is None else preprocessing,
            "input_shape": list(input_shape), "model": {"name": model.name}, **(extra or {})}
    (run_dir / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return run_dir


def tiny_run(run_dir: Path, class_names=("alpha", "beta", "gamma", "delta"), preprocessing=None,
             input_shape=INPUT_SHAPE) -> Path:
    """An untrained small model in a run folder (fast; for plumbing tests)."""
    model = wrap(small_cnn(input_shape, len(class_names)), input_shape)
    return write_run(run_dir, model, class_names, preprocessing, input_shape)


def bench_images(per_class: int, classes=BENCH_CLASSES, offset: int = 0):
    """``(images uint8 (N,45,45,1), labels, class_names, raw JPEG bytes list)`` from crohme_bench.zip,
    ``per_class`` images per class spread over its (sorted) files, starting at ``offset``."""
    from mathsym_zoo.plugins import PluginSet
    from mathsym_zoo.predict import build_offline_steps
    from PIL import Image

    steps = build_offline_steps(DEFAULT_PREPROCESSING, PluginSet())
    names = sorted(classes)
    images, labels, raw = [], [], []
    with zipfile.ZipFile(BENCH_ZIP) as zf:
        members = sorted(n for n in zf.namelist() if not n.endswith("/"))
        for label, cls in enumerate(names):
            files = [n for n in members if n.split("/")[-2] == cls]
            for name in files[offset:: max(1, len(files) // per_class)][:per_class]:
                data = zf.read(name)
                image = Image.open(io.BytesIO(data))
                for step in steps:
                    image = step.apply(image)
                images.append(np.asarray(image, np.uint8)[..., None])
                labels.append(label)
                raw.append((name, data))
    return np.stack(images), np.asarray(labels, np.int32), names, raw


class SmallCnnParams(Params):
    pass


class SmallCnnPlugin:
    """Registers ``small-cnn`` in-process, as a third-party architecture plugin would."""

    @hookimpl
    def register_architectures(self, register):
        register("small-cnn", summary="test-only small CNN", params=SmallCnnParams,
                 factory=lambda params, input_shape, num_classes: small_cnn(input_shape, num_classes))


def trained_run(tmp: Path, train_per_class: int = 60, epochs: int = 4):
    """``train_model`` on real CROHME symbols for a few seconds, with online augmentation in the
    job; returns the run folder. Its run.json is exactly what training writes."""
    from mathsym_zoo.data.dataset import Dataset
    from mathsym_zoo.plugins import PluginSet
    from mathsym_zoo.registry import resolve
    from mathsym_zoo.training import train_model

    images, labels, names, _ = bench_images(train_per_class)
    dataset = Dataset.from_arrays(images, labels, names, path=tmp / "dataset", key="crohme-bench-subset",
                                  source={"describe": f"crohme_bench.zip, {len(names)} classes"},
                                  preprocessing=DEFAULT_PREPROCESSING)
    plugins = PluginSet()
    plugins.register(SmallCnnPlugin(), name="small-cnn-plugin")
    raw = {"data": {"source": "demo", "cache_dir": str(tmp / "cache")},
           "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [45, 45]},
                             {"type": "augment", "rotation": 0.02, "zoom": 0.05, "translation": 0.03, "seed": 0}],
           "split": {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0},
           "models": {"small-cnn": {"type": "small-cnn"}},
           "train": {"epochs": epochs, "batch_size": 32, "early_stopping_patience": 0, "device": "cpu",
                     "runs_dir": str(tmp / "runs")}}
    job = resolve(tmp / "registry.toml", raw=raw, plugins=plugins)
    return train_model(job, "small-cnn", dataset=dataset).run_dir
