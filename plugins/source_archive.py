"""Source ``archive``: images in a local zip / tar(.gz/.bz2/.xz) / rar file or a folder.

The label is each image's parent folder name unless ``label_pattern`` says
otherwise; ``group_pattern`` gives an optional group id (writer, source
expression) that the split keeps on one side; ``group_file`` maps keys (that
match, the member path or its file stem) to groups through a CSV, e.g. writers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field, field_validator

from mathsym_zoo import hookimpl
from mathsym_zoo.components import BuildContext, Params
from mathsym_zoo.data.groups import GroupFileSpec
from mathsym_zoo.errors import DataError


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
    return value


class PatternParams(Params):
    """Label / group extraction shared by the file-based sources."""

    label_pattern: str | None = Field(
        None, description="regex searched in the member path; its first group (or (?P<label>...)) is the label; "
                          "default: the parent folder name")
    group_pattern: str | None = Field(
        None, description="regex giving a group id (e.g. writer or source expression) kept on one side of the split")
    croissant: str | None = Field(None, description="local Croissant JSON-LD file describing the data")
    max_member_mb: float = Field(16.0, gt=0, description="members larger than this (MiB, uncompressed) are skipped "
                                                         "as too large, never read whole")

    @field_validator("label_pattern", "group_pattern")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return _check_regex(value)


class GroupFileParams(Params):
    """Groups from a CSV metadata file (see mathsym_zoo.data.groups)."""

    group_file: str | None = Field(
        None, description="CSV mapping a key (the group_pattern match, member path or file stem) to a group id, "
                          "e.g. expression -> writer; relative to the registry file")
    group_key_column: str | None = Field(None, description="key column of group_file; default: the first")
    group_column: str | None = Field(None, description="group column of group_file; default: the second")
    group_missing: Literal["own-group", "refuse"] = Field(
        "own-group", description="members group_file does not list: each gets its own group (counted in the "
                                 "ingest report), or the ingest stops and lists them")


class ArchiveParams(GroupFileParams, PatternParams):
    path: str = Field("", description="a .zip, .tar, .tar.gz, .tar.bz2, .tar.xz or .rar file, or a folder of images")


class ArchiveSource:
    """Images read from one local archive or folder."""

    kind = "archive"

    def __init__(self, path: Path, *, label_pattern: str | None = None, group_pattern: str | None = None,
                 croissant: Path | None = None, cache_dir: Path | None = None, origin: str | None = None,
                 max_member_mb: float = 16.0, group_file: GroupFileSpec | None = None) -> None:
        self.path = Path(path)
        self.group_file = group_file
        self._assigner = None  # counts of the last records() pass, for the ingest report
        self.label_pattern = label_pattern
        self.group_pattern = group_pattern
        self.croissant = croissant
        self.cache_dir = cache_dir
        self.origin = origin or str(path)  # what the user wrote, for messages
        self.max_member_bytes = int(max_member_mb * 2**20)
        self._fingerprint: str | None = None

    def check(self) -> None:
        """The path exists and is a supported archive or folder (reads a few header bytes, no data)."""
        self._exists()
        from mathsym_zoo.data.archives import detect_format

        detect_format(self.path)
        if self.group_file is not None:
            self.group_file.read()  # a small CSV: a missing file or column is named before any ingest

    def _exists(self) -> None:
        if not self.path.exists():
            raise DataError(
                f"archive source: {self.origin!r} (resolved to {str(self.path)!r}) does not exist; set `path` "
                "of the source to a .zip/.tar/.rar file or an image folder (relative paths are relative to the "
                "registry's folder; for the shipped registry, the current folder). Real handwriting in this layout: the Kaggle 'Handwritten math symbols dataset' "
                "(`--source kaggle`, or download its data.rar and pass `--source data.rar`); offline, "
                "`--source demo` works everywhere")

    @property
    def format(self) -> str:
        from mathsym_zoo.data.archives import detect_format

        self._exists()
        return detect_format(self.path)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from mathsym_zoo.data.archives import file_sha256, folder_signature

            fmt = self.format
            if fmt == "folder":
                self._fingerprint = f"folder:{folder_signature(self.path)}"
            else:
                self._fingerprint = f"{fmt}:sha256:{file_sha256(self.path, self.cache_dir)}"
            if self.group_file is not None:
                self._fingerprint += f"|{self.group_file.fingerprint()}"
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "format": self.format,
                "label_pattern": self.label_pattern, "group_pattern": self.group_pattern,
                **(self.group_file.describe() if self.group_file else {}), "fingerprint": self.fingerprint()}

    def size_hint(self) -> int | None:
        """Number of members (for the progress bar) when cheap to know."""
        from mathsym_zoo.data.archives import count_members

        return count_members(self.path)

    def records(self) -> Iterator:
        from mathsym_zoo.data.archives import archive_records

        self._exists()
        records = archive_records(self.path, label_pattern=self.label_pattern, group_pattern=self.group_pattern,
                                  max_member_bytes=self.max_member_bytes)
        if self.group_file is None:
            return records
        self._assigner = self.group_file.assigner()
        return self._assigner.assign(records)

    def notes(self) -> list[str]:
        """Lines for the ingest report (group-file matching), after records() ran."""
        return self._assigner.notes() if self._assigner is not None else []

    def record_table(self):
        """Context manager: the records by position, so ingest workers read their own share;
        None with a group_file, whose groups are assigned (and counted) over the whole stream."""
        import contextlib

        from mathsym_zoo.data.archives import record_table

        self._exists()
        if self.group_file is not None:
            return contextlib.nullcontext()
        return record_table(self.path, label_pattern=self.label_pattern, group_pattern=self.group_pattern,
                            max_member_bytes=self.max_member_bytes)

    def metadata(self) -> dict[str, Any] | None:
        if self.croissant is None:
            return None
        from mathsym_zoo.croissant import read_croissant

        return read_croissant(self.croissant)


def build_archive(params: ArchiveParams, context: BuildContext) -> ArchiveSource:
    if not params.path:
        raise DataError("archive source: `path` is not set; add e.g. path = \"data/symbols.zip\" to its "
                        "[sources.NAME] table (a .zip/.tar/.rar file or an image folder)")
    return ArchiveSource(
        context.resolve(params.path),
        label_pattern=params.label_pattern,
        group_pattern=params.group_pattern,
        croissant=context.resolve(params.croissant) if params.croissant else None,
        cache_dir=context.cache_dir,
        origin=params.path,
        max_member_mb=params.max_member_mb,
        group_file=GroupFileSpec(context.resolve(params.group_file), params.group_key_column, params.group_column,
                                 params.group_missing, origin=params.group_file) if params.group_file else None,
    )


@hookimpl
def register_sources(register):
    register("archive", summary="Images in a local .zip, .tar(.gz/.bz2/.xz) or .rar file or a folder; "
                                "label = parent folder (or a regex).",
             params=ArchiveParams, factory=build_archive)
