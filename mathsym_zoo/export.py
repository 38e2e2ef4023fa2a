"""Ship a trained model outside the training code: SavedModel or TFLite.

An export folder holds the model, ``labels.txt`` (one class name per line, in
output order) and ``model_info.json`` (format, input and output description,
offline preprocessing, class names, versions)::

    OUT/
      saved_model/     (format "saved_model")   or   model.tflite  (format "tflite")
      labels.txt
      model_info.json

What the exported model takes: a **uint8** tensor ``(N, H, W, C)`` (``input_shape``
in model_info.json), the image *after* the run's offline preprocessing (for the
default registry: grey levels, fitted into 45x45 keeping the aspect ratio and
padded with white, dark ink on white paper), values 0-255. Scaling to 0-1 and
the online steps are inside the model. It returns float32 ``(N, classes)``
softmax probabilities in ``labels.txt`` order. ``load_classifier(OUT)`` applies
the offline preprocessing for you; without this package, apply the steps
listed under ``preprocessing`` in model_info.json.

The folder is written to a temporary sibling and renamed into place, so a
failed export never leaves a half-written ``OUT``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ConfigError
from .predict import INFO_FILE, LABELS_FILE, Classifier, load_classifier

__all__ = ["export", "ExportResult", "compare_outputs", "synthetic_inputs", "FORMATS", "QUANTIZATIONS"]

Format = Literal["saved_model", "tflite"]
Quantize = Literal["dynamic", "float16"]
FORMATS: tuple[str, ...] = ("saved_model", "tflite")
QUANTIZATIONS: tuple[str, ...] = ("dynamic", "float16")
MODEL_FILE = {"saved_model": "saved_model", "tflite": "model.tflite"}

INPUT_DOC = ("uint8 (N, H, W, C): the image after the offline preprocessing listed under `preprocessing` "
             "(applied in order), values 0-255; scaling and online preprocessing are inside the model")
OUTPUT_DOC = "float32 (N, classes): softmax probabilities, in the order of labels.txt / class_names"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote, with sizes and, when checked, agreement with the Keras model."""

    path: Path  # the export folder
    model_path: Path  # saved_model/ or model.tflite inside it
    format: str
    quantize: str | None
    size_bytes: int  # of the exported model (folder total for a SavedModel)
    keras_size_bytes: int  # of the source .keras file
    check: dict[str, Any] | None = None  # compare_outputs() on the check images

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["path"], out["model_path"] = str(self.path), str(self.model_path)
        return out


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def compare_outputs(reference: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """How closely ``other`` probabilities follow ``reference``: max |diff|, top-1
    agreement and, with true ``labels``, both accuracies and their difference."""
    out = {
        "images": int(reference.shape[0]),
        "max_abs_diff": float(np.max(np.abs(reference - other))) if reference.size else 0.0,
        "top1_agreement": float(np.mean(reference.argmax(1) == other.argmax(1))) if reference.size else 1.0,
    }
    if labels is not None and reference.size:
        out["accuracy_keras"] = float(np.mean(reference.argmax(1) == labels))
        out["accuracy_export"] = float(np.mean(other.argmax(1) == labels))
        out["accuracy_change"] = out["accuracy_export"] - out["accuracy_keras"]
    return out


def _uint8_model(model, input_shape):
    """The Keras model behind a uint8 input (exports take the cached image as stored)."""
    import keras

    inp = keras.Input(input_shape, dtype="uint8", name="image")
    x = keras.ops.cast(inp, "float32")
    out = keras.ops.cast(model(x, training=False), "float32")
    return keras.Model(inp, out, name=f"{model.name}_uint8")


def _write_saved_model(model, input_shape, dest: Path) -> None:
    import tensorflow as tf

    wrapped = _uint8_model(model, input_shape)
    # model.export writes a "serve" endpoint and the "serving_default" signature.
    wrapped.export(str(dest), format="tf_saved_model", verbose=False,
                   input_signature=[tf.TensorSpec((None, *input_shape), tf.uint8, name="image")])


def _write_tflite(saved_model: Path, dest: Path, quantize: str | None) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    dest.write_bytes(converter.convert())


def _model_info(clf: Classifier, fmt: str, quantize: str | None, source_model: Path) -> dict[str, Any]:
    import tensorflow as tf

    from . import __version__

    run = clf.info
    return {
        "format": fmt,
        "file": MODEL_FILE[fmt],
        "quantize": quantize,
        "input": {"name": "image", "shape": [None, *clf.input_shape], "dtype": "uint8", "range": [0, 255],
                  "description": INPUT_DOC},
        "output": {"shape": [None, clf.num_classes], "dtype": "float32", "description": OUTPUT_DOC},
        "input_shape": list(clf.input_shape),
        "class_names": list(clf.class_names),
        "preprocessing": clf.preprocessing,
        "source_model": str(source_model),
        "run": {k: run[k] for k in ("model", "source", "dataset_key", "split", "status", "git_revision", "created")
                if k in run},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"mathsym_zoo": __version__, "tensorflow": tf.__version__},
    }


