"""``registry.toml``: pydantic models, error messages, and resolution into a Job.

A registry names dataset sources, preprocessing steps, the split, models and
training settings. :func:`resolve` validates it (each component's parameters by
its plugin's own pydantic model), applies command-line overrides and returns one
immutable :class:`Job` that the data, training and comparison code consume.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .components import BuildContext, Component, Kind, call_factory
from .errors import ConfigError
from .plugins import PluginSet

DEFAULT_REGISTRY = "registry.toml"
#: The registry shipped inside the package, used when the current folder has none.
SHIPPED_REGISTRY = Path(__file__).resolve().parent / DEFAULT_REGISTRY
#: File endings that make a ``--source`` value a path rather than a name.
ARCHIVE_SUFFIXES = (".zip", ".rar", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
ENV_CACHE = "MATHSYM_ZOO_CACHE"


class _Strict(BaseModel):
    # inf/nan (e.g. --set train.learning_rate=inf) would train to NaN losses: refuse them here.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(_Strict):
    """``[data]``: which source a job uses by default, and where caches live."""

    source: str = Field("demo", description="name of an entry in [sources] (or a source plugin)")
    cache_dir: str = Field(".mathsym-cache", description="decoded caches and split files")
    workers: int = Field(0, ge=0, description="ingest processes; 0 = one per core")


class SplitConfig(_Strict):
    """``[split]``: a stratified, duplicate- and group-aware split."""

    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    min_per_class: int = Field(
        3, ge=1, description="classes with fewer images (or groups) go entirely to train, with a warning"
    )
    group_aware: bool = Field(True, description="keep images sharing a group id on one side")

    @model_validator(mode="after")
    def _sum_to_one(self):
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


class TrainConfig(_Strict):
    """``[train]``: optimisation, stopping, devices and output folders."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay (not on biases or normalisation "
                                "scales); 0 with adamw means Keras' default 0.004")
    lr_schedule: Literal["constant", "cosine", "warmup-cosine", "plateau"] = "constant"
    warmup_epochs: float = Field(1.0, ge=0, description="warmup-cosine: epochs of linear warm-up from 0 "
                                 "(at most half of epochs: a short trial run warms up over its first half)")
    early_stopping_patience: int = Field(3, ge=0, description="0 disables early stopping")
    class_weights: bool = Field(False, description="weight the loss by inverse class frequency (see class_weight_power)")
    class_weight_power: float = Field(1.0, gt=0, le=1, description="class weight = count ** -power; 0.5 = square-root "
                                      "inverse frequency, gentler on very rare classes")
    undo_class_weights: float = Field(0.0, ge=0, le=1, description="with class_weights: the saved model adds the "
                                      "weights' log back to its outputs at inference (identity in training), so "
                                      "predictions follow the training set's class frequencies: top-1 up, macro recall "
                                      "down. true = 1 (all of it); a share in between (0.5) adds back that much")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ema: float = Field(0.0, ge=0, lt=1, description="exponential moving average of the weights (momentum per step, "
                       "e.g. 0.999); 0 = off. Validation, best.keras and last.keras use the averaged weights")
    recalibrate_batchnorm: bool = Field(True, description="re-estimate BatchNorm statistics from 512 training "
                                        "images before each validation, so validation, best.keras and early "
                                        "stopping see statistics that fit the weights (training is unchanged)")
    train_on_val: bool = Field(False, description="also train on the validation side: the final fit of a recipe "
                               "already chosen on validation (more writers, same test side). The kept model is "
                               "the last epoch, and `evaluate --side val` refuses the run: its validation images "
                               "are training images")
    deterministic: bool = Field(True, description="TensorFlow op determinism: the same seed gives the same run")
    seed: int = 0
    ensemble: int = Field(1, ge=1, le=16, description="train N copies with seeds seed*N .. seed*N+N-1 and average "
                          "their probabilities into one model (N times the training and inference time)")
    device: Literal["auto", "cpu", "gpu"] = "auto"
    strategy: Literal["auto", "one-device", "mirrored", "multi-worker"] = "auto"
    mixed_precision: Literal["auto", "on", "off"] = Field("auto", description="auto = float16 compute on GPU only")
    xla: Literal["auto", "on", "off"] = Field("auto", description="auto = jit_compile on GPU only")
    runs_dir: str = "runs"
    comparisons_dir: str = "comparisons"

    @model_validator(mode="after")
    def _recipe(self):
        if self.undo_class_weights and not self.class_weights:
            raise ValueError("undo_class_weights undoes class_weights at inference: set class_weights = true, "
                             "or remove undo_class_weights")
        if self.ensemble > 1 and self.strategy == "multi-worker":
            raise ValueError("ensemble trains its members one after another on this machine; use strategy "
                             "'auto', 'one-device' or 'mirrored', or train the members with `compare --seeds N` "
                             "and average them with `mathsym-zoo ensemble`")
        if self.train_on_val and (self.early_stopping_patience or self.lr_schedule == "plateau"):
            raise ValueError("train_on_val trains on the validation images, so they cannot stop training or "
                             "steer the learning rate: set early_stopping_patience = 0 and an lr_schedule "
                             "other than 'plateau'")
        if self.ema and self.ema < 0.9:
            raise ValueError(f"ema is the averaging momentum per step: 0 (off) or in [0.9, 1), e.g. 0.999; "
                             f"got {self.ema:g}")
        return self


