"""The models a server offers: which runs, in which order, loaded once on first use."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError, ZooError
from ..predict import resolve_model

FINISHED = ("completed", "early-stopped")


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


def describe_run(path: Path, model_id: str) -> tuple[ModelEntry, str | None]:
    """``(entry, status)`` of a run folder, ``.keras`` file or export folder.

    The one place this module reads run files; to be replaced by the run owner's
    listing (``mathsym_zoo.runs``) once it lands.
    """
    _, model_path, meta_path = resolve_model(Path(path))
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    run = meta.get("run") if isinstance(meta.get("run"), dict) else meta  # export folders nest the run identity
    metrics_file = model_path.parent / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    top1 = (metrics.get("test") or metrics.get("val") or {}).get("accuracy")
    model = run.get("model")
    job_source = (run.get("job") or {}).get("source") if isinstance(run.get("job"), dict) else None
    source = job_source if isinstance(job_source, dict) else run.get("source")  # the registry entry's name
    entry = ModelEntry(
        id=model_id, path=Path(path),
        model=str(model.get("name", "?") if isinstance(model, dict) else model or Path(path).name),
        source=str(source.get("name") or source.get("kind", "?") if isinstance(source, dict) else source or "?"),
        top1=float(top1) if isinstance(top1, (int, float)) else None,
        classes=tuple(str(c) for c in meta.get("class_names", ())), created=str(run.get("created", "")))
    return entry, run.get("status")


def find_runs(runs_dir: Path, comparisons_dir: Path) -> list[ModelEntry]:
    """Every finished run under ``runs_dir/*`` and ``comparisons_dir/*/runs/*``.

    Newest first (a comparison counts as one, at its newest run), and within a
    comparison the best top-1 first. Unreadable or unfinished runs are left out.
    """
    groups: dict[str, list[ModelEntry]] = {}
    candidates = [(p, p.name, p.name) for p in _subdirs(runs_dir)]
    candidates += [(r, f"{c.name}/{r.name}", c.name + "/") for c in _subdirs(comparisons_dir)
                   for r in _subdirs(c / "runs")]
    for path, model_id, group in candidates:
        try:
            entry, status = describe_run(path, model_id)
        except (ZooError, OSError, ValueError, AttributeError):
            continue  # not a run, or one being written
        if status in FINISHED and entry.classes:
            groups.setdefault(group, []).append(entry)
    ordered = sorted(groups.values(), key=lambda g: max(e.created for e in g), reverse=True)
    return [e for g in ordered for e in sorted(g, key=lambda e: -(e.top1 or 0.0))]


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []


def entries_for_paths(paths: Sequence[Path]) -> list[ModelEntry]:
    """Entries for runs named on the command line, whatever their status; ids are folder names."""
    entries: list[ModelEntry] = []
    for path in paths:
        name = Path(path).resolve().name
        model_id = name if name not in {e.id for e in entries} else f"{name}-{len(entries) + 1}"
        entry, _ = describe_run(Path(path), model_id)
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
