"""Ship a trained model outside the training code: SavedModel, TFLite or ONNX.

An export folder holds the model, ``labels.txt`` (one class name per line, in
output order) and ``model_info.json`` (format, inputs and outputs, offline
preprocessing, class names, versions)::

    OUT/
      saved_model/ | model.tflite | model.onnx
      labels.txt
      model_info.json

What each format takes and returns:

* **SavedModel**, signature ``serving_default``: ``image_bytes``, a string
  tensor ``(N,)`` of encoded PNG/JPEG/BMP/GIF files of any size and mode; the
  run's offline preprocessing (grayscale, resize-with-pad...) runs in the graph,
  reproducing Pillow's arithmetic so the model sees the decoded cache's pixels.
  Signature ``serving_images``: ``image``, uint8 ``(N, H, W, C)`` already
  preprocessed. Both return ``probabilities`` float32 ``(N, classes)``,
  ``top_k_labels`` string ``(N, k)`` and ``top_k_scores`` float32 ``(N, k)``;
  the labels come from ``assets/labels.txt`` inside the SavedModel. Signature
  ``preprocess`` returns the model input (``image``) for encoded bytes.
  A run with an offline step that has no TensorFlow version (``graph_apply``)
  gets ``serving_images`` as ``serving_default``; model_info.json says why.
* **TFLite** and **ONNX** (no image decoding there): input ``image`` uint8
  ``(N, H, W, C)``, the image after the offline preprocessing, output
  ``probabilities``. ``examples/tflite_predict.py`` shows the preprocessing
  with Pillow alone.

Scaling to 0-1 and the online steps are inside every model. The folder is
written to a temporary sibling and renamed into place, so a failed export
never leaves a half-written ``OUT``.
"""

from __future__ import annotations

import contextlib
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
from .runs import Run

__all__ = ["export", "ExportResult", "compare_outputs", "synthetic_inputs", "FORMATS", "QUANTIZATIONS",
           "BYTES_SIGNATURE", "IMAGES_SIGNATURE", "PREPROCESS_SIGNATURE"]