#: [train] keys that say where results go, not how the model was trained.
NOT_RECIPE = ("runs_dir", "comparisons_dir")


def recipe_diff(train: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ``[train]`` setting of a run that differs from the default: ``{key: {value, default}}``."""
    defaults = TrainConfig().model_dump(mode="json")
    return {k: {"value": v, "default": defaults.get(k)} for k, v in sorted(train.items())
            if k not in NOT_RECIPE and (k not in defaults or defaults[k] != v)}


class RegistryFile(_Strict):
    """The whole file. Component tables are checked against their plugins later."""

    plugin_paths: list[str] = Field(default_factory=list)
    data: DataConfig = Field(default_factory=DataConfig)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    preprocessing: list[dict[str, Any]] = Field(default_factory=list)
    split: SplitConfig = Field(default_factory=SplitConfig)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    train: TrainConfig = Field(default_factory=TrainConfig)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A component entry of the registry with validated parameters."""

    section: str  # TOML path, e.g. "models.resnet"
    name: str  # entry name, e.g. "resnet"
    component: Component
    params: BaseModel

    @property
    def type(self) -> str:
        return self.component.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "plugin": self.component.plugin,
                "params": self.params.model_dump(mode="json")}


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything one training or comparison run needs, fully resolved."""

    registry_path: Path | None
    root: Path
    source: Resolved
    preprocessing: tuple[Resolved, ...]
    split: SplitConfig
    models: tuple[Resolved, ...]
    train: TrainConfig
    cache_dir: Path
    workers: int
    plugins: PluginSet = dataclasses.field(repr=False, compare=False)
    # Every [sources] entry, resolved, for sources composed of others; `via` names
    # the composed sources this job is a part of (a cycle is an error).
    sources: dict[str, Resolved] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    via: tuple[str, ...] = ()

    @property
    def context(self) -> BuildContext:
        return BuildContext(root=self.root, cache_dir=self.cache_dir, source_job=self.source_job)

    def source_job(self, name: str) -> "Job":
        """This job reading the [sources] entry ``name`` instead (a part of a composed source)."""
        chain = (*self.via, self.source.name)
        if name in chain:
            raise ConfigError(f"sources.{self.source.name}: source {name!r} includes itself "
                              f"({' -> '.join((*chain, name))}); remove it from the list")
        if name not in self.sources:
            known = ", ".join(sorted(self.sources)) or "(none)"
            raise ConfigError(f"sources.{self.source.name}: unknown source {name!r}; "
                              f"[sources] entries: {known}. List entries of the registry")
        return dataclasses.replace(self, source=self.sources[name], via=chain)

    @property
    def runs_dir(self) -> Path:
        return self.context.resolve(self.train.runs_dir)

    @property
    def comparisons_dir(self) -> Path:
        return self.context.resolve(self.train.comparisons_dir)

    def build_source(self):
        """The source, its plugin's exceptions reported as one clear error (``GuardedSource``)."""
        from .sources import GuardedSource

        component = self.source.component
        return GuardedSource(call_factory(component, self.source.params, self.context), component)

    def build_preprocessors(self) -> list:
        return [call_factory(p.component, p.params) for p in self.preprocessing]

    def model(self, name: str) -> Resolved:
        """A model entry by name; a bare architecture name gets its defaults."""
        for m in self.models:
            if m.name == name:
                return m
        if name in self.plugins.components["architecture"]:
            comp = self.plugins.components["architecture"][name]
            return Resolved(f"models.{name}", name, comp, comp.params())
        known = [m.name for m in self.models]
        comp = self.plugins.get("architecture", name, where=f"model {name!r}")  # raises with hints
        return Resolved(f"models.{name}", name, comp, comp.params())  # pragma: no cover

    def with_models(self, names: Iterable[str]) -> "Job":
        return dataclasses.replace(self, models=tuple(self.model(n) for n in names))

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry": str(self.registry_path) if self.registry_path else None,
            "root": str(self.root),
            "source": self.source.to_dict(),
            "preprocessing": [p.to_dict() for p in self.preprocessing],
            "split": self.split.model_dump(mode="json"),
            "models": [m.to_dict() for m in self.models],
            "train": self.train.model_dump(mode="json"),
            "cache_dir": str(self.cache_dir),
            # The other [sources] entries: a composed source (combine) reads its parts from here.
            "sources": {name: r.to_dict() for name, r in self.sources.items() if name != self.source.name},
        }

    def data_key(self) -> dict[str, Any]:
        """What determines the decoded cache: the source and offline preprocessing."""
        return {"source": self.source.to_dict(), "preprocessing": [p.to_dict() for p in self.preprocessing]}


