"""Request bodies of the JSON API, their limits, and stroke rendering.

Strokes are lists of ``[x, y]`` points in any unit (the page sends canvas
pixels); the server renders them like the dataset's images, so limits here
bound the work a request can ask for, not the drawing's size on screen.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..ink import render

MAX_BODY_BYTES = 256 * 1024
MAX_STROKES = 100
MAX_POINTS_PER_STROKE = 2_000
MAX_POINTS = 10_000
MAX_COORDINATE = 100_000.0
MAX_TOP_K = 100

Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
Point = tuple[Coordinate, Coordinate]
Stroke = Annotated[list[Point], Field(min_length=1, max_length=MAX_POINTS_PER_STROKE)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strokes: Annotated[list[Stroke], Field(min_length=1, max_length=MAX_STROKES)]

    @model_validator(mode="after")
    def _few_points(self):
        total = sum(len(s) for s in self.strokes)
        if total > MAX_POINTS:
            raise ValueError(f"{total} points in all; at most {MAX_POINTS} are accepted")
        return self

    def image(self) -> np.ndarray:
        """The strokes rendered as the dataset's images were: uint8 (45, 45)."""
        return render([np.asarray(s, dtype=np.float64) for s in self.strokes])


class PredictBody(_Body):
    model: str | None = None
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)


class SampleBody(_Body):
    label: str = Field(min_length=1, max_length=100)


class PayloadError(ValueError):
    """A request body that cannot be used; ``str()`` is the message for the client,
    ``not_json`` tells a body that is not JSON at all from one that is the wrong JSON."""

    def __init__(self, message: str, *, not_json: bool = False) -> None:
        super().__init__(message)
        self.not_json = not_json


def parse(body_type: type[_Body], raw: bytes) -> Any:
    """Validate a JSON body, or raise :class:`PayloadError` naming each problem's place."""
    try:
        return body_type.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise PayloadError(f"body is not valid JSON ({first['msg']})", not_json=True) from None
        problems = []
        for err in exc.errors(include_url=False)[:5]:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            problems.append(f"{where or 'body'}: {err['msg']}")
        more = exc.error_count() - len(problems)
        raise PayloadError("; ".join(problems) + (f" (and {more} more)" if more > 0 else "")
                           + _hint(body_type)) from None


def _hint(body_type: type[_Body]) -> str:
    fields = ", ".join(body_type.model_fields)
    return (f". Expected a JSON object with {fields}: strokes is a list of 1-{MAX_STROKES} strokes, each a list of "
            f"1-{MAX_POINTS_PER_STROKE} [x, y] points, finite numbers within +-{MAX_COORDINATE:g}")