Format = Literal["saved_model", "tflite", "onnx"]
Quantize = Literal["dynamic", "float16"]
FORMATS: tuple[str, ...] = ("saved_model", "tflite", "onnx")
QUANTIZATIONS: tuple[str, ...] = ("dynamic", "float16")
MODEL_FILE = {"saved_model": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
BYTES_SIGNATURE = "serving_default"  # what TF Serving and most tools call by default
IMAGES_SIGNATURE = "serving_images"
PREPROCESS_SIGNATURE = "preprocess"
TOP_K = 5
ONNX_OPSET = 17  # onnxruntime >= 1.14 and browsers' onnxruntime-web run it

INPUT_DOC = ("uint8 (N, H, W, C): the image after the offline preprocessing listed under `preprocessing` "
             "(applied in order), values 0-255; scaling and online preprocessing are inside the model")
OUTPUT_DOC = "float32 (N, classes): softmax probabilities, in the order of labels.txt / class_names"
BYTES_DOC = ("string (N,): encoded PNG, JPEG, BMP or GIF files (first frame), any size and mode; the offline "
             "preprocessing runs inside the model")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote, with sizes and, when checked, agreement with the Keras model."""

    path: Path  # the export folder
    model_path: Path  # saved_model/ or model.tflite inside it
    format: str
    quantize: str | None
    size_bytes: int  # of the exported model (folder total for a SavedModel)
    keras_size_bytes: int  # of the source .keras file
    check: dict[str, Any] | None = None  # compare_outputs() on the check images (+ "image_bytes" for SavedModel)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # what model_info.json says

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


def _probabilities(model, images):
    import tensorflow as tf

    return tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)


def _images_spec(input_shape):
    import tensorflow as tf

    return tf.TensorSpec((None, *input_shape), tf.uint8, name="image")


def _graph_preprocess(steps, input_shape):
    """Encoded bytes (N,) -> uint8 (N, H, W, C): decoding and the offline steps as graph ops."""
    import tensorflow as tf

    from . import tf_imaging

    def one(data):
        image = tf_imaging.over_white(tf_imaging.decode(data))
        for step in steps:
            image = step.graph_apply(image)
        return tf.ensure_shape(tf_imaging.to_channels(image, input_shape[2]), input_shape)

    def batch(image_bytes):
        return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec(input_shape, tf.uint8))

    return batch


def _write_saved_model(clf: Classifier, dest: Path, labels_file: Path, top_k: int) -> dict[str, Any]:
    """The SavedModel with its three signatures; returns what model_info.json says about them."""
    import keras
    import tensorflow as tf

    model, shape = clf.model, clf.input_shape
    # Labels come from the asset file, so the SavedModel carries its class names.
    table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
        str(labels_file), tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
        tf.string, tf.lookup.TextFileIndex.WHOLE_LINE), default_value="")

    def outputs(images):
        probs = _probabilities(model, images)
        scores, indices = tf.math.top_k(probs, k=top_k)
        return {"probabilities": probs, "top_k_labels": table.lookup(tf.cast(indices, tf.int64)),
                "top_k_scores": scores}

    preprocess = _graph_preprocess(clf.steps, shape)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)
    bytes_spec = [tf.TensorSpec((None,), tf.string, name="image_bytes")]
    try:  # tracing runs every step's graph_apply (endpoints are traced only when written)
        tf.function(preprocess).get_concrete_function(*bytes_spec)
        unavailable = None
    except NotImplementedError as exc:
        unavailable = str(exc)
    if unavailable is None:
        archive.add_endpoint(BYTES_SIGNATURE, lambda image_bytes: outputs(preprocess(image_bytes)), bytes_spec)
        archive.add_endpoint(PREPROCESS_SIGNATURE, lambda image_bytes: {"image": preprocess(image_bytes)},
                             bytes_spec)
    images_name = IMAGES_SIGNATURE if unavailable is None else BYTES_SIGNATURE
    archive.add_endpoint(images_name, outputs, [_images_spec(shape)])
    if unavailable is not None:
        archive.add_endpoint(IMAGES_SIGNATURE, outputs, [_images_spec(shape)])
    with _quiet_tf_logger():  # "Issue encountered when serializing table_initializer": harmless, TF says
        archive.write_out(str(dest), verbose=False)
    return _signatures_info(shape, clf.num_classes, top_k, unavailable)


@contextlib.contextmanager
def _quiet_tf_logger():
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _signatures_info(shape, classes: int, top_k: int, unavailable: str | None) -> dict[str, Any]:
    outputs = {"probabilities": f"float32 (N, {classes}): {OUTPUT_DOC.split(': ', 1)[1]}",
               "top_k_labels": f"string (N, {top_k}): best class names first (from assets/labels.txt)",
               "top_k_scores": f"float32 (N, {top_k}): their probabilities"}
    images = {"inputs": {"image": f"uint8 (N, {', '.join(map(str, shape))}): {INPUT_DOC.split(': ', 1)[1]}"},
              "outputs": outputs}
    if unavailable is not None:
        return {"signatures": {BYTES_SIGNATURE: images, IMAGES_SIGNATURE: images},
                "image_bytes_signature": {"available": False, "reason": unavailable}}
    return {"signatures": {
        BYTES_SIGNATURE: {"inputs": {"image_bytes": BYTES_DOC}, "outputs": outputs},
        IMAGES_SIGNATURE: images,
        PREPROCESS_SIGNATURE: {"inputs": {"image_bytes": BYTES_DOC},
                               "outputs": {"image": f"uint8 (N, {', '.join(map(str, shape))}): the model input"}}},
        "image_bytes_signature": {"available": True}}


def _probabilities_archive(model, input_shape, dest: Path) -> None:
    """A SavedModel with one signature, uint8 ``image`` -> ``probabilities`` (what TFLite converts)."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: {"probabilities": _probabilities(model, image)},
                         [_images_spec(input_shape)])
    with _quiet_tf_logger():  # a label table made by an earlier export in this process is reported again
        archive.write_out(str(dest), verbose=False)