# -- error formatting ----------------------------------------------------------


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(model_cls: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The keys allowed in the table that holds ``loc`` (for "did you mean")."""
    node: Any = model_cls
    for part in loc[:-1]:
        fields = getattr(node, "model_fields", None)
        if not fields or part not in fields:
            return []
        node = fields[part].annotation
    fields = getattr(node, "model_fields", None)
    return sorted(fields) if fields else []


def format_validation_error(exc: ValidationError, prefix: str = "", source: str = "",
                            model_cls: type[BaseModel] | None = None) -> str:
    """One line per problem: ``where.key: what is wrong, got VALUE``."""
    import difflib

    lines = []
    for err in exc.errors(include_url=False):
        loc = _loc(([prefix] if prefix else []) + list(err["loc"]))
        msg = err["msg"]
        if err["type"] == "value_error":
            msg = str(err.get("ctx", {}).get("error", msg))
        msg = msg[0].lower() + msg[1:] if msg else msg
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model_cls, tuple(err["loc"]))
            close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else " Check its spelling or remove it."
            known = f" Allowed keys: {', '.join(allowed)}." if allowed else ""
            lines.append(f"{loc}: unknown key.{hint}{known}")
            continue
        if err["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
            continue
        got = err.get("input")
        if isinstance(got, dict | list) and (err["type"] == "value_error" or len(json.dumps(got, default=str)) > 60):
            lines.append(f"{loc}: {msg}")
        else:
            lines.append(f"{loc}: {msg}, got {json.dumps(got, default=str)}")
    where = f"{source}: " if source else ""
    return where + ("\n".join(lines) if len(lines) == 1 else "invalid values\n  " + "\n  ".join(lines))


# -- overrides -----------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax (3, 0.5, true, [1,2], "x"), else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``key.path=value`` to the raw registry dict, in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    key, value = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key; expected KEY=VALUE, e.g. --set train.epochs=3")
    node = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            try:
                node = node[int(part)]
                continue
            except (ValueError, IndexError):
                raise ConfigError(f"--set {assignment!r}: {'.'.join(parts[:i + 1])} is not a valid list index") from None
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict | list):
            raise ConfigError(f"--set {assignment!r}: {'.'.join(parts[:i + 1])} is a value, not a table")
        node = nxt
    if isinstance(node, list):
        raise ConfigError(f"--set {assignment!r}: cannot set a key inside a list; use an index, e.g. preprocessing.1.size")
    node[parts[-1]] = parse_value(value.strip())


# -- loading -------------------------------------------------------------------


def find_registry(path: str | Path | None = None) -> Path:
    """The registry to use: ``path``, else ./registry.toml, else the one shipped with the package."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"registry file {str(p)!r} not found; pass an existing file or run from the project folder")
        return p
    here = Path.cwd() / DEFAULT_REGISTRY
    if here.is_file():
        return here
    if SHIPPED_REGISTRY.is_file():
        return SHIPPED_REGISTRY
    raise ConfigError(f"no {DEFAULT_REGISTRY} in {Path.cwd()}; pass --registry PATH")


def registry_root(path: Path) -> Path:
    """Where a registry's relative paths point: its folder; for the shipped one, the current folder
    (runs, caches and data belong to the user, not to the installed package)."""
    return Path.cwd() if path.resolve() == SHIPPED_REGISTRY else path.parent


def looks_like_path(text: str) -> bool:
    """A ``--source`` value naming a file or folder rather than a registry entry."""
    return ("/" in text or os.sep in text or text.startswith(("~", "."))
            or text.lower().endswith(ARCHIVE_SUFFIXES) or Path(text).exists())


def path_source(text: str) -> tuple[str, dict[str, Any]]:
    """``--source PATH``: an ``archive`` source with defaults, named after the file."""
    path = Path(text).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"--source {text!r}: no such file or folder ({str(path)!r}); pass a .zip/.tar/.rar "
                          "archive or an image folder in the extracted_images/<label>/ layout, or a source name "
                          "(`mathsym-zoo check` lists them)")
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[:-len(suffix)]
            break
    return name, {"type": "archive", "path": str(path)}


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read registry {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"registry {str(path)!r} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}. Fix the syntax at that line.") from None


