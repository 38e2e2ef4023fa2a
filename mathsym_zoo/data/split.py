"""The persisted, hashed, stratified, duplicate- and group-aware split.

Items that must stay together (same decoded-pixel hash, or the same group id
when ``group_aware``) are joined into connected components; components are
assigned to train/val/test by a deterministic greedy that follows each class's
fractions. Ordering uses sha256 of (seed, path), never a NumPy RNG stream, so
the same dataset and config give the same split - and the same hash - on any
machine and NumPy version. This module does not import TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..fileio import atomic_write_bytes as _write_atomic
from ..registry import SplitConfig, fingerprint

SIDES: tuple[str, ...] = ("train", "val", "test")
FORMAT_VERSION = 2  # 2: identical images in different groups no longer join the groups


class SmallClassWarning(UserWarning):
    """A class had too few images (or groups) to split; all of it went to train."""


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """Indices into a Dataset for each side, plus the identity of the split."""

    indices: dict[str, np.ndarray]  # side -> sorted int64 indices
    hash: str  # sha256 of the sorted member paths of each side
    path: Path | None  # the split file, once persisted
    config: dict[str, Any]
    config_hash: str
    dataset_key: str
    small_classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def counts(self, labels: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
        """Per side, the number of images of each class."""
        return {s: np.bincount(labels[idx], minlength=num_classes) for s, idx in self.indices.items()}

    def sizes(self) -> dict[str, int]:
        return {s: int(len(idx)) for s, idx in self.indices.items()}


def config_hash(cfg: SplitConfig) -> str:
    """sha256 of the split config (names the split file)."""
    return fingerprint({"split": cfg.model_dump(mode="json"), "format": FORMAT_VERSION})


def content_hash(paths: np.ndarray, indices: dict[str, np.ndarray]) -> str:
    """sha256 of each side's sorted member paths: independent of array order and floats."""
    h = hashlib.sha256()
    for side in SIDES:
        h.update(f"[{side}]\n".encode())
        for p in sorted(str(x) for x in paths[indices[side]]):
            h.update(p.encode("utf-8") + b"\n")
    return h.hexdigest()


def split_path(dataset, cfg: SplitConfig) -> Path:
    return Path(dataset.path) / "splits" / f"split-{config_hash(cfg)[:12]}.json"


# -- building -------------------------------------------------------------------


