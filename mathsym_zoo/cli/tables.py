"""Tables that fit: rich on a terminal (dropping columns that do not fit), plain aligned text elsewhere.

A column is a :class:`Column`; ``keep`` ranks what a narrow terminal gives up
first (lower goes first). Cells are plain text (never rich markup).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence


@dataclasses.dataclass(frozen=True)
class Column:
    header: str
    key: str
    keep: int = 100  # narrow terminals drop the lowest first; names keep 100
    no_wrap: bool = False  # names: never broken over two lines
    right: bool = False


def _plain(value: Any) -> str:
    return " ".join(str(value).splitlines()) if value is not None else "-"


def plain_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]], *, header: bool = True) -> str:
    """Aligned text, one line per row (for pipes, files and CI logs)."""
    cells = ([[c.header for c in columns]] if header else []) + [[_plain(r.get(c.key)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [text.rjust(w) if c.right else text.ljust(w) for c, text, w in zip(columns, line, widths)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(row: dict[str, Any], column: Column) -> str:
    value = row.get(column.key)
    return str(value) if value is not None else "-"


def _min_width(column: Column, rows: Sequence[dict[str, Any]]) -> int:
    """The narrowest the column can be without breaking a word (or a line, for ``no_wrap``)."""
    texts = [column.header] + [_cell(r, column) for r in rows]
    pieces = [line for t in texts for line in t.splitlines()] if column.no_wrap else \
        [w for t in texts for w in t.split()]
    return max(map(len, pieces), default=1)


def rich_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]], *, width: int, title: str | None = None):
    """A rich Table no wider than ``width`` that breaks no word: columns are dropped, lowest ``keep``
    first, until the narrowest such table fits."""
    from rich.table import Table
    from rich.text import Text

    mins = {c.key: _min_width(c, rows) for c in columns}
    shown = list(columns)
    # Each column costs its text plus " | " (padding and a border); one more border closes the row.
    while sum(mins[c.key] + 3 for c in shown) + 1 > width and any(c.keep < 100 for c in shown):
        shown.remove(min((c for c in shown if c.keep < 100), key=lambda c: c.keep))
    table = Table(title=title, title_justify="left")
    for c in shown:
        table.add_column(c.header, no_wrap=c.no_wrap, overflow="fold", min_width=mins[c.key],
                         justify="right" if c.right else "left")
    for r in rows:
        table.add_row(*(Text(_cell(r, c)) for c in shown))
    return table


def print_table(console, columns: Sequence[Column], rows: Sequence[dict[str, Any]], *, title: str | None = None):
    """A table on ``console``: rich when it is a terminal, plain aligned text otherwise."""
    if console.is_terminal:
        console.print(rich_table(columns, rows, width=console.width, title=title))
        return
    if title:
        print(title, file=console.file)
    print(plain_table(columns, rows), file=console.file)
