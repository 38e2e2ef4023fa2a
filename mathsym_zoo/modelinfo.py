"""Generated model metadata: parameters, multiply-adds and size on disk.

Numbers are computed from the built Keras graph, never typed by hand, so the
zoo's tables cannot go stale. Building a model needs TensorFlow, so results are
cached in a JSON file (``model-info.json`` under :func:`cache_dir`) keyed by
architecture, parameters, input shape, number of classes and package version;
``mathsym-zoo models`` only reads that file and stays TensorFlow-free, and
``mathsym-zoo models --compute`` fills it.

MACs are multiply-accumulates per image of the layers that dominate inference
cost: convolutions (regular, transposed, depthwise, separable) and dense layers.
BatchNormalization folds into the preceding convolution at inference and,
like activations, pooling and additions, is not counted (the convention of the
timm and torchvision tables). A layer that holds weights but is of a kind not
counted here is listed under ``uncounted_layers`` rather than silently ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from . import __version__

#: Folder for user-level caches (model metadata); default ``~/.cache/mathsym-zoo``.
ENV_HOME = "MATHSYM_ZOO_HOME"
CACHE_FILE = "model-info.json"
DEFAULT_INPUT_SHAPE = (45, 45, 1)
DEFAULT_NUM_CLASSES = 82
MISSING = "run `mathsym-zoo models --compute`"

__all__ = ["model_info", "compute_model_infos", "count_macs", "cached_info", "cache_path", "cache_key",
           "format_count", "format_size"]


# -- the cache (no TensorFlow here) ---------------------------------------------


def cache_dir() -> Path:
    """``$MATHSYM_ZOO_HOME``, else ``$XDG_CACHE_HOME/mathsym-zoo``, else ``~/.cache/mathsym-zoo``."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "mathsym-zoo"


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _key_fields(name: str, params: dict[str, Any], input_shape, num_classes: int) -> dict[str, Any]:
    return {"architecture": name, "params": params, "input_shape": [int(d) for d in input_shape],
            "num_classes": int(num_classes), "version": __version__}


