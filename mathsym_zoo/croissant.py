"""Dataset metadata from Croissant JSON-LD files (read with ``mlcroissant``).

mlcroissant takes most of a second to import and logs validation warnings
(for example a missing ``citeAs``) through absl; both stay out of the way:
the import happens on first use and the warnings are silenced while reading.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from .errors import DataError

FIELDS = ("name", "date_published", "license", "url", "citation", "description", "version", "creators")


@contextlib.contextmanager
def _quiet():
    loggers = [logging.getLogger(n) for n in ("absl", "mlcroissant")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _text(value: Any) -> str | None:
    """A plain string from mlcroissant's values (str, datetime, CreativeWork, lists)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [t for t in (_text(v) for v in value) if t]
        return "; ".join(parts) or None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat(sep=" ") if isinstance(value, _dt.datetime) else value.isoformat()
    if isinstance(value, str):
        return value.strip() or None
    name, url = getattr(value, "name", None), getattr(value, "url", None)
    if name or url:
        return f"{name} ({url})" if name and url else (name or url)
    return str(value)


def read_croissant(path: str | Path) -> dict[str, Any]:
    """Name, publication date, licence, URL, citation, description, version and
    creators of the dataset described by the Croissant file at ``path``
    (``None`` for fields the file lacks)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Croissant metadata file {str(path)!r} not found; fix the source's `croissant` path "
                        "or remove it")
    with _quiet():
        try:
            import mlcroissant as mlc

            meta = mlc.Dataset(jsonld=str(path)).metadata
        except Exception as exc:  # mlcroissant raises ValidationError, ValueError, JSON errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"Croissant metadata file {str(path)!r} could not be read: {first}; "
                            "check that it is Croissant JSON-LD (e.g. from the dataset page's Croissant export)") from None
    return {
        "name": _text(getattr(meta, "name", None)),
        "date_published": _text(getattr(meta, "date_published", None)),
        "license": _text(getattr(meta, "license", None)),
        "url": _text(getattr(meta, "url", None)),
        "citation": _text(getattr(meta, "cite_as", None)),
        "description": _text(getattr(meta, "description", None)),
        "version": _text(getattr(meta, "version", None)),
        "creators": _text(getattr(meta, "creators", None)),
        "file": str(path),
    }
