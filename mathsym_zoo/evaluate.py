"""Evaluate a saved model on a side of a Dataset: scores, confusion, speed.

A model is a ``.keras`` file, or a run folder holding ``best.keras`` and
``run.json`` (which names the model's classes). Its input is the cached uint8
image as float 0-255 and its output a softmax over its classes (see
docs/ARCHITECTURE.md). Dataset labels the model doesn't know are counted,
reported and left out of the scores.

Speed is measured through compiled calls (``tf.function`` around
``model(x, training=False)`` with a fixed input signature): batch images/s
over the evaluated side, and single-image latency p50/p95 over repeated calls.
``model.predict`` per image would measure Keras' per-call overhead instead.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import metrics as M
from .fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, json_default  # noqa: F401 (re-exported)
from .errors import ConfigError, DataError

SIDES = ("test", "val", "all")


_json_default = json_default


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read JSON ({exc}); delete the file or the folder and run again") from None


# -- loading a model -----------------------------------------------------------


@dataclasses.dataclass
class LoadedModel:
    """A Keras model with what its run folder says about it."""

    model: Any  # keras.Model
    path: Path  # the .keras file
    run_dir: Path | None
    run: dict[str, Any]  # run.json, {} when there is none
    class_names: tuple[str, ...] | None  # None when no run.json names them

    @property
    def name(self) -> str:
        entry = self.run.get("model")
        if isinstance(entry, dict) and entry.get("name"):
            return str(entry["name"])
        if isinstance(self.run.get("model_name"), str):
            return self.run["model_name"]
        return self.run_dir.name if self.run_dir else self.path.stem

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.model.input_shape[1:])

    @property
    def num_outputs(self) -> int:
        return int(self.model.output_shape[-1])


def resolve_model_path(path: str | Path) -> tuple[Path, Path | None]:
    """``(model file, run folder or None)`` for a run folder or a ``.keras`` file."""
    from .predict import resolve_model

    path = Path(path).expanduser()
    kind, model_path, meta_path = resolve_model(path, require_metadata=False)
    if kind != "keras":
        raise ConfigError(f"{path}: a {kind} export is not evaluated here; pass the run folder or the .keras "
                          "file it was exported from")
    run_dir = meta_path.parent if meta_path is not None and meta_path.name == "run.json" else None
    return model_path, run_dir


def load_model(path: str | Path) -> LoadedModel:
    """Load a run folder's ``best.keras`` (or a ``.keras`` file) with ``safe_mode=True``."""
    model_path, run_dir = resolve_model_path(path)
    run: dict[str, Any] = {}
    sidecar = model_path.with_suffix(".json")  # <stem>.json beside a bare file, as predict reads it
    if run_dir is not None and (run_dir / "run.json").is_file():
        run = read_json(run_dir / "run.json")
    elif sidecar.is_file():
        run = read_json(sidecar)
    import keras

    try:
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except Exception as exc:
        raise DataError(f"{model_path}: cannot load the model ({type(exc).__name__}: {exc}). Models load with "
                        "safe_mode=True: a model with custom Python code needs its plugin installed") from None
    names = run.get("class_names")
    class_names = tuple(str(n) for n in names) if isinstance(names, list) else None
    loaded = LoadedModel(model, model_path, run_dir, run, class_names)
    if class_names is not None and len(class_names) != loaded.num_outputs:
        raise DataError(f"{run_dir / 'run.json'}: names {len(class_names)} classes but the model has "
                        f"{loaded.num_outputs} outputs; the run folder is inconsistent")
    return loaded


# -- inference -----------------------------------------------------------------


