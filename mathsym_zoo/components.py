"""What a plugin registers, and the small interfaces components implement."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["source", "preprocessor", "architecture"]
KINDS: tuple[Kind, ...] = ("source", "preprocessor", "architecture")
HOOK_FOR_KIND: dict[str, str] = {
    "source": "register_sources",
    "preprocessor": "register_preprocessors",
    "architecture": "register_architectures",
}


class Params(BaseModel):
    """Base class for component parameters: frozen, unknown keys rejected, floats finite."""

    # inf/nan are never a meaningful setting and poison training silently (NaN losses).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    # The job reading another [sources] entry, for sources composed of others
    # (``combine``); None where a component is built outside a job.
    source_job: Callable[[str], Any] | None = dataclasses.field(default=None, compare=False, repr=False)

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

    def graph_apply(self, image):  # tf uint8 (H, W, C) -> tf uint8 (H', W', C'), inside a tf.function
        """Optional, offline steps: the same step in TensorFlow ops, so an exported SavedModel can take
        encoded image bytes. Raise NotImplementedError (with the reason) when it cannot match ``apply``."""
        raise NotImplementedError(f"{type(self).__name__} has no TensorFlow version (graph_apply)")


def is_offline(step) -> bool:
    """The one test of a step's stage: offline steps run at ingest (and in ``predict``),
    online ones are layers inside the model. A step that says nothing is offline."""
    return getattr(step, "stage", "offline") == "offline"


# -- calling plugin code ------------------------------------------------------


def plugin_failure(component: Component, what: str, exc: BaseException):
    """The :class:`PluginError` for an exception raised by ``component``'s plugin code."""
    from .errors import PluginError

    text = " ".join(str(exc).split()) or "(no message)"
    return PluginError(f"{component.kind} {component.name!r} of plugin {component.plugin!r} failed in {what}: "
                       f"{type(exc).__name__}: {text}. This is a problem in the plugin; run with --debug for "
                       f"the traceback, or report it to the plugin's author")


@contextlib.contextmanager
def plugin_code(component: Component, what: str) -> Iterator[None]:
    """Turn an exception from plugin code into one :class:`PluginError` naming the
    plugin, the component and the message. Our own user errors (``ZooError``) pass
    unchanged; so does Ctrl-C. ``SystemExit`` is caught: a plugin must not end the program."""
    from .errors import ZooError

    try:
        yield
    except ZooError:
        raise
    except (Exception, SystemExit) as exc:
        raise plugin_failure(component, what, exc) from exc


def call_factory(component: Component, *args: Any) -> Any:
    """``component.factory(*args)``, with its exceptions made one clear error (see :func:`plugin_code`)."""
    with plugin_code(component, "its factory"):
        return component.factory(*args)


def guarded_iter(component: Component, make: Callable[[], Iterable[Any]], what: str) -> Iterator[Any]:
    """Iterate over what plugin code ``make()`` returns; an exception when making it or
    mid-stream becomes one clear error (see :func:`plugin_code`)."""
    with plugin_code(component, what):
        iterator = iter(make())
    while True:
        with plugin_code(component, what):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item
