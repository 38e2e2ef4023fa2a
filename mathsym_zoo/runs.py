"""The run folder: the one module that knows its layout, reads it and writes it.

A run is a trained model plus everything it was made with::

    <runs_dir>/<model>-<YYYYmmdd-HHMMSS>/
      run.json          format version, resolved job, model entry, source identity, dataset key,
                        split hash/config/sizes, class names, offline preprocessing, input shape,
                        determinism, devices, versions, git revision, parent run, status
      history.csv       one row per completed epoch
      metrics.json      final scores (val/test), training time, images/s
      best.keras        best validation checkpoint (input: the cached uint8 image as float 0-255)
      last.keras        last completed epoch
      state/            resume state: state.json (the commit point) + epoch-<k>.keras
      tb/               TensorBoard logs (train/, validation/)
      MODEL_CARD.md     the model card (mathsym_zoo.model_card); model_card.json holds the same fields
      evaluations/<source>-<side>/   evaluation.json, predictions.npz, report.html

Every other module asks a :class:`Run` for these files; none spells their names.
A bare ``.keras`` file opens as a run too, with ``<stem>.json`` or ``run.json``
beside it as its record when there is one.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import ConfigError, DataError
from .fileio import atomic_copy, atomic_write_json, atomic_write_text, read_json

RUN_FORMAT = 2
RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
BEST_FILE = "best.keras"
LAST_FILE = "last.keras"
STATE_DIR = "state"
STATE_FILE = "state.json"
TB_DIR = "tb"
EVALUATIONS_DIR = "evaluations"
#: The record of a comparison folder (written by :mod:`mathsym_zoo.compare`); named here so that
#: code which only recognises comparison folders need not import the comparison engine.
COMPARISON_FILE = "comparison.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
MODEL_CARD_JSON = "model_card.json"
CHECKPOINTS = (BEST_FILE, LAST_FILE)
FINISHED = ("completed", "early-stopped")
HISTORY_FIELDS_FIRST = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
                        "images_per_second")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def new_run_path(runs_dir: Path, model_name: str) -> Path:
    """``<runs_dir>/<model>-<time>``, with a counter when that name is taken."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(runs_dir) / f"{model_name}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