class CompiledModel:
    """``model(x, training=False)`` behind two traced ``tf.function``s: one for
    batches (``[None, H, W, C]``) and one for single images (``[1, H, W, C]``)."""

    def __init__(self, model) -> None:
        import tensorflow as tf

        self.model = model
        shape = tuple(int(d) for d in model.input_shape[1:])
        def call(x):  # a def, not a lambda: AutoGraph cannot parse lambdas and warns
            return tf.cast(model(x, training=False), tf.float32)

        self.batch = tf.function(call, input_signature=[tf.TensorSpec((None, *shape), tf.float32)], jit_compile=False)
        self.single = tf.function(call, input_signature=[tf.TensorSpec((1, *shape), tf.float32)], jit_compile=False)

    def predict(self, images: np.ndarray, rows: np.ndarray | None = None,
                batch_size: int = 256) -> tuple[np.ndarray, float]:
        """Probabilities ``(N, C)`` float32 of ``images[rows]`` (all rows when None)
        and batch throughput in images/s, timed after a warm-up call that traces
        the function. Rows are gathered per batch, so a memory map stays on disk."""
        rows = np.arange(images.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        n = rows.shape[0]
        if n == 0:
            return np.zeros((0, int(self.model.output_shape[-1])), np.float32), float("nan")
        batch = lambda lo: np.asarray(images[rows[lo:lo + batch_size]], dtype=np.float32)  # noqa: E731
        first = batch(0)
        self.batch(first)  # trace + warm up; not timed
        out = []
        start = time.perf_counter()
        for lo in range(0, n, batch_size):
            out.append(self.batch(first if lo == 0 else batch(lo)).numpy())
        elapsed = time.perf_counter() - start
        return np.concatenate(out), (n / elapsed if elapsed > 0 else float("nan"))

    def latency(self, images: np.ndarray, *, repeats: int = 50, warmup: int = 5) -> dict[str, float]:
        """Single-image latency in ms (p50, p95) over ``repeats`` compiled calls."""
        if images.shape[0] == 0:
            return {"latency_ms_p50": float("nan"), "latency_ms_p95": float("nan")}
        xs = [np.asarray(images[i % images.shape[0]][None], dtype=np.float32) for i in range(min(repeats, 64))]
        for i in range(warmup):
            self.single(xs[i % len(xs)]).numpy()
        times = []
        for i in range(repeats):
            x = xs[i % len(xs)]
            t0 = time.perf_counter()
            self.single(x).numpy()
            times.append((time.perf_counter() - t0) * 1000.0)
        p50, p95 = np.percentile(times, [50, 95])
        return {"latency_ms_p50": float(p50), "latency_ms_p95": float(p95)}


# -- evaluation ----------------------------------------------------------------


@dataclasses.dataclass
class Evaluation:
    """Scores of one model on one side of one dataset.

    ``indices`` are the dataset rows scored (labels the model knows);
    ``y_true`` and ``probs`` are in the model's class space.
    """

    model_name: str
    side: str
    class_names: tuple[str, ...]
    indices: np.ndarray
    y_true: np.ndarray
    probs: np.ndarray
    missing: dict[str, int]  # dataset label -> images left out, for labels the model lacks
    metrics: dict[str, Any]
    timing: dict[str, float]
    source: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    model_stats: dict[str, Any] = dataclasses.field(default_factory=dict)  # params, MACs, FLOPs

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, np.int64)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1) if len(self.probs) else np.zeros(0, np.float32)

    @property
    def correct(self) -> np.ndarray:
        return self.y_pred == self.y_true

    def summary(self) -> dict[str, Any]:
        """The leaderboard scores (no per-class or confusion detail)."""
        m = self.metrics
        return {"n": m["n"], "top1": m["top1"], "top5": m.get("top5"), "macro_f1": m["macro_f1"],
                "balanced_accuracy": m["balanced_accuracy"], "top1_ci95_low": m["top1_ci95"][0],
                "top1_ci95_high": m["top1_ci95"][1], **self.timing,
                "missing_images": int(sum(self.missing.values()))}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "side": self.side, "class_names": list(self.class_names),
                "missing_labels": self.missing, "metrics": self.metrics, "timing": self.timing,
                "source": self.source, "notes": self.notes, "model_stats": self.model_stats}

    def save(self, folder: Path) -> None:
        """``evaluation.json`` and ``predictions.npz`` (plain arrays, no pickle)."""
        import io

        folder = Path(folder)
        buf = io.BytesIO()
        np.savez_compressed(buf, indices=self.indices.astype(np.int64), y_true=self.y_true.astype(np.int32),
                            probs=self.probs.astype(np.float32))
        atomic_write_bytes(folder / "predictions.npz", buf.getvalue())
        atomic_write_json(folder / "evaluation.json", self.to_dict())

    @classmethod
    def load(cls, folder: Path) -> "Evaluation":
        folder = Path(folder)
        info = read_json(folder / "evaluation.json")
        with np.load(folder / "predictions.npz", allow_pickle=False) as z:
            indices, y_true, probs = z["indices"], z["y_true"], z["probs"]
        return cls(info["model"], info["side"], tuple(info["class_names"]), indices, y_true, probs,
                   dict(info.get("missing_labels", {})), info["metrics"], info["timing"], info.get("source", {}),
                   list(info.get("notes", [])), dict(info.get("model_stats", {})))


