"""``serve``: the draw page, on a local web server."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ConfigError, ZooError
from .app import PluginsDirOpt, RegistryOpt, StrictOpt, app, console, err_console, escape, load_job, load_plugins


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run_folders(registry: Path | None) -> tuple[Path, Path]:
    """The registry's runs and comparisons folders (./runs and ./comparisons without one), as `runs` finds them."""
    try:
        job = load_job(registry, check_plugins=False)
        return job.runs_dir, job.comparisons_dir
    except ZooError:
        return Path("runs"), Path("comparisons")


@app.command()
def serve(
    runs: Annotated[Optional[list[Path]], typer.Argument(
        metavar="RUN", show_default=False, help="Run folders (or .keras files, exports) to offer; default: every finished run.")] = None,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", metavar="DIR", show_default=False, help="Where to look for runs (default: the registry's).")] = None,
    comparisons_dir: Annotated[Optional[Path], typer.Option(
        "--comparisons-dir", metavar="DIR", show_default=False, help="Where to look for comparisons (default: the registry's).")] = None,
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on; other than loopback, anyone on the network can use it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", metavar="PORT", min=1, max=65535, help="Port to listen on.")] = 8000,
    samples: Annotated[Optional[Path], typer.Option(
        "--samples", metavar="DIR", show_default=False, help="Save drawings contributed on the page here (Kaggle layout: LABEL/NAME.png); off without it.")] = None,
    registry: RegistryOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
):
    """Draw a symbol in the browser and see the models' top-k answer with its LaTeX.

    Serves a page and a JSON API (see the README) with uvicorn until Ctrl-C.
    """
    try:
        import uvicorn

        from ..serve.app import create_app
        from ..serve.models import ModelPool, entries_for_paths, find_runs
    except ImportError as exc:
        raise ConfigError(f"serve needs the 'serve' extra ({exc.name} is missing): "
                          "pip install -e '.[serve]' (scripts/setup.sh installs it)") from None
    from ..predict import load_classifier

    if runs:
        entries = entries_for_paths(runs)
    else:
        default_runs, default_comparisons = _run_folders(registry)
        where = (runs_dir or default_runs, comparisons_dir or default_comparisons)
        entries = find_runs(*where)
        if not entries:
            raise ConfigError(f"no finished run under {where[0]} or {where[1]}/*/runs; "
                              "train one (mathsym-zoo train MODEL) or name a run folder")
    plugins = load_plugins(plugins_dir, strict, registry)
    pool = ModelPool(entries, loader=lambda path: load_classifier(path, plugins=plugins, warm_batch=1))
    if not _is_loopback(host):
        err_console.print(f"[yellow]warning:[/] listening on {escape(host)}: anyone who can reach this machine "
                          "can use the page" + (" and add samples" if samples else ""), highlight=False)
    if samples is not None:
        samples.mkdir(parents=True, exist_ok=True)
    console.print(f"loading {escape(pool.default)} ...", highlight=False)
    pool.classifier(pool.default)  # the first drawing should not wait for TensorFlow
    allowed = ["127.0.0.1", "localhost", host] if _is_loopback(host) else None
    web = create_app(pool, samples_dir=samples, allowed_hosts=allowed)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"{len(entries)} model(s); samples: {escape(str(samples)) if samples else 'off'}\n"
                  f"serving on [bold]http://{shown}:{port}/[/] (Ctrl-C stops)", highlight=False)
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)
