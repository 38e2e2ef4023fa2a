"""Use a trained model on new images: ``load_classifier(path).predict(images)``.

A classifier applies exactly the run's offline preprocessing (rebuilt from
``run.json`` through the plugin system) and lets the model apply its online
steps and scaling: the model input is the preprocessed uint8 image. One image
costs a compiled call (``tf.function`` with a fixed input signature, warmed up
at load time), not ``model.predict``, so single-image latency is milliseconds.

``path`` may be a run folder (``run.json`` + ``best.keras``), a ``.keras`` file
with a ``run.json`` (or ``<stem>.json``) beside it, or a folder written by
:func:`mathsym_zoo.export.export` (SavedModel, TFLite or ONNX with ``model_info.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .components import is_offline
from .errors import ConfigError, DataError

__all__ = ["Classifier", "Prediction", "ImageDecodeError", "load_classifier", "expand_inputs",
           "decode_image", "IMAGE_EXTENSIONS"]

#: Files a folder contributes; other files in folders are skipped (and counted).
#: A file named explicitly is always tried, whatever its extension.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".pgm", ".ppm", ".pbm", ".pnm"})
INFO_FILE = "model_info.json"
LABELS_FILE = "labels.txt"


class ImageDecodeError(DataError):
    """One input could not be read as an image (the message is one line)."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Top-k labels for one input, best first; ``error`` is set instead when it failed."""

    source: str  # the file path, or "<array 3>" / "<image 0>" for in-memory inputs
    labels: tuple[str, ...] = ()
    probabilities: tuple[float, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str | None:
        return self.labels[0] if self.labels else None

    @property
    def probability(self) -> float | None:
        return self.probabilities[0] if self.probabilities else None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.source, "error": self.error}
        from .labels import latex_for

        return {"path": self.source, "labels": list(self.labels), "latex": [latex_for(lab) for lab in self.labels],
                "probabilities": list(self.probabilities)}


# -- inputs ----------------------------------------------------------------------


def expand_inputs(inputs: Any) -> tuple[list[Any], int]:
    """Flatten what :meth:`Classifier.predict` accepts into single images.

    Folders expand recursively (sorted, hidden files skipped) into their image
    files; a 4-D array becomes its images. Returns ``(items, skipped)`` where
    ``skipped`` counts non-image files found in folders.
    """
    if isinstance(inputs, (str, os.PathLike)) or _is_single(inputs):
        inputs = [inputs]
    items: list[Any] = []
    skipped = 0
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if path.is_dir():
                files, n_skipped = _folder_images(path)
                items.extend(files)
                skipped += n_skipped
            else:
                items.append(path)  # a missing file becomes a per-file error
        elif isinstance(item, np.ndarray) and item.ndim == 4:
            items.extend(item)
        else:
            items.append(item)
    return items, skipped


def _is_single(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Image.Image) or (isinstance(obj, np.ndarray) and obj.ndim in (2, 3, 4))


def _folder_images(folder: Path) -> tuple[list[Path], int]:
    files, skipped = [], 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                files.append(Path(root) / name)
            else:
                skipped += 1
    return files, skipped


