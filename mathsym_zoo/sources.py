"""The interface dataset sources implement (see ``register_sources``)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Iterator, Protocol

if TYPE_CHECKING:  # listing plugins (which import Record) must not import numpy
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
    """A dataset source built by a source factory.

    Optional, for speed: ``size_hint() -> int | None`` (members, for the progress
    bar) and ``record_table()``, a context manager giving None or an object with
    ``len()`` and a picklable ``records(start, stop) -> list[Record]`` that reads
    that slice of ``records()`` in the calling process: the ingest's workers then
    read their own slices in parallel instead of receiving the bytes.
    """

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

    # Optional:
    # ``notes() -> list[str]``: lines for the ingest report, called after records()
    #     (e.g. how many members a group file matched).
    # ``preprocessed = True``: records are already through the job's offline
    #     preprocessing (a source composed of other sources' caches); ingest skips it.

class GuardedSource:
    """A source built by a plugin, whose methods report the plugin's exceptions as one
    clear error naming the plugin and the component (``components.plugin_code``).

    ``records()`` is guarded item by item, so an exception mid-stream stops the ingest
    with that error (the cache's temporary folder is then removed). Other attributes
    are the wrapped source's own.
    """

    def __init__(self, source: Any, component: Any) -> None:
        self.wrapped = source
        self.component = component

    def _call(self, method: str, *args: Any) -> Any:
        from .components import plugin_code

        with plugin_code(self.component, f"{method}()"):
            return getattr(self.wrapped, method)(*args)

    def fingerprint(self) -> str:
        return self._call("fingerprint")

    def describe(self) -> dict[str, Any]:
        return self._call("describe")

    def metadata(self) -> dict[str, Any] | None:
        return self._call("metadata")

    def records(self) -> Iterator[Record]:
        from .components import guarded_iter

        return guarded_iter(self.component, self.wrapped.records, "records()")

    def check(self) -> None:
        """The source's own cheap checks (files present...) when it has any; reads no data."""
        if callable(getattr(self.wrapped, "check", None)):
            self._call("check")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