def cache_key(name: str, params: dict[str, Any], input_shape=DEFAULT_INPUT_SHAPE,
              num_classes: int = DEFAULT_NUM_CLASSES) -> str:
    """The cache key: sha256 of architecture, JSON params, input shape, classes and package version."""
    text = json.dumps(_key_fields(name, params, input_shape, num_classes), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


#: Generated metadata of the built-in architectures at their defaults, shipped with the
#: plugins so `mathsym-zoo models` shows it on a fresh machine. Regenerate with
#: `python -m mathsym_zoo.modelinfo --write-builtin`; a test fails when it is stale.
BUILTIN_FILE = "model_info.json"


def builtin_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mathsym_zoo_plugins")
    return Path(next(iter(spec.submodule_search_locations))) / BUILTIN_FILE


def _read_entries(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or unreadable: treated as empty, rewritten on the next --compute
    return data.get("entries", {}) if isinstance(data, dict) else {}


def _read_user_cache() -> dict[str, Any]:
    return _read_entries(cache_path())


def _read_cache() -> dict[str, Any]:
    """Shipped built-in entries, overridden by the user's own cache."""
    return {**_read_entries(builtin_path()), **_read_user_cache()}


def _write_cache(new: dict[str, dict[str, Any]]) -> None:
    """Merge ``new`` entries into the cache file, atomically (temp file + rename)."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = _read_user_cache()  # re-read just before writing, so concurrent writers lose little
    entries.update(new)
    _write_entries(path, entries)


def _write_entries(path: Path, entries: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".model-info-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "entries": entries}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cached_info(name: str, params: dict[str, Any], input_shape=DEFAULT_INPUT_SHAPE,
                num_classes: int = DEFAULT_NUM_CLASSES) -> dict[str, Any] | None:
    """The cached metadata of one configuration, or None (never builds a model)."""
    return _read_cache().get(cache_key(name, params, input_shape, num_classes))


# -- formatting -------------------------------------------------------------------


def format_count(n: int | float) -> str:
    """1234 -> '1.23 k', 15_800_000 -> '15.8 M'."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}"
    return f"{int(n)}"


def format_size(n: int) -> str:
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n} B"


def table_columns(info: dict[str, Any] | None) -> dict[str, str]:
    """The ``params`` / ``MACs`` / ``size`` columns of ``mathsym-zoo models``."""
    if info is None:
        return {"params": MISSING, "MACs": "-", "size": "-"}
    total, trainable = info["total_params"], info["trainable_params"]
    params = f"{total:,}" + (f"\n({trainable:,} trainable)" if trainable != total else "")
    macs = format_count(info["macs"]) + (" +?" if info.get("uncounted_layers") else "")
    return {"params": params, "MACs": macs, "size": format_size(info["size_bytes"])}


# -- counting (needs a built Keras model) -----------------------------------------


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def _prod(values: Iterable) -> int:
    return math.prod(int(v) for v in values)


def _layer_macs(layer, in_shape: tuple, out_shape: tuple) -> int | None:
    """MACs of one call of ``layer`` (per image), or None when its kind is not counted."""
    from keras import layers as L

    convs = (L.Conv1D, L.Conv2D, L.Conv3D)
    transposed = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
    depthwise = (L.DepthwiseConv1D, L.DepthwiseConv2D)
    separable = (L.SeparableConv1D, L.SeparableConv2D)
    channels_last = getattr(layer, "data_format", "channels_last") != "channels_first"

    def split(shape):  # (spatial dims, channels), batch dimension dropped
        return (shape[1:-1], shape[-1]) if channels_last else (shape[2:], shape[1])

    if isinstance(layer, separable):
        out_spatial, out_c = split(out_shape)
        _, in_c = split(in_shape)
        mid = in_c * layer.depth_multiplier
        return _prod(out_spatial) * (mid * _prod(layer.kernel_size) + mid * out_c)
    if isinstance(layer, depthwise):
        out_spatial, out_c = split(out_shape)
        return _prod(out_spatial) * out_c * _prod(layer.kernel_size)
    if isinstance(layer, transposed):
        in_spatial, in_c = split(in_shape)
        _, out_c = split(out_shape)
        return _prod(in_spatial) * in_c * _prod(layer.kernel_size) * out_c // getattr(layer, "groups", 1)
    if isinstance(layer, convs):
        out_spatial, out_c = split(out_shape)
        _, in_c = split(in_shape)
        return _prod(out_spatial) * out_c * _prod(layer.kernel_size) * in_c // getattr(layer, "groups", 1)
    if isinstance(layer, L.Dense):
        return _prod(in_shape[1:]) * layer.units
    return None


def _walk(model, totals: dict[str, int], uncounted: list[str], prefix: str = "") -> None:
    import keras

    graph = getattr(model, "_functional", None) or model  # Sequential keeps a functional graph inside
    nodes_by_depth = getattr(graph, "_nodes_by_depth", None)
    if nodes_by_depth is None:
        raise TypeError(f"cannot count MACs of {type(model).__name__} {model.name!r}: only functional and "
                        "Sequential models have a graph to walk; build the architecture with the functional API")
    for depth in sorted(nodes_by_depth, reverse=True):  # inputs first
        for node in nodes_by_depth[depth]:
            op = node.operation
            if isinstance(op, keras.Model):
                _walk(op, totals, uncounted, prefix=f"{prefix}{op.name}/")
                continue
            if not node.input_tensors or not node.output_tensors:
                continue
            macs = _layer_macs(op, _shape(node.input_tensors[0]), _shape(node.output_tensors[0]))
            if macs is None:
                if getattr(op, "weights", None) and not isinstance(op, keras.layers.BatchNormalization):
                    uncounted.append(f"{prefix}{op.name} ({type(op).__name__})")
                continue
            kind = type(op).__name__
            totals[kind] = totals.get(kind, 0) + int(macs)


def count_macs(model) -> dict[str, Any]:
    """Multiply-adds per image of a built functional/Sequential Keras model.

    Returns ``{"macs": int, "by_layer_type": {"Conv2D": ..., ...}, "uncounted_layers": [...]}``.
    A layer called twice (shared weights) is counted twice; nested models are walked.
    """
    totals: dict[str, int] = {}
    uncounted: list[str] = []
    _walk(model, totals, uncounted)
    return {"macs": sum(totals.values()), "by_layer_type": dict(sorted(totals.items())), "uncounted_layers": uncounted}


def _measure(model) -> dict[str, Any]:
    trainable = sum(_prod(w.shape) for w in model.trainable_weights)
    total = sum(_prod(w.shape) for w in model.weights)
    with tempfile.TemporaryDirectory(prefix="mathsym-zoo-info-") as tmp:
        file = Path(tmp) / "model.keras"
        model.save(file)
        size = file.stat().st_size
    return {"trainable_params": int(trainable), "non_trainable_params": int(total - trainable),
            "total_params": int(total), **count_macs(model), "size_bytes": int(size)}


# -- the API ------------------------------------------------------------------------


def _component(name_or_component, plugins):
    from .components import Component

    if isinstance(name_or_component, Component):
        return name_or_component
    if plugins is None:
        from .plugins import PluginSet

        plugins = PluginSet()
    return plugins.get("architecture", str(name_or_component))


def model_info(name_or_component, params=None, input_shape=DEFAULT_INPUT_SHAPE,
               num_classes: int = DEFAULT_NUM_CLASSES, *, plugins=None, use_cache: bool = True) -> dict[str, Any]:
    """Generated metadata of an architecture at ``params`` (a dict, a Params instance or None for
    the defaults): ``trainable_params``, ``non_trainable_params``, ``total_params``, ``macs``
    (multiply-adds per image), ``by_layer_type``, ``uncounted_layers`` and ``size_bytes``
    (the ``.keras`` file), plus the key fields. Read from the cache when present; otherwise
    the model is built (TensorFlow) and the result cached.
    """
    comp = _component(name_or_component, plugins)
    if params is None:
        params = comp.params()
    elif isinstance(params, dict):
        params = comp.params(**params)
    elif not isinstance(params, comp.params):
        raise TypeError(f"params for {comp.name!r} must be a dict or {comp.params.__name__}, got {type(params).__name__}")
    pdict = params.model_dump(mode="json")
    key = cache_key(comp.name, pdict, input_shape, num_classes)
    if use_cache:
        hit = _read_cache().get(key)
        if hit is not None:
            return hit
    model = comp.factory(params, tuple(input_shape), int(num_classes))
    info = {**_key_fields(comp.name, pdict, input_shape, num_classes), "plugin": comp.plugin, **_measure(model)}
    _write_cache({key: info})
    return info


def compute_model_infos(components, input_shape=DEFAULT_INPUT_SHAPE, num_classes: int = DEFAULT_NUM_CLASSES,
                        *, on_error=None) -> dict[str, dict[str, Any]]:
    """Build each architecture component at its defaults and (re)write its cache entry.

    ``on_error(component, exc)`` is called for an architecture that fails to build
    (it is skipped); without it the error propagates.
    """
    out = {}
    for comp in components:
        try:
            out[comp.name] = model_info(comp, None, input_shape, num_classes, use_cache=False)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(comp, exc)
    return out


def attach_columns(rows: list[dict[str, Any]], input_shape=DEFAULT_INPUT_SHAPE,
                   num_classes: int = DEFAULT_NUM_CLASSES) -> list[dict[str, Any]]:
    """Add cached ``info`` and table ``columns`` to ``list_components("architecture")`` rows."""
    entries = _read_cache()
    out = []
    for row in rows:
        info = entries.get(cache_key(row["name"], row["defaults"], input_shape, num_classes))
        columns = {**row.get("columns", {}), **table_columns(info)}
        out.append({**row, "info": info, "columns": columns})
    return out


def write_builtin() -> Path:
    """Regenerate the shipped metadata of the built-in architectures (needs TensorFlow)."""
    from .plugins import PluginSet

    comps = [c for c in PluginSet().list("architecture") if c.plugin in BUILTIN_PLUGINS]
    entries = {}
    for comp in comps:
        info = model_info(comp, None, use_cache=False)
        entries[cache_key(comp.name, comp.defaults())] = info
    path = builtin_path()
    _write_entries(path, entries)
    return path


#: Plugins whose architectures ship generated metadata.
BUILTIN_PLUGINS = ("notebook_cnn", "resnet_lite", "mobilenet_head")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write-builtin"]:
        sys.exit("usage: python -m mathsym_zoo.modelinfo --write-builtin")
    print(write_builtin())
