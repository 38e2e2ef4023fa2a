"""Plugin discovery: entry points, local plugin files, in-process objects.

Built-in components live in ``plugins/`` (installed as ``mathsym_zoo_plugins``)
and are found through the ``mathsym_zoo`` entry-point group, exactly like
third-party packages. A plugin that fails to import, or raises inside a hook,
is reported once and skipped; ``strict`` turns that into a :class:`PluginError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Iterable

import pluggy
from pydantic import BaseModel

from . import hookspecs
from .components import HOOK_FOR_KIND, KINDS, Component, Kind, plugin_code
from .errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "mathsym_zoo"
#: Comma-separated plugin names: when set, only these plugins load.
ENV_ONLY = "MATHSYM_ZOO_PLUGINS"
#: "1"/"true": a broken plugin is an error instead of a warning.
ENV_STRICT = "MATHSYM_ZOO_STRICT"

hookimpl = pluggy.HookimplMarker("mathsym_zoo")


@dataclasses.dataclass
class PluginInfo:
    """What ``mathsym-zoo plugins`` shows for one plugin."""

    name: str
    version: str | None
    origin: str  # "entry point (dist)", a file path, or "in-process"
    hooks: list[str] = dataclasses.field(default_factory=list)
    components: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    builtin: bool = False


@dataclasses.dataclass(frozen=True)
class PluginProblem:
    """A plugin that was skipped, and why."""

    plugin: str
    where: str
    error: str

    def message(self) -> str:
        return f"plugin {self.plugin!r} ({self.where}) was skipped: {self.error}"


def env_strict() -> bool:
    return os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes", "on"}


def env_only() -> set[str] | None:
    raw = os.environ.get(ENV_ONLY, "").strip()
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _short_error(exc: BaseException) -> str:
    """The error and the plugin-side line that raised it, on one line."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{type(exc).__name__}: {exc.msg} ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" ({last.filename}, line {last.lineno})"
    return text