def _components(dataset, group_aware: bool) -> np.ndarray:
    """Connected-component id of each item over equal hashes and (optionally) equal groups."""
    n = len(dataset)
    parent = list(range(n))

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    def join(keys: np.ndarray, skip_empty: bool) -> None:
        first: dict[str, int] = {}
        for i, k in enumerate(keys.tolist()):
            if skip_empty and k == "":
                continue
            j = first.setdefault(k, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)

    hashes = np.asarray(dataset.hashes, dtype=str)
    if not group_aware:
        join(hashes, skip_empty=True)
        return np.array([find(i) for i in range(n)], dtype=np.int64)
    groups = np.asarray(dataset.groups, dtype=str)
    join(groups, skip_empty=True)
    # Identical pixels in two groups (a straight "-" by two writers) are two writings, not one
    # image leaked: joining them would chain whole groups together. Copies stay with their group;
    # an ungrouped copy follows a grouped one.
    join(np.char.add(np.char.add(groups, "\0"), hashes), skip_empty=True)
    grouped = {}
    for i, (h, g) in enumerate(zip(hashes.tolist(), groups.tolist())):
        if g:
            grouped.setdefault(h, i)
    join(np.array([h if (g == "" or grouped.get(h) == i) else "" for i, (h, g) in
                   enumerate(zip(hashes.tolist(), groups.tolist()))], dtype=str), skip_empty=True)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def build_split(dataset, cfg: SplitConfig) -> Split:
    """Compute the split of ``dataset`` for ``cfg`` (not persisted; see :func:`load_split`)."""
    n = len(dataset)
    if n == 0:
        raise DataError("cannot split an empty dataset; check the source and its ingest report")
    labels = np.asarray(dataset.labels, dtype=np.int64)
    paths = np.asarray(dataset.paths, dtype=str)
    num_classes = len(dataset.class_names)
    comp = _components(dataset, cfg.group_aware)

    # Members and per-class counts of every component.
    roots, comp_of = np.unique(comp, return_inverse=True)
    members: list[list[int]] = [[] for _ in roots]
    for i, c in enumerate(comp_of.tolist()):
        members[c].append(i)
    class_total = np.bincount(labels, minlength=num_classes)
    units = np.zeros(num_classes, dtype=np.int64)  # components touching each class
    comp_classes: list[dict[int, int]] = []
    for m in members:
        counts: dict[int, int] = {}
        for i in m:
            counts[int(labels[i])] = counts.get(int(labels[i]), 0) + 1
        comp_classes.append(counts)
        for c in counts:
            units[c] += 1

    small = [c for c in range(num_classes) if 0 < units[c] < cfg.min_per_class]
    small_set = set(small)
    notes: list[str] = []
    if small:
        names = ", ".join(f"{dataset.class_names[c]} ({class_total[c]} images in {units[c]} unit(s))" for c in small)
        msg = (f"{len(small)} class(es) have fewer than min_per_class={cfg.min_per_class} independent images "
               f"or groups and go entirely to train: {names}")
        notes.append(msg)
        warnings.warn(msg, SmallClassWarning, stacklevel=2)
    mixed = sum(1 for cc in comp_classes if len(cc) > 1)
    if mixed:
        notes.append(f"{mixed} component(s) hold several classes (shared groups or duplicate images with "
                     "different labels); each is kept on one side")

    # Deterministic order: big components first (they are hardest to place), then by sha256(seed, path).
    def key(ci: int):
        first_path = min(paths[i] for i in members[ci])
        digest = hashlib.sha256(f"{cfg.seed}\0{first_path}".encode("utf-8")).hexdigest()
        return (-len(members[ci]), digest)

    order = sorted(range(len(members)), key=key)
    fractions = (cfg.train, cfg.val, cfg.test)
    open_sides = [s for s in range(3) if fractions[s] > 0]
    assigned = np.zeros((num_classes, 3), dtype=np.int64)
    side_of = np.empty(n, dtype=np.int8)
    for ci in order:
        counts = comp_classes[ci]
        if any(c in small_set for c in counts):
            best = 0
        else:
            # Relative deficit of each side, summed over the component's classes.
            best, best_gain = open_sides[0], None
            for s in open_sides:
                gain = 0.0
                for c, k in counts.items():
                    gain += k * (fractions[s] * class_total[c] - assigned[c, s]) / class_total[c]
                if best_gain is None or gain > best_gain + 1e-12:
                    best, best_gain = s, gain
        for c, k in counts.items():
            assigned[c, best] += k
        side_of[members[ci]] = best

    indices = {side: np.flatnonzero(side_of == s).astype(np.int64) for s, side in enumerate(SIDES)}
    notes += _side_notes(dataset, indices, cfg.group_aware)
    return Split(
        indices=indices,
        hash=content_hash(paths, indices),
        path=None,
        config=cfg.model_dump(mode="json"),
        config_hash=config_hash(cfg),
        dataset_key=str(dataset.key),
        small_classes=tuple(dataset.class_names[c] for c in small),
        notes=tuple(notes),
    )


