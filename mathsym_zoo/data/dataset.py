"""The decoded dataset every later stage reads (split, pipeline, training)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Decoded images with labels; built by ``data.cache.load_dataset``.

    ``images`` is uint8 ``(N, H, W, C)`` (usually a read-only memory map),
    ``labels`` int32 indexes into the sorted ``class_names``; ``paths``,
    ``groups`` ("" when the source has none) and ``hashes`` (hex digest of the
    decoded pixels) are string arrays of length N.
    """

    path: Path
    key: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: np.ndarray
    groups: np.ndarray
    hashes: np.ndarray
    source: dict[str, Any] = dataclasses.field(default_factory=dict)
    preprocessing: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    report: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def from_arrays(cls, images, labels, class_names, *, paths=None, groups=None, hashes=None,
                    path: Path | str = ".", key: str = "in-memory", **extra) -> "Dataset":
        """Build a Dataset from in-memory arrays (tests, API users); hashes are
        computed from the pixels when not given."""
        import hashlib

        images = np.asarray(images, dtype=np.uint8)
        if images.ndim == 3:
            images = images[..., None]
        n = images.shape[0]
        labels = np.asarray(labels, dtype=np.int32)
        if paths is None:
            paths = np.array([f"item-{i}" for i in range(n)])
        if groups is None:
            groups = np.array([""] * n)
        if hashes is None:
            hashes = np.array([hashlib.sha1(images[i].tobytes()).hexdigest() for i in range(n)])
        return cls(Path(path), key, images, labels, tuple(class_names), np.asarray(paths, dtype=str),
                   np.asarray(groups, dtype=str), np.asarray(hashes, dtype=str), **extra)