def side_indices(dataset, side: str, split_config=None, split=None) -> np.ndarray:
    """Dataset rows of ``side``: ``all``, or ``test``/``val`` of the persisted split."""
    if side not in SIDES:
        raise ConfigError(f"--side {side!r}: expected one of {', '.join(SIDES)}")
    if side == "all":
        return np.arange(len(dataset))
    if split is None:
        from .data.split import load_split

        split = load_split(dataset, split_config)
    return np.asarray(split.indices[side], dtype=np.int64)


def map_labels(dataset_classes: Sequence[str], model_classes: Sequence[str], labels: np.ndarray):
    """Dataset labels in the model's class space: ``(mapped, known mask, missing name -> count)``."""
    lookup = {name: i for i, name in enumerate(model_classes)}
    table = np.array([lookup.get(name, -1) for name in dataset_classes], dtype=np.int64)
    mapped = table[np.asarray(labels, dtype=np.int64)] if len(labels) else np.zeros(0, np.int64)
    known = mapped >= 0
    missing: dict[str, int] = {}
    if not known.all():
        names, counts = np.unique(np.asarray(labels)[~known], return_counts=True)
        missing = {str(dataset_classes[int(i)]): int(c) for i, c in zip(names, counts)}
    return mapped, known, missing


def evaluate_model(loaded: LoadedModel, dataset, indices: np.ndarray, *, side: str = "test",
                   batch_size: int = 256, latency_repeats: int = 50, name: str | None = None) -> Evaluation:
    """Score ``loaded`` on ``dataset`` rows ``indices`` and time its inference."""
    notes: list[str] = []
    class_names = loaded.class_names
    if class_names is None:
        if loaded.num_outputs != dataset.num_classes:
            raise DataError(f"{loaded.path}: no run.json beside the model names its classes, and its "
                            f"{loaded.num_outputs} outputs don't match the dataset's {dataset.num_classes} classes; "
                            "evaluate the run folder instead of the bare .keras file")
        class_names = tuple(dataset.class_names)
        notes.append("no run.json names the model's classes; assumed the dataset's (same count)")
    if tuple(loaded.input_shape) != tuple(dataset.input_shape):
        raise DataError(f"{loaded.path}: the model takes images of shape {loaded.input_shape} but the dataset's "
                        f"are {dataset.input_shape}; evaluate with the same offline preprocessing the model was "
                        "trained with (the registry's [[preprocessing]] steps)")
    indices = np.asarray(indices, dtype=np.int64)
    mapped, known, missing = map_labels(dataset.class_names, class_names, dataset.labels[indices])
    if missing:
        n_labels = len(missing)
        notes.append(f"{sum(missing.values())} images of {n_labels} label{'s' if n_labels > 1 else ''} the model "
                     f"doesn't know were left out of the scores: {', '.join(sorted(missing))}")
    indices, y_true = indices[known], mapped[known]
    # Sorted rows read a memory map sequentially; the order is restored below.
    order = np.argsort(indices, kind="stable")
    compiled = CompiledModel(loaded.model)
    probs_sorted, images_per_s = compiled.predict(dataset.images, indices[order], batch_size)
    probs = np.empty_like(probs_sorted)
    probs[order] = probs_sorted
    sample = np.asarray(dataset.images[np.sort(indices[:64])]) if len(indices) else np.zeros((0, *dataset.input_shape), np.uint8)
    timing = {"batch_images_per_s": images_per_s, **compiled.latency(sample, repeats=latency_repeats)}
    scores = M.summarize(y_true, probs, class_names)
    return Evaluation(name or loaded.name, side, tuple(class_names), indices, y_true, probs, missing, scores,
                      timing, dict(getattr(dataset, "source", {}) or {}), notes, model_stats(loaded.model))