def _pop_source_train(raw: dict[str, Any], label: str) -> dict[str, dict[str, Any]]:
    """Remove each ``[sources.NAME.train]`` table from ``raw``; return them by source name."""
    tables = {}
    sources = raw.get("sources")
    for name, table in (sources.items() if isinstance(sources, dict) else ()):
        if isinstance(table, dict) and "train" in table:
            train = table.pop("train")
            if not isinstance(train, dict):
                raise ConfigError(f"{label}: sources.{name}.train: expected a table of [train] settings, "
                                  f"e.g. [sources.{name}.train] with epochs = 30")
            tables[name] = train
    return tables


def _pop_recipes(raw: dict[str, Any], label: str) -> dict[str, dict[str, Any]]:
    """Remove the ``[recipes]`` tables from ``raw``; return them by recipe name."""
    recipes = raw.pop("recipes", {})
    if not isinstance(recipes, dict) or not all(isinstance(t, dict) for t in recipes.values()):
        raise ConfigError(f"{label}: recipes: expected one table of [train] settings per recipe, "
                          "e.g. [recipes.final-fit] with train_on_val = true")
    return recipes


def _with_source_train(raw: dict[str, Any], overrides: list[str], source: str | None,
                       label: str, recipe: str | None = None) -> dict[str, Any]:
    """``raw`` with ``--set`` applied, and the chosen source's ``[sources.NAME.train]`` and
    the chosen ``[recipes.NAME]`` merged into ``[train]``.

    A source may carry its own training settings (a big real set trains longer than
    the demo) over the global ``[train]``; a recipe (``--recipe``) goes over both, so
    one command names a variant such as the final fit; ``--set train.KEY`` wins over all.
    """
    probe = copy.deepcopy(raw)  # overrides may change data.source or a source's train table
    for assignment in overrides:
        apply_override(probe, assignment)
    data = probe.get("data")
    name = source or (data.get("source") if isinstance(data, dict) else None) or DataConfig().source
    tables = _pop_source_train(probe, label)
    recipes = _pop_recipes(probe, label)
    _check_train_tables(tables, "sources.{}.train", probe.get("train"), label)
    _check_train_tables(recipes, "recipes.{}", probe.get("train"), label)
    merged = copy.deepcopy(raw)
    _pop_source_train(merged, label)
    _pop_recipes(merged, label)
    base = merged.get("train", {})
    if isinstance(base, dict):
        merged["train"] = {**base, **tables.get(name, {}), **_recipe(recipes, recipe, label)}
    for assignment in overrides:
        apply_override(merged, assignment)
    _pop_source_train(merged, label)  # a --set sources.NAME.train.KEY is already in `tables`
    merged.pop("recipes", None)  # likewise a --set recipes.NAME.KEY
    return merged