@dataclasses.dataclass
class Run:
    """A run folder (or a bare ``.keras`` file) and what its record says."""

    path: Path  # the run folder, or the folder holding a bare .keras file
    model_file: Path | None = None  # set for a bare .keras file
    _info: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, *, require_record: bool = True) -> "Run":
        """A run folder or a ``.keras`` file; the folder must hold ``run.json``."""
        path = Path(path).expanduser()
        if not path.exists():
            raise ConfigError(f"{str(path)!r} not found; pass a run folder (`mathsym-zoo runs` lists them) "
                              "or a .keras file")
        if path.is_file():
            if path.suffix != ".keras":
                raise ConfigError(f"{str(path)!r} is not a run: pass a run folder or a .keras file")
            run = cls(path.parent, model_file=path)
            if require_record and run.record_path is None:
                raise ConfigError(f"{str(path)!r} has no metadata beside it: expected {path.with_suffix('.json').name} "
                                  f"or {RUN_FILE} in the same folder (class names and preprocessing come from there); "
                                  "pass the run folder instead")
            return run
        if not (path / RUN_FILE).is_file():
            raise ConfigError(f"{str(path)!r} is not a run folder (no {RUN_FILE}); pass the folder `train` printed "
                              "(`mathsym-zoo runs` lists them)")
        return cls(path)

    @classmethod
    def create(cls, path: Path, info: dict[str, Any]) -> "Run":
        """Start a run folder with its record (``status`` set by the caller)."""
        path = Path(path)
        if (path / RUN_FILE).exists():
            raise ConfigError(f"{path} already holds a run; continue it with --resume {path} or pick a new folder")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.write_info({"format": RUN_FORMAT, "created": _now(), **info})
        return run

    @staticmethod
    def is_run(path: Path) -> bool:
        return (Path(path) / RUN_FILE).is_file()

    # -- the record (run.json) ---------------------------------------------------

    @property
    def is_file_only(self) -> bool:
        return self.model_file is not None

    @property
    def record_path(self) -> Path | None:
        if self.model_file is None:
            return self.path / RUN_FILE
        for candidate in (self.model_file.with_suffix(".json"), self.path / RUN_FILE):
            if candidate.is_file():
                return candidate
        return None

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            rec = self.record_path
            self._info = read_json(rec) if rec is not None and rec.is_file() else {}
            fmt = self._info.get("format")
            if isinstance(fmt, int) and fmt > RUN_FORMAT:
                raise DataError(f"{rec}: run format {fmt} is newer than this mathsym-zoo understands "
                                f"({RUN_FORMAT}); upgrade mathsym-zoo")
        return self._info

    def write_info(self, info: dict[str, Any]) -> None:
        self._info = dict(info)
        atomic_write_json(self.path / RUN_FILE, self._info)

    def update_info(self, **fields: Any) -> None:
        self.write_info({**self.info, **fields})

    @property
    def status(self) -> str:
        return str(self.info.get("status", "unknown"))

    @property
    def finished(self) -> bool:
        return self.status in FINISHED and self.model_path_or_none() is not None

    def set_status(self, status: str, reason: str | None = None) -> None:
        info = {**self.info, "status": status}
        info.pop("pid", None)
        if reason:
            info["failure"] = reason
        if status in FINISHED:
            info["finished"] = _now()
        self.write_info(info)

    @property
    def model_name(self) -> str:
        entry = self.info.get("model")
        if isinstance(entry, dict) and entry.get("name"):
            return str(entry["name"])
        if isinstance(self.info.get("model_name"), str):
            return self.info["model_name"]
        return self.model_file.stem if self.model_file else self.path.name

    @property
    def architecture(self) -> str | None:
        entry = self.info.get("model")
        return str(entry.get("type")) if isinstance(entry, dict) and entry.get("type") else None

    @property
    def class_names(self) -> tuple[str, ...] | None:
        names = self.info.get("class_names")
        return tuple(str(n) for n in names) if isinstance(names, list) and names else None

    @property
    def preprocessing(self) -> list[dict[str, Any]]:
        steps = self.info.get("preprocessing")
        return list(steps) if isinstance(steps, list) else []

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        shape = self.info.get("input_shape")
        return tuple(int(d) for d in shape) if isinstance(shape, list) else None

    @property
    def split_hash(self) -> str | None:
        split = self.info.get("split")
        return split.get("hash") if isinstance(split, dict) else None

    @property
    def fit_sides(self) -> tuple[str, ...]:
        """The split sides the model was fitted on: ``("train",)``, or ``("train", "val")`` after
        ``train.train_on_val`` (an ensemble records its members' union)."""
        recorded = self.info.get("fit_sides")
        if isinstance(recorded, list) and recorded:
            return tuple(str(side) for side in recorded)
        train = (self.info.get("job") or {}).get("train") or {}
        return ("train", "val") if train.get("train_on_val") else ("train",)

    @property
    def source(self) -> dict[str, Any]:
        src = self.info.get("source")
        return dict(src) if isinstance(src, dict) else {}

    @property
    def source_name(self) -> str | None:
        return (self.info.get("job") or {}).get("source", {}).get("name")

    @property
    def dataset_key(self) -> str | None:
        return self.info.get("dataset_key")

    # -- checkpoints and model ---------------------------------------------------

    @property
    def best_path(self) -> Path:
        return self.model_file or self.path / BEST_FILE

    @property
    def last_path(self) -> Path:
        return self.model_file or self.path / LAST_FILE

    def model_path_or_none(self) -> Path | None:
        if self.model_file is not None:
            return self.model_file
        for name in CHECKPOINTS:
            if (self.path / name).is_file():
                return self.path / name
        return None

    @property
    def model_path(self) -> Path:
        """The model to use: ``best.keras``, else ``last.keras`` (or the bare file)."""
        found = self.model_path_or_none()
        if found is None:
            raise ConfigError(f"run folder {str(self.path)!r} has no checkpoint ({' or '.join(CHECKPOINTS)}); "
                              f"has its training finished at least one epoch? (status: {self.status})")
        return found

    def load_model(self, path: Path | None = None):
        """The Keras model, loaded with ``safe_mode=True`` (never arbitrary code)."""
        return load_keras_model(path or self.model_path)

    # -- history, metrics, state ---------------------------------------------------

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_FILE

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.history_path, history_csv(rows))

    def history(self) -> list[dict[str, Any]]:
        """The rows of ``history.csv``, numbers parsed ([] when there is none)."""
        if self.model_file is not None or not self.history_path.is_file():
            return []
        rows = []
        with open(self.history_path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rows.append({k: _number(k, v) for k, v in row.items()})
        return rows

    def history_columns(self) -> dict[str, list[float]]:
        """``history.csv`` as columns of floats (for plots)."""
        cols: dict[str, list[float]] = {}
        for row in self.history():
            for k, v in row.items():
                cols.setdefault(k, []).append(float("nan") if v is None else float(v))
        return cols

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.path / METRICS_FILE, metrics)

    def metrics(self) -> dict[str, Any]:
        path = self.path / METRICS_FILE
        return read_json(path) if self.model_file is None and path.is_file() else {}

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    @property
    def tb_dir(self) -> Path:
        return self.path / TB_DIR

    def read_state(self) -> dict[str, Any] | None:
        """The resume state committed after the last completed epoch (None before the first)."""
        path = self.state_dir / STATE_FILE
        if not path.is_file():
            return None
        state = read_json(path)
        ckpt = state.get("checkpoint")
        if ckpt and not (self.state_dir / ckpt).is_file():
            raise DataError(f"{path}: names checkpoint {ckpt} which is missing; the run cannot resume exactly. "
                            "Start a new run (or `train --init-from` this run's best.keras)")
        return state

    def checkpoint(self, state: dict[str, Any]) -> Path:
        return self.state_dir / state["checkpoint"]

    def commit_epoch(self, save_model, state: dict[str, Any]) -> None:
        """Save epoch ``state['epochs_done']``: checkpoint, then the commit point, then derived files.

        ``save_model(path)`` writes the full model (weights and optimizer). The
        order makes a kill at any moment leave either the previous or this epoch.
        """
        name = f"epoch-{state['epochs_done']:04d}.keras"
        save_model(self.state_dir / name)
        state["checkpoint"] = name
        atomic_write_json(self.state_dir / STATE_FILE, state)
        for old in self.state_dir.glob("epoch-*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self.publish(state)

    def publish(self, state: dict[str, Any]) -> None:
        """Derive last.keras, best.keras and history.csv from the committed state (idempotent,
        so a resume after a kill between commit and publish repairs them)."""
        ckpt = self.checkpoint(state)
        atomic_copy(ckpt, self.path / LAST_FILE)
        if state.get("best_epoch") == state["epochs_done"]:
            atomic_copy(ckpt, self.path / BEST_FILE)
        self.write_history(state["history"])

    # -- the model card --------------------------------------------------------------

    @property
    def model_card_path(self) -> Path:
        return self.path / MODEL_CARD_FILE

    def write_model_card(self, card: dict[str, Any], markdown: str) -> None:
        """``MODEL_CARD.md`` and the same fields in ``model_card.json`` (JSON first, so a
        reader that finds the Markdown finds its fields)."""
        atomic_write_json(self.path / MODEL_CARD_JSON, card)
        atomic_write_text(self.model_card_path, markdown)

    def model_card(self) -> dict[str, Any] | None:
        """The fields of the last model card written (None before the first)."""
        path = self.path / MODEL_CARD_JSON
        return read_json(path) if self.model_file is None and path.is_file() else None

    def model_card_files(self) -> list[Path]:
        """The card's files that exist (what an export copies); a ``.keras`` file inside a run
        folder (``best.keras``) has that run's card."""
        if not (self.path / RUN_FILE).is_file():
            return []
        return [p for p in (self.model_card_path, self.path / MODEL_CARD_JSON) if p.is_file()]

    # -- evaluations ---------------------------------------------------------------

    def evaluation_dir(self, source_name: str, side: str, *, tta: int = 1) -> Path:
        """Where an evaluation of this run on ``source_name``/``side`` is kept (``-tta<N>`` with test-time
        augmentation, so it sits beside the plain one)."""
        tag = f"{source_name}-{side}" + (f"-tta{tta}" if tta > 1 else "")
        if self.model_file is not None:
            return self.path / f"{self.model_file.stem}-eval-{tag}"
        return self.path / EVALUATIONS_DIR / tag

    def evaluations(self) -> Iterator[Path]:
        root = self.path / EVALUATIONS_DIR
        if root.is_dir():
            yield from sorted(p for p in root.iterdir() if p.is_dir())

    # -- the job it was made with ----------------------------------------------------

    def job(self, *, plugins=None, overrides: Iterable[str] = ()):
        """The job recorded in ``run.json``, resolved again (``overrides`` as with ``--set``)."""
        from .registry import read_toml, resolve

        j = self.info.get("job")
        if not isinstance(j, dict):
            raise ConfigError(f"{self.record_path}: records no job (made by an older tool or by hand); "
                              "pass --source to say which data to use")
        raw: dict[str, Any] = {
            "data": {"source": j["source"]["name"], "cache_dir": j["cache_dir"]},
            "sources": {j["source"]["name"]: {"type": j["source"]["type"], **j["source"]["params"]}},
            "preprocessing": [{"type": p["type"], **p["params"]} for p in j["preprocessing"]],
            "split": j["split"],
            "models": {m["name"]: {"type": m["type"], **m["params"]} for m in j["models"]},
            "train": j["train"],
        }
        for name, entry in (j.get("sources") or {}).items():  # the parts of a combined source
            raw["sources"].setdefault(name, {"type": entry["type"], **entry["params"]})
        m = self.info.get("model") or {}
        if m.get("name"):
            raw["models"].setdefault(m["name"], {"type": m["type"], **m["params"]})
        registry = Path(j["registry"]) if j.get("registry") else None
        if registry is not None and registry.is_file():
            raw["plugin_paths"] = [p for p in read_toml(registry).get("plugin_paths", []) if isinstance(p, str)]
        # Relative source paths point where they did at training time (recorded since issue 13).
        return resolve(registry, raw=raw, plugins=plugins, overrides=overrides, root=j.get("root"))

    def training_data(self, job=None, *, dataset=None, progress: bool = False):
        """``(dataset, split)`` this run was trained on, the split hash checked.

        Raises :class:`DataError` naming both hashes when the recorded source no
        longer gives the same split (the data or the split settings changed).
        """
        from .data.cache import load_dataset
        from .data.split import load_split

        job = job or self.job()
        dataset = dataset if dataset is not None else load_dataset(job, progress=progress)
        split = load_split(dataset, job.split)
        if self.split_hash and split.hash != self.split_hash:
            raise DataError(f"{self.path}: its source {job.source.name!r} no longer gives the split it was trained on "
                            f"(recorded split hash {self.split_hash[:12]}, now {split.hash[:12]}): the data or "
                            "[split] changed. Evaluate on another source with --source NAME --side all, or "
                            "restore the data")
        return dataset, split

    def summary(self) -> dict[str, Any]:
        """One row of ``mathsym-zoo runs``."""
        hist = self.history()
        vals = [r["val_accuracy"] for r in hist if r.get("val_accuracy") is not None]
        metrics = self.metrics()
        best_val = max(vals) if vals else (metrics.get("val") or {}).get("accuracy")
        return {"run": str(self.path), "model": self.model_name, "architecture": self.architecture,
                "source": self.source_name, "split_hash": self.split_hash,
                "status": self.status + (f": {self.info['failure']}" if self.info.get("failure") else ""),
                # An ensemble has no history of its own: its metrics hold its members' epochs and its val score.
                "epochs": len(hist) or metrics.get("epochs") or 0,
                "best_val_top1": best_val if "val" not in self.fit_sides else None,  # else not held out
                "test_top1": (metrics.get("test") or {}).get("accuracy"), "created": self.info.get("created"),
                "parent": (self.info.get("parent") or {}).get("path")}


def _number(key: str, value: str | None):
    if value in ("", None):
        return None
    return int(value) if key == "epoch" else float(value)


def history_csv(history: list[dict[str, Any]]) -> str:
    keys = list(HISTORY_FIELDS_FIRST)
    for row in history:
        keys += [k for k in row if k not in keys]
    keys = [k for k in keys if any(k in r for r in history)] or list(HISTORY_FIELDS_FIRST)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buf.getvalue()


def load_keras_model(path: Path, plugins=None):
    """Load a ``.keras`` file with ``safe_mode=True``; a clear error for anything else.

    The plugins (``plugins``, else the installed ones) first register their custom Keras
    classes (e.g. the augmentation layers): safe_mode finds only registered classes."""
    import zipfile

    import keras

    from .plugins import PluginSet

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file {str(path)!r} not found")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a Keras model file (a .keras file is a zip archive; this one is not). "
                        "Pass a file written by mathsym-zoo or keras.Model.save")
    from . import model_layers  # noqa: F401  (registers the core's layers, e.g. ClassPrior)

    (plugins or PluginSet()).register_keras_classes()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for bad or foreign files
        why = " ".join(str(exc).split())[:300]
        raise DataError(f"{path}: not a Keras model file we can load ({type(exc).__name__}: {why}). Models load with "
                        "safe_mode=True: a model with custom Python code needs its plugin installed") from None


def find_runs(roots: Iterable[Path]) -> list[Run]:
    """Run folders under ``roots`` (runs folders and comparison folders), newest first."""
    seen: dict[Path, Run] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        candidates = [root] if Run.is_run(root) else []
        candidates += [p.parent for p in root.glob(f"*/{RUN_FILE}")]
        candidates += [p.parent for p in root.glob(f"*/runs/*/{RUN_FILE}")]
        for path in candidates:
            seen.setdefault(path.resolve(), Run(path))
    runs = list(seen.values())
    runs.sort(key=lambda r: str(r.info.get("created", "")), reverse=True)
    return runs
