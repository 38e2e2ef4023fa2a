"""The models a server offers: which runs, in which order, loaded once on first use."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError, ZooError
from ..fileio import read_json
from ..predict import resolve_model
from ..runs import Run
from ..runs import find_runs as find_run_folders


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One servable model, described without loading it (no TensorFlow)."""

    id: str
    path: Path
    model: str  # architecture / entry name
    source: str  # data source it was trained on
    top1: float | None  # test (else validation) accuracy, when recorded
    classes: tuple[str, ...]
    created: str = ""  # ISO time, for ordering

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "source": self.source, "top1": self.top1,
                "classes": list(self.classes)}


def _entry(run: Run, model_id: str) -> ModelEntry:
    metrics = run.metrics()
    top1 = (metrics.get("test") or metrics.get("val") or {}).get("accuracy")
    return ModelEntry(id=model_id, path=run.model_file or run.path, model=run.model_name,
                      source=run.source_name or run.source.get("name") or run.source.get("kind") or "?",
                      top1=float(top1) if isinstance(top1, (int, float)) else None,
                      classes=run.class_names or (), created=str(run.info.get("created", "")))


def describe(path: Path, model_id: str) -> ModelEntry:
    """The entry of a run folder, ``.keras`` file or export folder, without loading the model."""
    kind, _, meta_path = resolve_model(Path(path))
    if kind == "keras":
        return _entry(Run.open(path), model_id)
    meta = read_json(meta_path)  # an export's model_info.json
    run = meta.get("run") if isinstance(meta.get("run"), dict) else {}
    model = run.get("model")
    return ModelEntry(id=model_id, path=Path(path), classes=tuple(str(c) for c in meta.get("class_names", ())),
                      model=str(model.get("name")) if isinstance(model, dict) else Path(path).name,
                      source=str((run.get("source") or {}).get("kind", "?")), top1=None,
                      created=str(run.get("created", "")))


def find_runs(runs_dir: Path, comparisons_dir: Path) -> list[ModelEntry]:
    """Every finished run under ``runs_dir`` and ``comparisons_dir/*/runs``, through :mod:`mathsym_zoo.runs`.

    Newest first (a comparison counts as one, at its newest run), and within a
    comparison the best top-1 first. Ids: ``<run>`` and ``<comparison>/<model>``.
    Unreadable or unfinished runs are left out.
    """
    groups: dict[str, list[ModelEntry]] = {}
    for run in find_run_folders([runs_dir, comparisons_dir]):
        try:
            if not run.finished or not run.class_names:
                continue
            model_id, group = _run_id(run.path, Path(runs_dir), Path(comparisons_dir))
            groups.setdefault(group, []).append(_entry(run, model_id))
        except (ZooError, OSError, ValueError):
            continue  # a record being written, or not ours
    ordered = sorted(groups.values(), key=lambda g: max(e.created for e in g), reverse=True)
    return [e for g in ordered for e in sorted(g, key=lambda e: -(e.top1 or 0.0))]


def _run_id(path: Path, runs_dir: Path, comparisons_dir: Path) -> tuple[str, str]:
    """``(id, group)``: a comparison's runs share its group."""
    try:
        parts = path.resolve().relative_to(comparisons_dir.resolve()).parts
        if len(parts) == 3:  # <comparison>/runs/<model>
            return f"{parts[0]}/{parts[2]}", parts[0] + "/"
    except ValueError:
        pass
    name = path.resolve().relative_to(runs_dir.resolve()).as_posix()
    return name, name


def entries_for_paths(paths: Sequence[Path]) -> list[ModelEntry]:
    """Entries for runs named on the command line, whatever their status; ids are folder names."""
    entries: list[ModelEntry] = []
    for path in paths:
        name = Path(path).resolve().name
        model_id = name if name not in {e.id for e in entries} else f"{name}-{len(entries) + 1}"
        entry = describe(Path(path), model_id)
        if not entry.classes:
            raise ConfigError(f"{str(path)!r}: its metadata lists no class names")
        entries.append(entry)
    return entries


class ModelPool:
    """The offered models by id; each is loaded on first use, once, and kept."""

    def __init__(self, entries: Sequence[ModelEntry], loader: Callable[[Path], Any] | None = None) -> None:
        if not entries:
            raise ConfigError("no model to serve: name a run folder, or train one "
                              "(mathsym-zoo train MODEL / mathsym-zoo compare)")
        self.entries = {e.id: e for e in entries}
        self.default = entries[0].id
        self._loader = loader or _load
        self._loaded: dict[str, Any] = {}
        self._locks = {e.id: threading.Lock() for e in entries}

    def entry(self, model_id: str | None) -> ModelEntry | None:
        return self.entries.get(self.default if model_id is None else model_id)

    def classifier(self, model_id: str):
        """The loaded classifier (loads it, once, on first call; concurrent callers wait)."""
        if model_id not in self._loaded:
            with self._locks[model_id]:
                if model_id not in self._loaded:
                    self._loaded[model_id] = self._loader(self.entries[model_id].path)
        return self._loaded[model_id]

    def all_classes(self) -> list[str]:
        """Class names of every offered model, in first-seen order."""
        return list(dict.fromkeys(c for e in self.entries.values() for c in e.classes))


def _load(path: Path):
    from ..api import load_classifier

    return load_classifier(path, warm_batch=1)