def evaluate(job, model_path: str | Path, *, side: str = "test", out_dir: str | Path | None = None,
             progress: bool = True, report: bool = True) -> tuple[Evaluation, Path]:
    """Evaluate a run folder or ``.keras`` file on ``job``'s source; write
    ``evaluation.json``, ``predictions.npz`` and (``report``) ``report.html``.

    The default output folder is ``<run>/evaluations/<source>-<side>/`` (or
    ``<model file stem>-eval-<source>-<side>/`` beside a bare ``.keras`` file).
    """
    from .data.cache import load_dataset

    loaded = load_model(model_path)
    dataset = load_dataset(job, progress=progress)
    indices = side_indices(dataset, side, job.split)
    evaluation = evaluate_model(loaded, dataset, indices, side=side)
    trained_on = loaded.run.get("source") if isinstance(loaded.run.get("source"), dict) else {}
    if side == "all" and trained_on and trained_on.get("fingerprint") and \
            trained_on.get("fingerprint") == (dataset.source or {}).get("fingerprint"):
        evaluation.notes.append("side 'all' of the training source includes the training images; the scores are optimistic")
    trained_steps = loaded.run.get("preprocessing")
    if isinstance(trained_steps, list) and json.dumps(trained_steps, sort_keys=True) != \
            json.dumps(list(dataset.preprocessing or []), sort_keys=True, default=str):
        evaluation.notes.append("the offline preprocessing differs from the model's run.json; the images may not "
                                "look like those it was trained on")
    if out_dir is None:
        tag = f"{job.source.name}-{side}"
        out_dir = (loaded.run_dir / "evaluations" / tag) if loaded.run_dir else \
            loaded.path.parent / f"{loaded.path.stem}-eval-{tag}"
    out_dir = Path(out_dir)
    evaluation.save(out_dir)
    if report:
        from .report import write_evaluation_report

        write_evaluation_report(out_dir / "report.html", evaluation, dataset, run_dir=loaded.run_dir)
    return evaluation, out_dir


def model_stats(model) -> dict[str, Any]:
    """Parameters, and multiply-adds per image (FLOPs = 2 x MACs) when
    ``mathsym_zoo.modelinfo`` can count them; missing values are None."""
    out: dict[str, Any] = {"params": None, "macs": None, "flops": None}
    try:
        out["params"] = int(model.count_params())
    except Exception:  # an unbuilt model
        pass
    try:
        from .modelinfo import count_macs

        macs = count_macs(model)
        out["macs"] = int(macs["macs"])
        out["flops"] = 2 * int(macs["macs"])
        if macs.get("uncounted_layers"):
            out["uncounted_layers"] = list(macs["uncounted_layers"])
    except Exception:  # no modelinfo, or a model it can't walk (subclassed)
        pass
    return out