def _recipe(recipes: dict[str, dict[str, Any]], name: str | None, label: str) -> dict[str, Any]:
    """The ``[recipes.NAME]`` table chosen with ``--recipe``; none chosen: no settings."""
    if name is None:
        return {}
    if name not in recipes:
        import difflib

        close = difflib.get_close_matches(name, list(recipes), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"--recipe: unknown recipe {name!r} in {label}.{hint} Recipes: "
                          f"{', '.join(sorted(recipes)) or '(none)'}. Add a [recipes.{name}] table of "
                          "[train] settings, or leave out --recipe")
    return recipes[name]


def _check_train_tables(tables: dict[str, dict[str, Any]], where: str, base: Any, label: str) -> None:
    """Validate every key of every source's train table and recipe, so `check` catches unused ones too.

    Each is read over ``[train]`` (unless ``[train]`` itself is invalid: its own error comes
    later). Rules between keys (``undo_class_weights`` needs ``class_weights``) are left to
    the merged ``[train]``: an unused recipe must not block a ``--set`` that its base allows.
    """
    try:
        TrainConfig.model_validate(base if isinstance(base, dict) else {})
    except ValidationError:
        base = {}
    for name, table in tables.items():
        try:
            TrainConfig.model_validate({**base, **table})
        except ValidationError as exc:
            if all(not error["loc"] for error in exc.errors()):  # only rules between keys
                continue
            raise ConfigError(format_validation_error(exc, prefix=where.format(name), source=label,
                                                      model_cls=TrainConfig)) from None


def _resolve_component(plugins: PluginSet, kind: Kind, section: str, name: str, table: Any, source: str) -> Resolved:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {section}: expected a table of parameters, got {json.dumps(table, default=str)}")
    table = dict(table)
    explicit = "type" in table
    type_name = table.pop("type", name)
    if not isinstance(type_name, str):
        raise ConfigError(f"{source}: {section}.type: expected the {kind} name as a string, got {json.dumps(type_name)}")
    component = plugins.get(kind, type_name, where=f"{source}: {section}.type" if explicit else f"{source}: {section}")
    try:
        params = component.params(**table)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix=section, source=source, model_cls=component.params)) from None
    return Resolved(section, name, component, params)