class _Interrupts:
    """Tells a real Ctrl-C apart from a plugin raising KeyboardInterrupt itself."""

    def __init__(self) -> None:
        self.real = False

    @contextlib.contextmanager
    def watch(self):
        previous = signal.getsignal(signal.SIGINT)
        if (threading.current_thread() is not threading.main_thread()
                or previous is None or previous == signal.SIG_IGN):
            yield self  # handlers are set from Python in the main thread only; an ignored Ctrl-C stays ignored
            return

        def on_sigint(signum, frame):
            self.real = True
            if callable(previous) and previous != signal.SIG_DFL:
                previous(signum, frame)
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_sigint)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class PluginSet:
    """The loaded plugins and every component they registered."""

    def __init__(
        self,
        plugin_paths: Iterable[str | Path] = (),
        *,
        strict: bool | None = None,
        only: set[str] | None = None,
        entry_points: bool = True,
    ) -> None:
        self.strict = env_strict() if strict is None else strict
        self.only = env_only() if only is None else only
        self.pm = pluggy.PluginManager("mathsym_zoo")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.problems: list[PluginProblem] = []
        self.available: set[str] = set()  # every plugin name seen, loaded or filtered out
        self.components: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        if entry_points:
            self._load_entry_points()
        for path in plugin_paths:
            self.load_path(path)
        self._collect()

    # -- loading ---------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        self.available.add(name)
        return self.only is None or name in self.only

    def filter_note(self) -> str | None:
        """What MATHSYM_ZOO_PLUGINS hid, when it names plugins that do not exist."""
        if self.only is None:
            return None
        unknown = sorted(self.only - self.available)
        if not unknown:
            return None
        loaded = sorted(self.infos)
        return (f"{ENV_ONLY}={','.join(sorted(self.only))} loads only the plugins named there, and "
                f"{', '.join(map(repr, unknown))} matched no plugin; "
                + (f"loaded: {', '.join(loaded)}" if loaded else "so no plugin at all is loaded")
                + f". Available plugins: {', '.join(sorted(self.available)) or '(none)'}. "
                f"Fix the names or unset {ENV_ONLY}")

    def _run_plugin_code(self, plugin: str, where: str, code, what: str) -> bool:
        """Run a plugin's import or hook; True when it ran. Its exceptions, ``SystemExit``
        and a ``KeyboardInterrupt`` it raises itself skip the plugin; a real Ctrl-C stops."""
        interrupts = _Interrupts()
        with interrupts.watch():
            try:
                code()
                return True
            except KeyboardInterrupt:
                if interrupts.real:
                    raise
                self._problem(plugin, where, f"raised KeyboardInterrupt {what}")
            except SystemExit as exc:
                self._problem(plugin, where, f"called sys.exit({exc.code!r}) {what}")
            except PluginError as exc:
                self._problem(plugin, where, str(exc))
            except Exception as exc:
                self._problem(plugin, where, exc)
        return False

    def _problem(self, plugin: str, where: str, exc: BaseException | str) -> None:
        error = exc if isinstance(exc, str) else _short_error(exc)
        problem = PluginProblem(plugin, where, error)
        if self.strict:
            raise PluginError(problem.message().replace("was skipped", "failed") +
                              f"\n(strict mode: unset {ENV_STRICT} / drop --strict to skip broken plugins)")
        self.problems.append(problem)

    def _add(self, obj: Any, name: str, info: PluginInfo) -> None:
        if self.pm.is_registered(obj) or self.pm.has_plugin(name):
            return
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:  # pluggy validates hookimpl signatures
            self._problem(name, info.origin, exc)
            return
        info.hooks = sorted(c.name for c in self.pm.get_hookcallers(obj) or ())
        self.infos[name] = info

    def _load_entry_points(self) -> None:
        names: dict[int, tuple[str, str]] = {}  # reading a METADATA file costs; once per distribution
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if not self._wanted(ep.name):
                continue
            dist = ep.dist
            if dist is not None and id(dist) not in names:
                meta = dist.metadata
                names[id(dist)] = (meta["Name"], meta["Version"])
            dist_name, dist_version = names[id(dist)] if dist is not None else (None, None)
            origin = f"entry point {ep.value}" + (f" ({dist_name})" if dist else "")
            loaded: list[Any] = []
            if not self._run_plugin_code(ep.name, origin, lambda: loaded.append(ep.load()), "while importing"):
                continue
            module = loaded[0]
            builtin = ep.value.startswith("mathsym_zoo_plugins")
            self._add(module, ep.name, PluginInfo(ep.name, dist_version, origin, builtin=builtin))

    def load_path(self, path: str | Path) -> None:
        """Load a plugin file, or every ``*.py`` file in a folder."""
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file():
            files = [path]
        else:
            raise ConfigError(
                f"plugin path {str(path)!r} does not exist; fix `plugin_paths` in the registry "
                "or the --plugins-dir option"
            )
        for file in files:
            name = file.stem
            if not self._wanted(name):
                continue
            module_name = f"mathsym_zoo_local_{abs(hash(str(file.resolve()))):x}_{name}"
            spec = importlib.util.spec_from_file_location(module_name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # so pickling and dataclasses work
            ok = False
            try:
                ok = self._run_plugin_code(name, str(file), lambda: spec.loader.exec_module(module), "while importing")
            finally:
                if not ok:
                    sys.modules.pop(module_name, None)
            if not ok:
                continue
            self._add(module, name, PluginInfo(name, getattr(module, "__version__", None), str(file)))

    def register(self, obj: Any, name: str | None = None) -> None:
        """Register an in-process plugin object (a module, class or instance)."""
        name = name or getattr(obj, "__name__", None) or type(obj).__name__
        self._add(obj, name, PluginInfo(name, getattr(obj, "__version__", None), "in-process"))
        self._collect()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._collect()

    # -- collecting components -------------------------------------------

    def _collect(self) -> None:
        self.components = {k: {} for k in KINDS}
        for info in self.infos.values():
            info.components = []
        for kind in KINDS:
            hook_name = HOOK_FOR_KIND[kind]
            caller = getattr(self.pm.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                plugin = impl.plugin_name
                found: list[Component] = []

                def register(name, *, summary, params, factory, _kind=kind, _plugin=plugin, _found=found):
                    _found.append(_check_component(_kind, name, summary, params, factory, _plugin))

                where = self.infos[plugin].origin if plugin in self.infos else "?"
                if not self._run_plugin_code(plugin, where, lambda: impl.function(register=register),
                                             f"in its {hook_name} hook"):
                    continue
                for comp in found:
                    other = self.components[kind].get(comp.name)
                    if other is not None:
                        raise PluginError(
                            f"{kind} {comp.name!r} is registered twice: by plugin {other.plugin!r} and by "
                            f"plugin {comp.plugin!r}; rename one of them, or disable a plugin with "
                            f"{ENV_ONLY}=<comma-separated plugins to load>"
                        )
                    self.components[kind][comp.name] = comp
                    if plugin in self.infos:
                        self.infos[plugin].components.append((kind, comp.name))

    # -- queries ---------------------------------------------------------

    def list(self, kind: Kind, pattern: str | None = None) -> list[Component]:
        comps = sorted(self.components[kind].values(), key=lambda c: c.name)
        if pattern:
            comps = [c for c in comps if fnmatch.fnmatchcase(c.name, pattern)]
        return comps

    def get(self, kind: Kind, name: str, *, where: str | None = None) -> Component:
        """The component ``name``, or a ConfigError listing what is registered."""
        try:
            return self.components[kind][name]
        except KeyError:
            pass
        known = sorted(self.components[kind])
        import difflib

        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        prefix = f"{where}: " if where else ""
        if self.only is not None:  # the filter may be why nothing matches
            note = self.filter_note() or f"{ENV_ONLY}={','.join(sorted(self.only))} limits which plugins load"
            hint += f" ({note}.)"
        raise ConfigError(
            f"{prefix}unknown {kind} {name!r}.{hint} Registered {kind}s: {', '.join(known) or '(none)'}. "
            f"A new {kind} is made known by a plugin: a file in `plugin_paths` (or --plugins-dir) "
            f"or an installed package with a `{ENTRY_POINT_GROUP}` entry point."
        )

    def register_keras_classes(self) -> None:
        """Let components define their custom Keras classes (a factory's optional
        ``register_keras_classes()``): a saved model loads with safe_mode=True only
        when Keras knows them. Call before loading a .keras file in a fresh process."""
        for kind in ("preprocessor", "architecture"):
            for component in self.components[kind].values():
                register = getattr(component.factory, "register_keras_classes", None)
                if callable(register):
                    with plugin_code(component, "register_keras_classes()"):
                        register()

    def plugins(self, *, include_builtin: bool = True) -> list[PluginInfo]:
        infos = sorted(self.infos.values(), key=lambda i: (not i.builtin, i.name))
        return [i for i in infos if include_builtin or not i.builtin]


def _check_component(kind, name, summary, params, factory, plugin) -> Component:
    if not isinstance(name, str) or not name.strip():
        raise PluginError(f"register() needs a non-empty string name, got {name!r}")
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        raise PluginError(f"{kind} {name!r}: params must be a pydantic BaseModel subclass, got {params!r}")
    missing = [f for f, info in params.model_fields.items() if info.is_required()]
    if missing:
        raise PluginError(f"{kind} {name!r}: every parameter needs a default; missing for {', '.join(missing)}")
    if not callable(factory):
        raise PluginError(f"{kind} {name!r}: factory must be callable, got {factory!r}")
    return Component(kind, name, str(summary).strip().splitlines()[0] if summary else "", params, factory, plugin)