def decode_image(path: str | os.PathLike):
    """A fully loaded PIL image (first frame), or :class:`ImageDecodeError` with one line."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageDecodeError("no such file") from None
    except OSError as exc:
        raise ImageDecodeError(f"cannot read: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ImageDecodeError("is a folder")
    if size == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy() if getattr(image, "n_frames", 1) > 1 else image
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"refused: {exc}") from None
    except PermissionError:
        raise ImageDecodeError("cannot read: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated and malformed data as OSError / SyntaxError.
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageDecodeError(f"corrupt or truncated image ({message})") from None


def _to_pil(item: Any):
    from PIL import Image

    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (str, os.PathLike)):
        return decode_image(item)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (0-255), got {item.dtype}; "
                            "convert with np.clip(x, 0, 255).astype(np.uint8)")
        if item.ndim == 3 and item.shape[-1] == 1:
            item = item[..., 0]
        if item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[-1] not in (3, 4)):
            raise TypeError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {item.shape}")
        return Image.fromarray(item)
    raise TypeError(f"cannot predict on {type(item).__name__}; pass a path, a PIL image or a uint8 array")


def _source_name(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    kind = "array" if isinstance(item, np.ndarray) else "image"
    return f"<{kind} {index}>"


def _model_array(image, channels: int) -> np.ndarray:
    """uint8 (H, W, C) as the decoded cache stores it (transparency becomes white paper),
    with its channels brought to the model's when a run's steps leave them differing."""
    from .data.cache import image_to_array  # the cache's own conversion: prediction sees what training saw

    array = image_to_array(image)
    if array.shape[2] == channels:
        return array
    if channels == 1:  # luma, as the grayscale step computes it
        from PIL import Image

        return np.asarray(Image.fromarray(array).convert("L"), np.uint8)[..., None]
    return np.repeat(array, channels, axis=2)


# -- model backends ----------------------------------------------------------------


def _saved_model_call(folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    # Exports since the image-bytes signature keep the uint8 batch signature under "serving_images";
    # older ones have it as "serving_default" with one output.
    fn = loaded.signatures.get("serving_images") or loaded.signatures["serving_default"]
    keys = list(fn.structured_outputs.keys())
    out_key = "probabilities" if "probabilities" in keys else keys[0]
    (in_key,) = fn.structured_input_signature[1].keys()

    def call(batch: np.ndarray) -> np.ndarray:
        return fn(**{in_key: tf.constant(batch)})[out_key].numpy()

    call(np.zeros((1, *fn.structured_input_signature[1][in_key].shape[1:]), np.uint8))
    call.keepalive = loaded  # the concrete function needs its object alive
    return call


def _onnx_call(file: Path) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"{str(file)!r} is an ONNX model; running it needs onnxruntime "
                          "(pip install 'mathsym-zoo[onnx]')") from None
    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    in_name = session.get_inputs()[0].name
    out_name = session.get_outputs()[0].name

    def call(batch: np.ndarray) -> np.ndarray:
        return session.run([out_name], {in_name: batch})[0]

    return call


def _tflite_call(file: Path) -> Callable[[np.ndarray], np.ndarray]:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT is not a dependency)
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(file))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    state = {"n": int(inp["shape"][0])}

    def call(batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != state["n"]:
            interpreter.resize_tensor_input(inp["index"], list(batch.shape))
            interpreter.allocate_tensors()
            state["n"] = batch.shape[0]
        interpreter.set_tensor(inp["index"], batch.astype(inp["dtype"], copy=False))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"]).copy()

    return call


# -- the classifier -------------------------------------------------------------


class Classifier:
    """A loaded model with its class names and offline preprocessing.

    Build it with :func:`load_classifier`. ``preprocess`` turns one image into
    the model input (uint8 ``input_shape``), ``predict_proba`` runs the model on
    such a batch, ``predict`` does both for paths, folders, PIL images or
    arrays and returns the top-k labels per input.
    """

    def __init__(self, call: Callable[[np.ndarray], np.ndarray], *, class_names: Sequence[str],
                 input_shape: Sequence[int], preprocessing: list[dict[str, Any]], steps: list[Any],
                 source: Path, kind: str, model: Any = None, info: dict[str, Any] | None = None) -> None:
        self._call = call
        self.class_names = tuple(class_names)
        self.input_shape: tuple[int, int, int] = tuple(int(d) for d in input_shape)  # type: ignore[assignment]
        self.preprocessing = preprocessing  # offline steps as resolved dicts, as in run.json
        self.steps = steps  # the built offline Preprocessor objects, in order
        self.source = source  # where it was loaded from
        self.kind = kind  # "keras", "saved_model", "tflite" or "onnx"
        self.model = model  # the Keras model (kind "keras" only)
        self.info = info or {}  # run.json or model_info.json

    def __repr__(self) -> str:
        return (f"Classifier({str(self.source)!r}, kind={self.kind!r}, classes={len(self.class_names)}, "
                f"input_shape={self.input_shape})")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def preprocess(self, image: Any) -> np.ndarray:
        """One image (path, PIL image or uint8 array) as the model input: uint8 (H, W, C)."""
        from .data.images import to_8bit

        pil = to_8bit(_to_pil(image))  # as ingest does before the steps: 8-bit, upright, first frame
        for step in self.steps:
            pil = step.apply(pil)
        h, w, c = self.input_shape
        if pil.size != (w, h):
            hint = ("the run's offline preprocessing has no resize step, so inputs must already be that size"
                    if not any(p["type"] == "resize_pad" for p in self.preprocessing) else
                    "the run's offline preprocessing does not produce the model's input size")
            raise ImageDecodeError(f"image is {pil.width}x{pil.height} after preprocessing, the model takes "
                                   f"{w}x{h}; {hint}")
        return _model_array(pil, c)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for preprocessed uint8 images (N, H, W, C) or one (H, W, C)."""
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.shape[1:] != self.input_shape:
            raise ValueError(f"expected preprocessed images of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {batch.shape}; use predict() for raw images")
        if batch.dtype != np.uint8:
            raise TypeError(f"preprocessed images must be uint8, got {batch.dtype}")
        return self._call(np.ascontiguousarray(batch))

    def _top(self, probs: np.ndarray, source: str, k: int) -> Prediction:
        order = np.argsort(-probs, kind="stable")[:k]
        return Prediction(source, tuple(self.class_names[i] for i in order), tuple(float(probs[i]) for i in order))

    def iter_predict(self, items: Iterable[Any], *, top_k: int = 5, batch_size: int = 64) -> Iterator[Prediction]:
        """Predictions for already expanded single images, in order, computed in batches.

        Inputs that cannot be decoded or preprocessed give a Prediction with
        ``error`` set; the rest continue.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        k = min(top_k, self.num_classes)
        pending: list[tuple[int, str, np.ndarray | None, str | None]] = []

        def flush():
            good = [p[2] for p in pending if p[2] is not None]
            probs = self.predict_proba(np.stack(good)) if good else None
            j = 0
            for _, name, array, error in pending:
                if array is None:
                    yield Prediction(name, error=error)
                else:
                    yield self._top(probs[j], name, k)
                    j += 1
            pending.clear()

        for index, item in enumerate(items):
            name = _source_name(item, index)
            try:
                pending.append((index, name, self.preprocess(item), None))
            except ImageDecodeError as exc:
                pending.append((index, name, None, str(exc)))
            if len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()

    def predict(self, images: Any, *, top_k: int = 5, batch_size: int = 64) -> list[Prediction]:
        """Top-k labels and probabilities for each image.

        ``images``: a path, a folder (recursive), a PIL image, a uint8 array
        (H, W[, C]) or a batch (N, H, W[, C]), or a list of these. Always returns
        a list, one Prediction per image; unreadable files carry ``error``.
        """
        items, _ = expand_inputs(images)
        return list(self.iter_predict(items, top_k=top_k, batch_size=batch_size))


# -- loading --------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{str(path)!r} is not valid JSON ({exc}); it should be written by training or export") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} should hold a JSON object")
    return data


def build_offline_steps(preprocessing: list[dict[str, Any]], plugins=None) -> list[Any]:
    """Rebuild offline preprocessors from resolved dicts, through the plugin system."""
    from pydantic import ValidationError

    from .components import call_factory
    from .plugins import PluginSet

    steps = []
    for i, entry in enumerate(preprocessing):
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"preprocessing[{i}] in the run metadata is not a resolved step: {entry!r}")
        plugins = plugins or PluginSet()
        where = f"preprocessing[{i}] (plugin {entry.get('plugin', '?')!r})"
        component = plugins.get("preprocessor", entry["type"], where=where)
        try:
            params = component.params(**entry.get("params", {}))
        except ValidationError as exc:
            raise ConfigError(f"{where}: parameters recorded in the run no longer validate: "
                              f"{exc.errors(include_url=False)[0]['msg']}") from None
        step = call_factory(component, params)
        if is_offline(step):
            steps.append(step)  # online steps are layers inside the model
    return steps


def resolve_model(path: Path, *, require_metadata: bool = True) -> tuple[str, Path, Path | None]:
    """(kind, model path, metadata path) for a run folder, .keras file or export folder.

    Runs and ``.keras`` files are opened by :class:`mathsym_zoo.runs.Run`; export
    folders (``model_info.json``) are recognised here."""
    from .runs import Run

    path = Path(path).expanduser()
    if path.is_file() and path.suffix in (".tflite", ".onnx") and (path.parent / INFO_FILE).is_file():
        return path.suffix[1:], path, path.parent / INFO_FILE
    if path.is_dir() and (path / INFO_FILE).is_file():
        info = _read_json(path / INFO_FILE)
        fmt, name = info.get("format"), info.get("file")
        if fmt not in ("saved_model", "tflite", "onnx") or not isinstance(name, str):
            raise ConfigError(f"{str(path / INFO_FILE)!r}: unknown export format {fmt!r}")
        return fmt, path / name, path / INFO_FILE
    if path.is_dir() and not Run.is_run(path):
        raise ConfigError(f"{str(path)!r} is neither a run folder nor an export folder ({INFO_FILE}); "
                          "`mathsym-zoo runs` lists the runs")
    run = Run.open(path, require_record=require_metadata)
    return "keras", run.model_path, run.record_path


def _metadata(meta: dict[str, Any], meta_path: Path) -> tuple[list[str], list[dict], tuple[int, ...] | None]:
    names = meta.get("class_names")
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{str(meta_path)!r} has no class_names; it should be written by training or export")
    pre = meta.get("preprocessing", [])
    shape = meta.get("input_shape") or (meta.get("input") or {}).get("shape")
    if shape is not None:
        shape = tuple(int(d) for d in shape[-3:])
    return [str(n) for n in names], list(pre), shape


def load_classifier(path: str | os.PathLike, *, plugins=None, warm_batch: int = 64, tta: int = 1) -> Classifier:
    """Load a run folder, a ``.keras`` file with its sidecar, or an export folder.

    The Keras model is loaded with ``safe_mode=True``; its call is compiled and
    warmed up for batches of 1 and ``warm_batch``. ``tta`` > 1 averages each
    prediction over that many test-time variants (:mod:`mathsym_zoo.tta`; Keras models only).
    """
    kind, model_path, meta_path = resolve_model(Path(path))
    if tta != 1 and kind != "keras":
        raise ConfigError(f"--tta {tta}: test-time augmentation runs on a run folder or .keras file; "
                          f"{str(path)!r} is a {kind} export (it holds the plain model)")
    meta = _read_json(meta_path)
    class_names, preprocessing, shape = _metadata(meta, meta_path)
    from .plugins import PluginSet

    plugins = plugins or PluginSet()
    steps = build_offline_steps(preprocessing, plugins)
    model = None
    if kind == "keras":
        from .inference import CompiledModel
        from .runs import load_keras_model

        model = load_keras_model(model_path, plugins)  # registers the plugins' custom Keras classes
        model_shape = tuple(int(d) for d in model.input_shape[1:])
        if shape is not None and tuple(shape) != model_shape:
            raise ConfigError(f"{str(meta_path)!r} says input_shape {list(shape)} but the model takes {list(model_shape)}")
        shape = model_shape
        outputs = int(model.output_shape[-1])
        if outputs != len(class_names):
            raise ConfigError(f"the model has {outputs} outputs but {str(meta_path)!r} lists {len(class_names)} class names")
        call = CompiledModel(model, tta=tta).warm(1, warm_batch)
    elif kind == "saved_model":
        call = _saved_model_call(model_path)
    elif kind == "onnx":
        call = _onnx_call(model_path)
    else:
        call = _tflite_call(model_path)
    if shape is None or len(shape) != 3:
        raise ConfigError(f"{str(meta_path)!r} has no input_shape (H, W, C)")
    return Classifier(call, class_names=class_names, input_shape=shape, preprocessing=preprocessing, steps=steps,
                      source=Path(path), kind=kind, model=model, info=meta)
