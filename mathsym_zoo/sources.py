"""The interface dataset sources implement (see ``register_sources``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class Record:
    """One member of a dataset, before decoding.

    Exactly one of ``data`` (encoded image bytes, e.g. a JPEG) and ``image``
    (a decoded uint8 array, HxW or HxWxC) is set, unless ``skip`` says why the
    member cannot be used (``"not an image"``, ``"empty file"``, ``"unsafe path"``,
    ...); skipped records are counted and listed in the ingest report.
    """

    path: str
    label: str | None
    group: str | None = None
    data: bytes | None = None
    image: np.ndarray | None = None
    skip: str | None = None


class Source(Protocol):
    """A dataset source built by a source factory."""

    def fingerprint(self) -> str:
        """A stable identity of the data (archive checksum, dataset version,
        generator parameters). Equal fingerprints promise equal records."""

    def describe(self) -> dict[str, Any]:
        """Human-readable identity: kind, location, version; JSON-able."""

    def records(self) -> Iterator[Record]:
        """Yield every member once, in a deterministic order."""

    def metadata(self) -> dict[str, Any] | None:
        """Croissant-style metadata (name, date_published, license, url,
        citation, description) or None when the source has none."""
