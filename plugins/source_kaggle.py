"""Source ``kaggle``: a Kaggle dataset fetched (or found in the local cache) by kagglehub.

The default is the mission's data, "Handwritten math symbols dataset"
(``xainano/handwrittenmathsymbols``, version 2): a ``data.rar`` holding
``extracted_images/<label>/*.jpg``. With a version set and the kagglehub cache
filled (``KAGGLEHUB_CACHE``, default ``~/.cache/kagglehub``), nothing touches
the network.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any, Iterator

from pydantic import Field

from mathsym_zoo import hookimpl
from mathsym_zoo.components import BuildContext
from mathsym_zoo.errors import DataError
from mathsym_zoo_plugins.source_archive import ArchiveSource, PatternParams

DEFAULT_HANDLE = "xainano/handwrittenmathsymbols"
DEFAULT_VERSION = 2
#: Croissant metadata of the default dataset (CC0), shipped for offline use.
SHIPPED_CROISSANT = Path(__file__).resolve().parent / "kaggle-croissant.json"


class KaggleParams(PatternParams):
    handle: str = Field(DEFAULT_HANDLE, pattern=r"^[\w.-]+/[\w.-]+$", description="Kaggle dataset owner/name")
    version: int | None = Field(
        DEFAULT_VERSION, ge=1, description="dataset version; set it to work offline from the cache "
                                           "(an unversioned handle always asks the Kaggle API)")
    archive: str = Field("data.rar", description="file (or folder) inside the dataset holding the images")
    download_timeout: float = Field(1800.0, gt=0, description="seconds before a download that does not finish "
                                                              "is given up")


def kagglehub_cache_paths(handle: str, version: int | None) -> tuple[Path, Path | None]:
    """Where kagglehub keeps this dataset version, and its completion marker."""
    from kagglehub.config import get_cache_folder

    owner, name = handle.split("/", 1)
    base = Path(get_cache_folder()) / "datasets" / owner / name
    if version is None:
        return base, None
    return base / "versions" / str(version), base / f"{version}.complete"


@contextlib.contextmanager
def _quiet_kagglehub():
    logger = logging.getLogger("kagglehub")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def download(handle: str, version: int | None, timeout: float) -> Path:
    """``kagglehub.dataset_download`` with our own time limit and one clear error."""
    import kagglehub

    ref = f"{handle}/versions/{version}" if version is not None else handle
    outcome: dict[str, Any] = {}

    def fetch() -> None:
        try:
            with _quiet_kagglehub():
                outcome["path"] = kagglehub.dataset_download(ref)
        except BaseException as exc:  # reported in the caller's thread
            outcome["error"] = exc

    # kagglehub has no timeout of its own: against a server that never answers
    # it waits forever, so it runs in a daemon thread we stop waiting for.
    worker = threading.Thread(target=fetch, name="kagglehub-download", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DataError(_failure(handle, version, f"no answer within {timeout:g} s "
                                                  "(raise the source's `download_timeout` for slow links)"))
    if "error" in outcome:
        exc = outcome["error"]
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc
        if "connection" in type(exc).__name__.lower() or isinstance(exc, OSError):
            why = f"cannot reach Kaggle ({type(exc).__name__}; offline?)"
        else:
            text = " ".join(str(exc).split())
            why = f"{type(exc).__name__}: {text[:160]}{'...' if len(text) > 160 else ''}" if text else type(exc).__name__
        raise DataError(_failure(handle, version, why))
    return Path(outcome["path"])


def _failure(handle: str, version: int | None, why: str) -> str:
    folder, marker = kagglehub_cache_paths(handle, version)
    state = "missing" if not folder.exists() else ("present but without its completion marker"
                                                   if marker is not None and not marker.exists() else "present")
    lines = [
        f"could not get Kaggle dataset {handle!r}" + (f" version {version}" if version else "") + f": {why}.",
        f"Checked the kagglehub cache: {folder} ({state}).",
        "To proceed, either:",
        "  - go online and log in to Kaggle (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY), then run again;",
    ]
    if version is None:
        lines.append("  - set the source's `version`: an unversioned handle always asks the Kaggle API;")
    else:
        lines.append(f"  - copy the dataset's files (data.rar) into {folder} and create the empty file "
                     f"{marker} (KAGGLEHUB_CACHE chooses another cache folder);")
    lines.append("  - or point the `archive` source at a local copy of the archive: a [sources.local] table with "
                 "type = \"archive\" and path = \".../data.rar\", then --source local.")
    return "\n".join(lines)


class KaggleSource:
    """A Kaggle dataset version, read through :class:`ArchiveSource`."""

    kind = "kaggle"

    def __init__(self, params: KaggleParams, context: BuildContext) -> None:
        self.params = params
        self.context = context
        self._dir: Path | None = None
        self._version = params.version

    @property
    def version(self) -> int | None:
        return self._version

    def dataset_dir(self) -> Path:
        """The downloaded (or cached) dataset folder; downloads on first use."""
        if self._dir is None:
            p = self.params
            self._dir = download(p.handle, p.version, p.download_timeout)
            if self._version is None and self._dir.parent.name == "versions" and self._dir.name.isdigit():
                self._version = int(self._dir.name)
        return self._dir

    def _archive(self) -> ArchiveSource:
        root = self.dataset_dir()
        target = root / self.params.archive
        if not target.exists():
            present = sorted(p.name for p in root.iterdir())[:10] if root.is_dir() else []
            raise DataError(
                f"Kaggle dataset {self.params.handle!r} has no {self.params.archive!r} in {root} "
                f"(it holds: {', '.join(present) or 'nothing'}); set the source's `archive` to the file or "
                "folder with the images")
        return ArchiveSource(target, label_pattern=self.params.label_pattern,
                             group_pattern=self.params.group_pattern, cache_dir=self.context.cache_dir,
                             max_member_mb=self.params.max_member_mb)

    def fingerprint(self) -> str:
        # A Kaggle version is immutable: its number identifies the data.
        if self.version is None:
            self.dataset_dir()
        return f"kaggle:{self.params.handle}/versions/{self.version}/{self.params.archive}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "handle": self.params.handle, "version": self.version,
                "archive": self.params.archive, "label_pattern": self.params.label_pattern,
                "group_pattern": self.params.group_pattern, "fingerprint": self.fingerprint()}

    def size_hint(self) -> int | None:
        return self._archive().size_hint()

    def records(self) -> Iterator:
        return self._archive().records()

    def record_table(self):
        return self._archive().record_table()

    def croissant_path(self) -> Path | None:
        p = self.params
        if p.croissant:
            return self.context.resolve(p.croissant)
        if p.handle == DEFAULT_HANDLE and p.version in (DEFAULT_VERSION, None):
            return SHIPPED_CROISSANT
        return None

    def metadata(self) -> dict[str, Any] | None:
        path = self.croissant_path()
        if path is None:
            return None
        from mathsym_zoo.croissant import read_croissant

        return read_croissant(path)


@hookimpl
def register_sources(register):
    register("kaggle", summary="A Kaggle dataset via kagglehub (default: xainano/handwrittenmathsymbols v2, "
                               "data.rar; works offline from the kagglehub cache).",
             params=KaggleParams, factory=KaggleSource)