def _side_notes(dataset, indices: dict[str, np.ndarray], group_aware: bool) -> list[str]:
    """What each side holds: distinct groups (e.g. writers), and the parts of a combined source."""
    notes = []
    groups = np.asarray(dataset.groups, dtype=str)
    if group_aware and (groups != "").any():
        per_side = {side: set(groups[idx].tolist()) - {""} for side, idx in indices.items()}
        sides_of = collections.Counter(g for side in SIDES for g in per_side[side])
        twice = sum(1 for n in sides_of.values() if n > 1)
        counts = ", ".join(f"{side} {len(per_side[side]):,}" for side in SIDES)
        notes.append(f"groups per side: {counts}; " + (f"{twice:,} on two sides" if twice else "none on two sides"))
        groups_of: dict[str, set] = collections.defaultdict(set)
        for h, g in zip(np.asarray(dataset.hashes, dtype=str).tolist(), groups.tolist()):
            if g:
                groups_of[h].add(g)
        shared = sum(1 for gs in groups_of.values() if len(gs) > 1)
        if shared:
            notes.append(f"{shared:,} set(s) of identical images occur in several groups (e.g. a straight stroke "
                         "by two writers); each copy stays with its group, so such pixels can be on two sides")
    parts = [p.get("name", "") for p in dataset.source.get("parts", [])]
    if parts:
        paths = np.asarray(dataset.paths, dtype=str)
        fed = []
        for side in SIDES:
            counts = {part: int(np.char.startswith(paths[indices[side]], f"{part}/").sum()) for part in parts}
            fed.append(f"{side} " + " + ".join(f"{part} {n:,}" for part, n in counts.items()))
        notes.append("sources per side: " + "; ".join(fed))
    return notes


# -- persistence ----------------------------------------------------------------


def _to_json(split: Split, dataset) -> dict[str, Any]:
    counts = split.counts(np.asarray(dataset.labels), len(dataset.class_names))
    return {
        "format": FORMAT_VERSION,
        "hash": split.hash,
        "config": split.config,
        "config_hash": split.config_hash,
        "dataset_key": split.dataset_key,
        "num_images": len(dataset),
        "sizes": split.sizes(),
        "small_classes": list(split.small_classes),
        "notes": list(split.notes),
        "class_counts": {side: {name: int(counts[side][i]) for i, name in enumerate(dataset.class_names)}
                         for side in SIDES},
        "indices": {side: split.indices[side].tolist() for side in SIDES},
    }


def read_split(path: Path, dataset=None) -> Split:
    """Read a split file; with ``dataset``, check it belongs to it and its hash still holds."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        indices = {side: np.asarray(data["indices"][side], dtype=np.int64) for side in SIDES}
        split = Split(indices=indices, hash=data["hash"], path=path, config=data["config"],
                      config_hash=data["config_hash"], dataset_key=data["dataset_key"],
                      small_classes=tuple(data.get("small_classes", ())), notes=tuple(data.get("notes", ())))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"split file {str(path)!r} is unreadable ({exc}); delete it to rebuild the split") from None
    if dataset is not None:
        if data.get("num_images") != len(dataset) or split.dataset_key != str(dataset.key):
            raise DataError(f"split file {str(path)!r} was made for another dataset (key {split.dataset_key[:12]}, "
                            f"{data.get('num_images')} images); delete it to rebuild the split")
        top = max((int(i.max()) for i in indices.values() if len(i)), default=-1)
        if top >= len(dataset) or content_hash(np.asarray(dataset.paths, dtype=str), indices) != split.hash:
            raise DataError(f"split file {str(path)!r} does not match its hash; delete it to rebuild the split")
    return split


def load_split(dataset, cfg: SplitConfig) -> Split:
    """The split of ``dataset`` for ``cfg``: read from its file, or built and persisted atomically.

    The file is ``<dataset.path>/splits/split-<config hash[:12]>.json``; every run
    and comparison on the same cache and config uses this exact file.
    """
    path = split_path(dataset, cfg)
    if path.is_file():
        return read_split(path, dataset)
    split = build_split(dataset, cfg)
    _write_atomic(path, json.dumps(_to_json(split, dataset), separators=(",", ":")))
    return dataclasses.replace(split, path=path)
