"""Evaluate a run's model on a side of a Dataset: scores, confusion, speed.

A run (see :mod:`mathsym_zoo.runs`) is evaluated on its own recorded source and
split by default: the split hash is checked and written into
``evaluation.json``, so "test" always means images the run never trained on.
Another source can be named; the result then says so. Dataset labels the model
doesn't know are counted, reported and left out of the scores. Speed is measured
through :class:`mathsym_zoo.inference.CompiledModel`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import metrics as M
from .errors import ConfigError, DataError
from .fileio import atomic_write_bytes, atomic_write_json, read_json
from .runs import Run

SIDES = ("test", "val", "all")
OTHER_SOURCE = "a different source from training"


# -- loading a model -----------------------------------------------------------


@dataclasses.dataclass
class LoadedModel:
    """A Keras model with the run it belongs to."""

    model: Any  # keras.Model
    run: Run

    @property
    def path(self) -> Path:
        return self.run.model_path

    @property
    def name(self) -> str:
        return self.run.model_name

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.run.class_names

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.model.input_shape[1:])

    @property
    def num_outputs(self) -> int:
        return int(self.model.output_shape[-1])


def load_model(path: str | Path | Run) -> LoadedModel:
    """A run folder's ``best.keras`` (or a ``.keras`` file), loaded with ``safe_mode=True``."""
    run = path if isinstance(path, Run) else Run.open(path, require_record=False)
    loaded = LoadedModel(run.load_model(), run)
    names = loaded.class_names
    if names is not None and len(names) != loaded.num_outputs:
        raise DataError(f"{run.record_path}: names {len(names)} classes but the model has {loaded.num_outputs} "
                        "outputs; the run folder is inconsistent")
    return loaded


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
    split_hash: str | None = None  # the split the side was taken from (None for side "all")
    training_source: bool | None = None  # scored on the source the run was trained on (None: unknown)
    dataset: Any = dataclasses.field(default=None, repr=False, compare=False)  # in memory only, for the report

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
                "top1_ci95_high": m["top1_ci95"][1], "nll": m.get("nll"), "ece": m.get("ece"),
                "num_classes": len(self.class_names), **self.timing,
                "missing_images": int(sum(self.missing.values()))}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "side": self.side, "class_names": list(self.class_names),
                "missing_labels": self.missing, "metrics": self.metrics, "timing": self.timing,
                "source": self.source, "notes": self.notes, "model_stats": self.model_stats,
                "split_hash": self.split_hash, "training_source": self.training_source}

    @staticmethod
    def exists(folder: Path) -> bool:
        return (Path(folder) / "evaluation.json").is_file() and (Path(folder) / "predictions.npz").is_file()

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
                   list(info.get("notes", [])), dict(info.get("model_stats", {})), info.get("split_hash"),
                   info.get("training_source"))


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
                   batch_size: int = 256, latency_repeats: int = 50, name: str | None = None,
                   tta: int = 1) -> Evaluation:
    """Score ``loaded`` on ``dataset`` rows ``indices`` and time its inference; ``tta`` > 1 averages
    over that many test-time variants of each image (:mod:`mathsym_zoo.tta`)."""
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
    if len(indices) == 0 and len(known):
        raise DataError(f"none of the {len(known)} images has a label the model knows (dataset labels: "
                        f"{', '.join(sorted(missing)[:8])}{', ...' if len(missing) > 8 else ''}; the model's: "
                        f"{', '.join(class_names[:8])}{', ...' if len(class_names) > 8 else ''}); evaluate on a "
                        "source with the model's classes")
    # Sorted rows read a memory map sequentially; the order is restored below.
    order = np.argsort(indices, kind="stable")
    from .inference import CompiledModel

    compiled = CompiledModel(loaded.model, tta=tta)
    probs_sorted, images_per_s = compiled.predict(dataset.images, indices[order], batch_size)
    probs = np.empty_like(probs_sorted)
    probs[order] = probs_sorted
    sample = np.asarray(dataset.images[np.sort(indices[:64])]) if len(indices) else np.zeros((0, *dataset.input_shape), np.uint8)
    timing = {"batch_images_per_s": images_per_s, **compiled.latency(sample, repeats=latency_repeats)}
    scores = M.summarize(y_true, probs, class_names)
    if tta > 1:  # scores and timings are of the averaged prediction
        scores["tta"] = tta
        notes.append(f"test-time augmentation: probabilities averaged over {tta} variants of each image")
    return Evaluation(name or loaded.name, side, tuple(class_names), indices, y_true, probs, missing, scores,
                      timing, dict(getattr(dataset, "source", {}) or {}), notes, model_stats(loaded.model))


def _same_data(run: Run, dataset) -> bool:
    return bool(run.dataset_key) and run.dataset_key == dataset.key


def _rows(run: Run, job, dataset, side: str, own: bool, notes: list[str]) -> tuple[np.ndarray, str | None, bool | None]:
    """``(dataset rows, split hash, training source?)`` for ``side`` of ``dataset``."""
    from .data.split import load_split

    same = True if own else (_same_data(run, dataset) if run.dataset_key else None)
    if side == "all":
        if same:
            notes.append("side 'all' of the training source includes the training images; the scores are optimistic")
        return np.arange(len(dataset)), None, same
    if same and side in run.fit_sides:
        raise ConfigError(f"{run.path}: its model was trained on the {side} side too (train.train_on_val), so "
                          f"scores there would not be held out; evaluate it with --side test")
    if same:
        # The run's own data: its recorded split, checked by hash, whatever today's registry says.
        recorded = job if own else run.job(plugins=job.plugins)
        _, split = run.training_data(recorded, dataset=dataset if own else None)
        return np.asarray(split.indices[side], dtype=np.int64), split.hash, True
    split = load_split(dataset, job.split)
    notes.append(f"{OTHER_SOURCE}: scored on the {side} side of that source's own split ({split.hash[:12]})")
    return np.asarray(split.indices[side], dtype=np.int64), split.hash, same


def evaluate(run_path: str | Path | Run, *, job=None, side: str = "test", out_dir: str | Path | None = None,
             progress: bool = False, tta: int = 1) -> tuple[Evaluation, Path]:
    """Evaluate a run (folder or ``.keras`` file) and save ``evaluation.json`` and ``predictions.npz``.

    ``job=None``: the run's own recorded source and split (the split hash is
    checked). A ``job`` names another source; the evaluation says so. The
    default output folder is :meth:`Run.evaluation_dir`.
    """
    from .data.cache import load_dataset

    if side not in SIDES:
        raise ConfigError(f"--side {side!r}: expected one of {', '.join(SIDES)}")
    loaded = load_model(run_path)
    run = loaded.run
    own = job is None
    job = job or run.job()
    dataset = load_dataset(job, progress=progress)
    notes: list[str] = []
    indices, split_hash, same = _rows(run, job, dataset, side, own, notes)
    evaluation = evaluate_model(loaded, dataset, indices, side=side, tta=tta)
    evaluation.notes = notes + evaluation.notes
    evaluation.split_hash, evaluation.training_source, evaluation.dataset = split_hash, same, dataset
    if json.dumps(run.preprocessing, sort_keys=True) != json.dumps(list(dataset.preprocessing or []), sort_keys=True,
                                                                     default=str) and run.preprocessing:
        evaluation.notes.append("the offline preprocessing differs from the model's run record; the images may not "
                                "look like those it was trained on")
    out = Path(out_dir) if out_dir is not None else run.evaluation_dir(job.source.name, side, tta=tta)
    evaluation.save(out)
    return evaluation, out


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