def _write_tflite(model, input_shape, dest: Path, quantize: str | None) -> dict[str, Any]:
    import tensorflow as tf

    staging = Path(tempfile.mkdtemp(prefix=".saved_model-", dir=dest.parent))
    try:
        _probabilities_archive(model, input_shape, staging / "sm")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(staging / "sm"))
        if quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
        elif quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        dest.write_bytes(converter.convert())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"signatures": {"serving_default": {"inputs": {"image": INPUT_DOC}, "outputs": {"probabilities": OUTPUT_DOC}}}}


def _write_onnx(model, input_shape, dest: Path, class_names) -> dict[str, Any]:
    """ONNX through tf2onnx (Keras' own ONNX export uses it too), class names in the metadata."""
    import logging

    import tensorflow as tf

    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx extra: pip install 'mathsym-zoo[onnx]' "
                          "(tf2onnx, onnx, onnxruntime)") from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    spec = (_images_spec(input_shape),)
    fn = tf.function(lambda image: {"probabilities": _probabilities(model, image)}, input_signature=spec)
    with _quiet_tf_logger():
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=ONNX_OPSET)
    for key, value in (("class_names", json.dumps(list(class_names))), ("input", INPUT_DOC), ("output", OUTPUT_DOC)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    dest.write_bytes(proto.SerializeToString())
    onnx.checker.check_model(str(dest))
    return {"opset": ONNX_OPSET, "converter": f"tf2onnx {tf2onnx.__version__}",
            "signatures": {"onnx": {"inputs": {"image": INPUT_DOC}, "outputs": {"probabilities": OUTPUT_DOC}}}}


def _model_info(clf: Classifier, fmt: str, quantize: str | None, source_model: Path) -> dict[str, Any]:
    import PIL
    import tensorflow as tf

    from . import __version__

    run = clf.info
    return {
        "format": fmt,
        "file": MODEL_FILE[fmt],
        "quantize": quantize,
        "input": {"name": "image", "shape": [None, *clf.input_shape], "dtype": "uint8", "range": [0, 255],
                  "description": INPUT_DOC},
        "output": {"name": "probabilities", "shape": [None, clf.num_classes], "dtype": "float32",
                   "description": OUTPUT_DOC},
        "input_shape": list(clf.input_shape),
        "class_names": list(clf.class_names),
        "preprocessing": clf.preprocessing,
        "source_model": str(source_model),
        "run": {k: run[k] for k in ("model", "source", "dataset_key", "split", "status", "git_revision", "created")
                if k in run},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"mathsym_zoo": __version__, "tensorflow": tf.__version__, "pillow": PIL.__version__},
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

    ``fmt``: "saved_model", "tflite" or "onnx"; ``quantize`` (TFLite only): None
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

    clf = _load_source(path, plugins)
    keras_file = _keras_file(Path(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary folder
    try:
        labels_file = tmp / LABELS_FILE
        labels_file.write_text("".join(f"{name}\n" for name in clf.class_names), encoding="utf-8")
        for card in Run.open(path, require_record=False).model_card_files():  # MODEL_CARD.md, model_card.json
            shutil.copy2(card, tmp / card.name)
        info = _model_info(clf, fmt, quantize, keras_file)
        info.update(_write_model(clf, fmt, quantize, tmp))
        info["size_bytes"] = _size(tmp / MODEL_FILE[fmt])
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        result_check = _check(clf, tmp, check, check_labels) if check is not None else None
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, out / MODEL_FILE[fmt], fmt, quantize, info["size_bytes"], keras_file.stat().st_size,
                        result_check, info)


def _load_source(path, plugins) -> Classifier:
    """The Keras model to export, with its class names and offline steps (the one place exports load a run)."""
    clf = load_classifier(path, plugins=plugins)
    if clf.kind != "keras":
        raise ConfigError(f"{str(path)!r} is already an export ({clf.kind}); export from the run folder or .keras file")
    bad = [name for name in clf.class_names if "\n" in name or "\r" in name or not name.strip()]
    if bad:
        raise ConfigError(f"class name {bad[0]!r} cannot be written one per line to {LABELS_FILE}; rename the class")
    return clf


def _write_model(clf: Classifier, fmt: str, quantize: str | None, folder: Path) -> dict[str, Any]:
    dest = folder / MODEL_FILE[fmt]
    if fmt == "saved_model":
        top_k = min(TOP_K, clf.num_classes)
        return {"top_k": top_k, **_write_saved_model(clf, dest, folder / LABELS_FILE, top_k)}
    if fmt == "tflite":
        return _write_tflite(clf.model, clf.input_shape, dest, quantize)
    return _write_onnx(clf.model, clf.input_shape, dest, clf.class_names)


def _keras_file(path: Path) -> Path:
    from .predict import resolve_model

    return resolve_model(path)[1]


def _check_batch(clf: Classifier, check: Any, strict: bool) -> tuple[np.ndarray, list[bytes] | None]:
    """The preprocessed check images and, when every one came from a file, the files' bytes."""
    if callable(check):
        return check(clf.input_shape), None
    if isinstance(check, np.ndarray) and check.ndim == 4 and check.shape[1:] == clf.input_shape \
            and check.dtype == np.uint8:
        return check, None
    from .predict import ImageDecodeError, expand_inputs

    items, _ = expand_inputs(check)
    arrays, files = [], []
    for item in items:
        try:
            arrays.append(clf.preprocess(item))
        except ImageDecodeError:
            if strict:
                raise
            continue  # unreadable check images are simply not compared
        files.append(Path(item).read_bytes() if isinstance(item, (str, os.PathLike)) else None)
    if not arrays:
        raise ConfigError("no readable images to check the export on")
    return np.stack(arrays), (files if all(f is not None for f in files) else None)


def _check(clf: Classifier, folder: Path, check: Any, labels: np.ndarray | None) -> dict[str, Any]:
    batch, files = _check_batch(clf, check, strict=labels is not None)  # labels must stay aligned
    exported = load_classifier(folder)
    reference = _chunked(clf.predict_proba, batch)
    out = compare_outputs(reference, _chunked(exported.predict_proba, batch), labels)
    if files and exported.kind == "saved_model" and BYTES_SIGNATURE in exported.info.get("signatures", {}) \
            and exported.info.get("image_bytes_signature", {}).get("available"):
        out["image_bytes"] = _check_bytes(folder / MODEL_FILE["saved_model"], files, batch, reference, labels)
    return out


def _chunked(fn, batch, size: int = 256) -> np.ndarray:
    return np.concatenate([fn(batch[i:i + size]) for i in range(0, len(batch), size)])


def _check_bytes(saved_model: Path, files: list[bytes], batch: np.ndarray, reference: np.ndarray,
                 labels: np.ndarray | None) -> dict[str, Any]:
    """The image-bytes signature on the original files against Keras on the predict pipeline's pixels."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    serve, prep = loaded.signatures[BYTES_SIGNATURE], loaded.signatures[PREPROCESS_SIGNATURE]
    chunks = [files[i:i + 64] for i in range(0, len(files), 64)]
    probs = np.concatenate([serve(image_bytes=tf.constant(c))["probabilities"].numpy() for c in chunks])
    pixels = np.concatenate([prep(image_bytes=tf.constant(c))["image"].numpy() for c in chunks])
    out = compare_outputs(reference, probs, labels)
    out["pixels_max_diff"] = int(np.max(np.abs(pixels.astype(np.int16) - batch.astype(np.int16))))
    return out


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