def export(
    path: str | os.PathLike,
    fmt: Format = "saved_model",
    quantize: Quantize | None = None,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    check: Any = None,
    check_labels: np.ndarray | None = None,
    plugins=None,
) -> ExportResult:
    """Export a run folder or ``.keras`` model (with its sidecar) to ``out``.

    ``fmt``: "saved_model" or "tflite"; ``quantize`` (TFLite only): None
    (float32), "dynamic" (int8 weights) or "float16". ``check``: images
    (anything ``Classifier.predict`` accepts, or a preprocessed uint8 batch)
    on which the export is reloaded and compared with the Keras model;
    ``check_labels`` (class indexes) adds the accuracy change. ``check`` may
    also be a callable ``f(input_shape) -> uint8 batch``, e.g. :func:`synthetic_inputs`.
    ``plugins``: the PluginSet that rebuilds the run's offline preprocessing
    (default: installed plugins only).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZATIONS)} (or none)")
    if quantize is not None and fmt != "tflite":
        raise ConfigError(f"--quantize {quantize} applies to TFLite only; add --format tflite or drop --quantize")
    if out is None:
        raise ConfigError("export needs an output folder (--out PATH)")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{str(out)!r} already exists; choose another --out or pass --force to replace it")

    clf = load_classifier(path, plugins=plugins)
    if clf.kind != "keras":
        raise ConfigError(f"{str(path)!r} is already an export ({clf.kind}); export from the run folder or .keras file")
    keras_file = _keras_file(Path(path))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary folder
    try:
        model_path = tmp / MODEL_FILE[fmt]
        if fmt == "saved_model":
            _write_saved_model(clf.model, clf.input_shape, model_path)
        else:
            staging = Path(tempfile.mkdtemp(prefix=".saved_model-", dir=tmp))
            _write_saved_model(clf.model, clf.input_shape, staging / "sm")
            _write_tflite(staging / "sm", model_path, quantize)
            shutil.rmtree(staging)
        (tmp / LABELS_FILE).write_text("".join(f"{name}\n" for name in clf.class_names), encoding="utf-8")
        info = _model_info(clf, fmt, quantize, keras_file)
        info["size_bytes"] = _size(model_path)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        result_check = None
        if check is not None:
            result_check = _check(clf, tmp, check, check_labels)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, out / MODEL_FILE[fmt], fmt, quantize, info["size_bytes"], keras_file.stat().st_size,
                        result_check)


def _keras_file(path: Path) -> Path:
    from .predict import resolve_model

    return resolve_model(path)[1]


def _check_batch(clf: Classifier, check: Any, strict: bool) -> np.ndarray:
    if callable(check):
        return check(clf.input_shape)
    if isinstance(check, np.ndarray) and check.ndim == 4 and check.shape[1:] == clf.input_shape \
            and check.dtype == np.uint8:
        return check
    from .predict import ImageDecodeError, expand_inputs

    items, _ = expand_inputs(check)
    arrays = []
    for item in items:
        try:
            arrays.append(clf.preprocess(item))
        except ImageDecodeError:
            if strict:
                raise
            continue  # unreadable check images are simply not compared
    if not arrays:
        raise ConfigError("no readable images to check the export on")
    return np.stack(arrays)


def _check(clf: Classifier, folder: Path, check: Any, labels: np.ndarray | None) -> dict[str, Any]:
    batch = _check_batch(clf, check, strict=labels is not None)  # labels must stay aligned
    exported = load_classifier(folder)
    reference = np.concatenate([clf.predict_proba(batch[i:i + 256]) for i in range(0, len(batch), 256)])
    other = np.concatenate([exported.predict_proba(batch[i:i + 256]) for i in range(0, len(batch), 256)])
    return compare_outputs(reference, other, labels)


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def synthetic_inputs(shape, n: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` deterministic uint8 images of ``shape``: white paper with random dark strokes."""
    h, w, c = shape
    rng = np.random.default_rng(seed)
    images = np.full((n, h, w, c), 255, np.uint8)
    for img in images:
        for _ in range(rng.integers(2, 6)):
            y0, x0, y1, x1 = rng.integers(0, [h, w, h, w])
            steps = max(abs(y1 - y0), abs(x1 - x0), 1)
            ys = np.linspace(y0, y1, steps + 1).round().astype(int)
            xs = np.linspace(x0, x1, steps + 1).round().astype(int)
            img[ys, xs] = rng.integers(0, 80)
    return images
