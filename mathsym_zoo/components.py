"""What a plugin registers, and the small interfaces components implement."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["source", "preprocessor", "architecture"]
KINDS: tuple[Kind, ...] = ("source", "preprocessor", "architecture")
HOOK_FOR_KIND: dict[str, str] = {
    "source": "register_sources",
    "preprocessor": "register_preprocessors",
    "architecture": "register_architectures",
}


class Params(BaseModel):
    """Base class for component parameters: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclasses.dataclass(frozen=True)
class Component:
    """One named component registered by a plugin."""

    kind: Kind
    name: str
    summary: str
    params: type[BaseModel]
    factory: Callable[..., Any]
    plugin: str  # name of the plugin that registered it

    def defaults(self) -> dict[str, Any]:
        """Default parameters as plain JSON-able values."""
        return self.params().model_dump(mode="json")


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """Where a component is built: relative paths resolve against ``root``."""

    root: Path
    cache_dir: Path

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p)


class Preprocessor:
    """A preprocessing step built by a preprocessor factory.

    Subclasses set ``stage`` and implement :meth:`apply` (offline: runs once
    per image at ingest, in worker processes, so instances must pickle) or
    :meth:`keras_layer` (online: runs inside the model).
    """

    stage: Literal["offline", "online"] = "offline"

    def apply(self, image):  # PIL.Image -> PIL.Image
        raise NotImplementedError

    def keras_layer(self):  # -> keras.layers.Layer
        raise NotImplementedError
