"""Group ids from a metadata file: which writer (or session) made each image.

A group file is a CSV with a header; one column holds a key, another the group.
A record's key is looked up as, in order: the text its source's ``group_pattern``
extracted (e.g. the expression stem), its full member path, its file stem. The
split keeps every group on one side, so a writer column gives writer-disjoint
splits. Members without an entry are counted and either get a group of their own
(``own-group``) or stop the ingest with a list of them (``refuse``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Literal

from ..errors import DataError
from ..sources import Record

MissingPolicy = Literal["own-group", "refuse"]
UNLISTED = "unlisted:"  # prefix of the own groups of members the file does not list
MAX_EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class GroupFileSpec:
    """What a source's parameters say about its group file (read lazily)."""

    path: Path
    key_column: str | None = None
    group_column: str | None = None
    missing: MissingPolicy = "own-group"
    origin: str | None = None  # what the user wrote, for messages

    def read(self) -> "GroupFile":
        return GroupFile.read(self.path, self.key_column, self.group_column, self.origin)

    def assigner(self) -> "GroupAssigner":
        return GroupAssigner(self.read(), self.missing, self.origin)

    def fingerprint(self) -> str:
        """The file's content and how it is read: equal fingerprints give equal groups."""
        table = self.read()
        return f"groups:{table.key_column}>{table.group_column}:{self.missing}:sha256:{table.sha256}"

    def describe(self) -> dict:
        return {"group_file": str(self.path), "group_key_column": self.key_column,
                "group_column": self.group_column, "group_missing": self.missing}


@dataclasses.dataclass(frozen=True)
class GroupFile:
    """A key -> group table read from a CSV file."""

    path: Path
    key_column: str
    group_column: str
    table: dict[str, str]
    sha256: str

    @classmethod
    def read(cls, path: Path, key_column: str | None = None, group_column: str | None = None,
             origin: str | None = None) -> "GroupFile":
        """Read ``path``; the columns default to the first (key) and second (group)."""
        where = f"group_file {origin or str(path)!r}"
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise DataError(f"{where}: cannot read it ({exc.strerror}); set `group_file` to a CSV file "
                            "(relative paths are relative to the registry file)") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataError(f"{where}: not UTF-8 text; save it as UTF-8 CSV") from None
        rows = csv.reader(text.splitlines())
        header = next(rows, None)
        if not header or len(header) < 2:
            raise DataError(f"{where}: needs a header row with at least two columns (key, group), got {header!r}")
        key_col = _column(header, key_column, 0, "group_key_column", where)
        group_col = _column(header, group_column, 1, "group_column", where)
        table = _table(rows, key_col, group_col, where)
        return cls(Path(path), header[key_col], header[group_col], table, hashlib.sha256(raw).hexdigest())

    def lookup(self, record: Record) -> str | None:
        """The group of ``record`` (its pattern key, then path, then stem), or None."""
        for key in (record.group, record.path, PurePosixPath(record.path.replace("\\", "/")).stem):
            if key and key in self.table:
                return self.table[key]
        return None


def _column(header: list[str], name: str | None, default: int, param: str, where: str) -> int:
    if name is None:
        return default
    if name not in header:
        raise DataError(f"{where}: no column {name!r} (columns: {', '.join(header)}); set `{param}` to one of them")
    return header.index(name)


def _table(rows: Iterable[list[str]], key_col: int, group_col: int, where: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) <= max(key_col, group_col) or not row[key_col].strip() or not row[group_col].strip():
            raise DataError(f"{where}, line {line}: missing key or group in {row!r}; fill both columns")
        key, group = row[key_col].strip(), row[group_col].strip()
        if table.setdefault(key, group) != group:
            raise DataError(f"{where}, line {line}: key {key!r} is listed twice with different groups "
                            f"({table[key]!r} and {group!r}); keep one")
    if not table:
        raise DataError(f"{where}: no rows below the header; list one key and group per line")
    return table


class GroupAssigner:
    """Sets each record's group from a :class:`GroupFile`, counting members it does not list."""

    def __init__(self, groups: GroupFile, missing: MissingPolicy = "own-group", origin: str | None = None) -> None:
        self.groups = groups
        self.missing = missing
        self.origin = origin or str(groups.path)
        self.matched = 0
        self.unlisted: list[str] = []
        self.seen_groups: set[str] = set()

    def assign(self, records: Iterable[Record]) -> Iterator[Record]:
        self.matched, self.unlisted, self.seen_groups = 0, [], set()
        for record in records:
            if record.skip or not record.label:
                yield record
                continue
            group = self.groups.lookup(record)
            if group is None:
                self.unlisted.append(record.path)
                group = UNLISTED + (record.group or record.path)  # the pattern key keeps its members together
            else:
                self.matched += 1
                self.seen_groups.add(group)
            yield dataclasses.replace(record, group=group)
        if self.unlisted and self.missing == "refuse":
            raise DataError(f"group_file {self.origin!r}: {len(self.unlisted):,} member(s) have no entry "
                            f"(e.g. {', '.join(self.unlisted[:MAX_EXAMPLES])}); add rows for them to the file, "
                            "or set group_missing = \"own-group\" to give each its own group")

    def notes(self) -> list[str]:
        """Lines for the ingest report."""
        name = self.groups.path.name
        lines = [f"groups from {name} (column {self.groups.group_column!r} by {self.groups.key_column!r}): "
                 f"{self.matched:,} members matched, {len(self.seen_groups):,} groups"]
        if self.unlisted:
            lines.append(f"{len(self.unlisted):,} member(s) not in {name} got their own group "
                         f"(group_missing = \"own-group\"), e.g. {', '.join(self.unlisted[:MAX_EXAMPLES])}")
        return lines
