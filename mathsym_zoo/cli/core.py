"""Core commands: plugins, models, sources, preprocessors, check."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .app import (JsonOpt, PluginsDirOpt, RecipeOpt, RegistryOpt, SetOpt, SourceOpt, StrictOpt, app, console, escape,
                  load_job, load_plugins)
from .tables import Column, print_table


def _params_text(defaults: dict) -> str:
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in defaults.items()) or "-"


@app.command()
def plugins(
    all: Annotated[bool, typer.Option("--all", help="Include the built-in plugins.")] = False,
    hook: Annotated[Optional[str], typer.Option("--hook", metavar="HOOK", help="Only plugins implementing this hook.")] = None,
    json_out: JsonOpt = False,
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
    if not infos:
        console.print("No third-party plugins installed; `--all` includes the built-ins.", markup=False)
        return
    rows = [{**info, "version": info["version"] or "-", "hooks": "\n".join(info["hooks"]),
             "registered": "\n".join(f"{k}: {n}" for k, n in info["components"])} for info in infos]
    columns = [Column("plugin", "name", no_wrap=True), Column("version", "version", keep=20),
               Column("origin", "origin", keep=10), Column("hooks", "hooks", keep=30),
               Column("registered", "registered", keep=40)]
    print_table(console, columns, rows, title="mathsym-zoo plugins" + (" (with built-ins)" if all else ""))


def _component_table(kind: str, pattern, plugins_dir, strict, registry, json_out, extra=None, plugins=None):
    from ..api import list_components

    plugins = plugins or load_plugins(plugins_dir, strict, registry)
    rows = list_components(kind, pattern, plugins=plugins)
    if extra:
        rows = extra(rows)
    if json_out:
        console.print_json(json.dumps(rows, default=str))
        return
    cols = [Column("name", "name", no_wrap=True), Column("plugin", "plugin", keep=20),
            Column("summary", "summary", keep=50), Column("parameters (defaults)", "parameters", keep=10)]
    extra = list(rows[0].get("columns", {})) if rows else []
    cols += [Column(c, c, keep=60 + i, right=True) for i, c in enumerate(extra)]
    table_rows = [{**r, "parameters": _params_text(r["defaults"]), **{k: str(v) for k, v in r.get("columns", {}).items()}}
                  for r in rows]
    if rows:
        print_table(console, cols, table_rows, title=f"{kind}s" + (f" matching {pattern!r}" if pattern else ""))
    else:
        console.print(f"No {kind} matches {pattern!r}.", markup=False, highlight=False)


PatternArg = Annotated[Optional[str], typer.Argument(metavar="PATTERN", show_default=False,
                                                     help="fnmatch pattern, e.g. 'res*'.")]


@app.command()
def models(pattern: PatternArg = None, json_out: JsonOpt = False, registry: RegistryOpt = None,
           plugins_dir: PluginsDirOpt = None, strict: StrictOpt = False,
           compute: Annotated[bool, typer.Option("--compute", help="Build each architecture (imports TensorFlow) "
                                                 "and cache its params, MACs and .keras size.")] = False):
    """List model architectures with parameters, MACs (multiply-adds per image) and size."""
    from ..api import attach_model_metadata

    plugins = load_plugins(plugins_dir, strict, registry)
    if compute:
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
    registry_arg: Annotated[Optional[str], typer.Argument(metavar="REGISTRY", show_default=False,
                                                          help="Registry file (same as --registry).")] = None,
    registry: RegistryOpt = None,
    source: SourceOpt = None,
    recipe: RecipeOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
):
    """Validate a registry and print the resolved job (exit 0 valid, 1 invalid)."""
    job = load_job(registry_arg or registry, source, set_, plugins_dir, strict, recipe=recipe)
    job.build_source().check()  # what can be known without reading data: files exist, formats
    resolved = job.to_dict()
    if json_out:
        console.print_json(json.dumps(resolved))
        return
    if not console.is_terminal:  # plain text for pipes and logs
        console.file.write(f"valid: {job.registry_path}\n{json.dumps(resolved, indent=2)}\n")
        return
    from rich.panel import Panel
    from rich.pretty import Pretty

    console.print(Panel(Pretty(resolved, expand_all=False), title=f"[green]valid[/]: {escape(str(job.registry_path))}",
                        expand=False))
