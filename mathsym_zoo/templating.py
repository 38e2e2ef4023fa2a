"""Jinja2 templates shipped in ``mathsym_zoo/templates/`` (the HTML report, the model card).

A folder named by the ``MATHSYM_ZOO_TEMPLATES`` environment variable is
searched first, so a user restyles the report by copying ``report.css`` (or
any template) there and editing it; the package's files fill in the rest.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).with_name("templates")
TEMPLATES_ENV = "MATHSYM_ZOO_TEMPLATES"


@functools.lru_cache(maxsize=8)
def _environment(user_dir: str, autoescape: bool):
    import jinja2

    dirs = ([user_dir] if user_dir else []) + [str(TEMPLATES_DIR)]
    # StrictUndefined: a misspelt field in a user's template is an error, not an empty cell.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(dirs), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["md"] = markdown_cell
    return env


def markdown_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: ``|`` escaped, one line."""
    return " ".join(str("-" if value is None else value).split()).replace("|", "\\|")


def render(name: str, context: dict[str, Any], *, autoescape: bool = True) -> str:
    """Render template ``name``; HTML templates are autoescaped, Markdown ones are not."""
    import jinja2

    from .errors import ConfigError

    user_dir = os.environ.get(TEMPLATES_ENV, "")
    try:
        return _environment(user_dir, autoescape).get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        where = f"{getattr(exc, 'filename', None) or name}" + (f":{lineno}" if lineno else "")
        hint = f" (templates in {user_dir} override the shipped ones; fix or remove it)" if user_dir else ""
        raise ConfigError(f"template {where}: {type(exc).__name__}: {exc}{hint}") from None