def resolve(
    path: str | Path | None = None,
    *,
    overrides: Iterable[str] = (),
    source: str | None = None,
    recipe: str | None = None,
    plugin_dirs: Iterable[str | Path] = (),
    strict: bool | None = None,
    plugins: PluginSet | None = None,
    raw: dict[str, Any] | None = None,
    root: str | Path | None = None,
) -> Job:
    """Read, validate and resolve a registry into a :class:`Job`.

    ``overrides`` are ``key.path=value`` strings (``--set``), ``source`` picks a
    ``[sources]`` entry (or a source plugin with its defaults), ``recipe`` a
    ``[recipes]`` entry merged over ``[train]`` (see :func:`_with_source_train`), ``plugin_dirs``
    adds local plugin files or folders (``--plugins-dir``). ``raw`` passes an
    already-parsed registry (tests, API users) instead of a file; ``root`` is
    where relative paths point (default: see :func:`registry_root`).
    """
    if raw is None:
        reg_path: Path | None = find_registry(path).resolve()
        raw = read_toml(reg_path)
        label = reg_path.name
    else:
        reg_path = Path(path).resolve() if path else None
        label = reg_path.name if reg_path else "registry"
        raw = copy.deepcopy(raw)
    root = Path(root) if root is not None else registry_root(reg_path) if reg_path else Path.cwd()
    raw = _with_source_train(raw, list(overrides), source, label, recipe)
    try:
        reg = RegistryFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=label, model_cls=RegistryFile)) from None

    paths = [root / p for p in reg.plugin_paths] + [Path(p) for p in plugin_dirs]
    if plugins is None:
        plugins = PluginSet(paths, strict=strict)
    else:
        for p in paths:
            plugins.load_path(p)
        plugins._collect()

    source_name = source or reg.data.source
    if source_name in reg.sources:
        src = _resolve_component(plugins, "source", f"sources.{source_name}", source_name, reg.sources[source_name], label)
    elif source_name in plugins.components["source"]:
        src = _resolve_component(plugins, "source", f"sources.{source_name}", source_name, {}, label)
    elif source and looks_like_path(source):
        source_name, table = path_source(source)
        src = _resolve_component(plugins, "source", f"sources.{source_name}", source_name, table, label)
    else:
        known = sorted(set(reg.sources) | set(plugins.components["source"]))
        import difflib

        close = difflib.get_close_matches(source_name, known, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = "--source" if source else f"{label}: data.source"
        raise ConfigError(
            f"{where}: unknown source {source_name!r}.{hint} Sources in the registry: "
            f"{', '.join(sorted(reg.sources)) or '(none)'}; source plugins: "
            f"{', '.join(sorted(plugins.components['source'])) or '(none)'}. Add a [sources.{source_name}] table to the registry, "
            "or pass a path (--source data.rar, --source extracted_images/)."
        )
    # Validate every source entry, so `check` catches mistakes in unused ones too.
    sources = {src.name: src}
    for name, table in reg.sources.items():
        if name != source_name:
            sources[name] = _resolve_component(plugins, "source", f"sources.{name}", name, table, label)

    steps = []
    for i, table in enumerate(reg.preprocessing):
        if "type" not in table:
            raise ConfigError(f"{label}: preprocessing[{i}]: missing `type` (a preprocessor name, e.g. type = \"resize_pad\")")
        steps.append(_resolve_component(plugins, "preprocessor", f"preprocessing[{i}]", table["type"], table, label))
    models = tuple(
        _resolve_component(plugins, "architecture", f"models.{name}", name, table, label)
        for name, table in reg.models.items()
    )
    cache_dir = Path(os.environ.get(ENV_CACHE) or reg.data.cache_dir).expanduser()
    if not cache_dir.is_absolute():
        cache_dir = root / cache_dir
    return Job(
        registry_path=reg_path,
        root=root,
        source=src,
        preprocessing=tuple(steps),
        split=reg.split,
        models=models,
        train=reg.train,
        cache_dir=cache_dir,
        workers=reg.data.workers,
        plugins=plugins,
        sources=sources,
    )


def fingerprint(obj: Any) -> str:
    """A stable sha256 of a JSON-able object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
