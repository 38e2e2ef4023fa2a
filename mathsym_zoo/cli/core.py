"""Core commands: plugins, models, sources, preprocessors, check."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from .app import (PluginsDirOpt, RegistryOpt, SetOpt, SourceOpt, StrictOpt, app, console, load_job,
                  load_plugins)


def _params_text(defaults: dict) -> str:
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in defaults.items()) or "-"


@app.command()
def plugins(
    all: Annotated[bool, typer.Option("--all", help="Include the built-in plugins.")] = False,
    hook: Annotated[Optional[str], typer.Option("--hook", help="Only plugins implementing this hook.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    registry: RegistryOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
):
    """List plugins: version, origin, hooks and what each registered."""
    from ..api import list_plugins

    infos = list_plugins(include_builtin=all, hook=hook, plugins=load_plugins(plugins_dir, strict, registry))
    if json_out:
        console.print_json(json.dumps(infos))
        return
    table = Table(title="mathsym-zoo plugins" + (" (with built-ins)" if all else ""))
    for col in ("plugin", "version", "origin", "hooks", "registered"):
        table.add_column(col, overflow="fold")
    for info in infos:
        table.add_row(info["name"], info["version"] or "-", info["origin"], "\n".join(info["hooks"]),
                      "\n".join(f"{k}: {n}" for k, n in info["components"]))
    if not infos:
        console.print("No third-party plugins installed; `--all` includes the built-ins.")
    else:
        console.print(table)


def _component_table(kind: str, pattern, plugins_dir, strict, registry, json_out, extra=None, plugins=None):
    from ..api import list_components

    plugins = plugins or load_plugins(plugins_dir, strict, registry)
    rows = list_components(kind, pattern, plugins=plugins)
    if extra:
        rows = extra(rows)
    if json_out:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(title=f"{kind}s" + (f" matching {pattern!r}" if pattern else ""))
    cols = ["name", "plugin", "summary", "parameters (defaults)"] + [c for c in (rows[0].get("columns", {}) if rows else {})]
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["plugin"], r["summary"], _params_text(r["defaults"]),
                      *[str(v) for v in r.get("columns", {}).values()])
    console.print(table)
    if not rows:
        console.print(f"No {kind} matches {pattern!r}.")


PatternArg = Annotated[Optional[str], typer.Argument(help="fnmatch pattern, e.g. 'res*'.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command()
def models(pattern: PatternArg = None, json_out: JsonOpt = False, registry: RegistryOpt = None,
           plugins_dir: PluginsDirOpt = None, strict: StrictOpt = False,
           compute: Annotated[bool, typer.Option("--compute", help="Build each architecture (imports TensorFlow) "
                                                 "and cache its params, MACs and .keras size.")] = False):
    """List model architectures with parameters, MACs (multiply-adds per image) and size."""
    from ..api import attach_model_metadata

    plugins = load_plugins(plugins_dir, strict, registry)
    if compute:
        from rich.markup import escape

        from ..modelinfo import compute_model_infos
        from .app import err_console

        comps = plugins.list("architecture", pattern)
        with console.status(f"building {len(comps)} architecture(s)..."):
            compute_model_infos(comps, on_error=lambda c, e: err_console.print(
                f"[yellow]warning:[/] {escape(c.name)}: cannot build: {escape(f'{type(e).__name__}: {e}')}"))
    _component_table("architecture", pattern, plugins_dir, strict, registry, json_out, extra=attach_model_metadata,
                     plugins=plugins)


@app.command()
def sources(pattern: PatternArg = None, json_out: JsonOpt = False, registry: RegistryOpt = None,
            plugins_dir: PluginsDirOpt = None, strict: StrictOpt = False):
    """List dataset source plugins."""
    _component_table("source", pattern, plugins_dir, strict, registry, json_out)


@app.command()
def preprocessors(pattern: PatternArg = None, json_out: JsonOpt = False, registry: RegistryOpt = None,
                  plugins_dir: PluginsDirOpt = None, strict: StrictOpt = False):
    """List preprocessing steps."""
    _component_table("preprocessor", pattern, plugins_dir, strict, registry, json_out)


@app.command()
def check(
    registry_arg: Annotated[Optional[str], typer.Argument(metavar="[REGISTRY]", help="Registry file (default: ./registry.toml).")] = None,
    registry: RegistryOpt = None,
    source: SourceOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
):
    """Validate a registry and print the resolved job (exit 0 valid, 1 invalid)."""
    job = load_job(registry_arg or registry, source, set_, plugins_dir, strict)
    job.build_source().check()  # what can be known without reading data: files exist, formats
    resolved = job.to_dict()
    if json_out:
        console.print_json(json.dumps(resolved))
        return
    from rich.pretty import Pretty
    from rich.panel import Panel

    console.print(Panel(Pretty(resolved, expand_all=False), title=f"[green]valid[/]: {job.registry_path}", expand=False))
