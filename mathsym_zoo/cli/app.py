"""The Typer application, shared options and error handling."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ZooError

app = typer.Typer(
    name="mathsym-zoo",
    help="A plugin-based model zoo for handwritten math-symbol classification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

console = Console()
err_console = Console(stderr=True)

#: "1"/"true": like --debug.
ENV_DEBUG = "MATHSYM_ZOO_DEBUG"
_debug = {"on": False}  # set by the --debug option of this run


@app.callback()
def _options(debug: Annotated[bool, typer.Option(
        "--debug", help=f"Show the Python traceback behind an error (for bug reports; or {ENV_DEBUG}=1).")] = False):
    """A plugin-based model zoo for handwritten math-symbol classification."""
    _debug["on"] = debug


def debug_enabled() -> bool:
    return _debug["on"] or os.environ.get(ENV_DEBUG, "").strip().lower() in {"1", "true", "yes", "on"}


def _print_traceback(exc: BaseException) -> None:
    """The traceback of ``exc`` and what caused it (a plugin's own exception)."""
    import traceback

    err_console.print("".join(traceback.format_exception(exc)), highlight=False, markup=False, soft_wrap=True)

# Shared options, reused by every command that resolves a job.
RegistryOpt = Annotated[Optional[Path], typer.Option("--registry", "-r", help="registry.toml to use (default: ./registry.toml).")]
SourceOpt = Annotated[Optional[str], typer.Option("--source", "-s", help="Source entry of the registry (or a source plugin) to use.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a registry value: KEY=VALUE, e.g. train.epochs=3. Repeatable.")]
PluginsDirOpt = Annotated[Optional[list[Path]], typer.Option("--plugins-dir", help="Extra local plugin file or folder. Repeatable.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail on a broken plugin instead of skipping it (or MATHSYM_ZOO_STRICT=1).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress bars (off when output is not a terminal).")]


def show_problems(plugins) -> None:
    """Report each skipped plugin once, on stderr."""
    for problem in plugins.problems:
        err_console.print(f"[yellow]warning:[/] {escape(problem.message())}", highlight=False, soft_wrap=True)
    note = plugins.filter_note()
    if note:
        err_console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


def load_job(registry=None, source=None, sets=None, plugins_dir=None, strict=False, *, check_plugins=True):
    """Resolve the registry into a Job, reporting broken plugins once."""
    from ..registry import resolve

    job = resolve(registry, overrides=sets or (), source=source, plugin_dirs=plugins_dir or (), strict=strict or None)
    if check_plugins:
        show_problems(job.plugins)
    return job


def load_plugins(plugins_dir=None, strict=False, registry=None):
    """Plugins from entry points, the registry's plugin_paths (when a registry is
    found and readable) and --plugins-dir."""
    from ..plugins import PluginSet
    from ..registry import find_registry, read_toml

    paths = list(plugins_dir or ())
    try:
        reg = find_registry(registry)
        raw = read_toml(reg)
        paths = [reg.parent / p for p in raw.get("plugin_paths", []) if isinstance(p, str)] + paths
    except ZooError:
        if registry is not None:
            raise
    plugins = PluginSet(paths, strict=strict or None)
    show_problems(plugins)
    return plugins


def progress_enabled(flag: bool) -> bool:
    return flag and console.is_terminal and not os.environ.get("CI")


def run(argv: list[str] | None = None) -> int:
    """Run the app and return its exit code; user errors become one message."""
    # TensorFlow's C++ info lines (oneDNN, CPU features) are noise on a terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:  # recent Typer vendors Click as typer._click
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover - older Typer depends on Click
        from click import exceptions as click_exc

    _debug["on"] = False
    try:
        result = app(args=argv, standalone_mode=False, prog_name="mathsym-zoo")
    except ZooError as exc:
        if debug_enabled():
            _print_traceback(exc)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except (typer.Exit, getattr(click_exc, "Exit", typer.Exit)) as exc:
        return exc.exit_code
    except (typer.Abort, getattr(click_exc, "Abort", typer.Abort), KeyboardInterrupt):
        err_console.print("interrupted")
        return 130
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"tensorflow", "keras"}:
            err_console.print(
                f"[bold red]error:[/] this command needs TensorFlow, which is not installed ({escape(str(exc))}). "
                "Install it with `pip install 'mathsym-zoo[cpu]'` (CPU) or `pip install 'mathsym-zoo[gpu]'` "
                "(NVIDIA GPU).", highlight=False, soft_wrap=True)
            return 1
        raise
    except click_exc.ClickException as exc:
        exc.show()
        return exc.exit_code
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run(argv))
