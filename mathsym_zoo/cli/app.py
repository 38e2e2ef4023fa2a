"""The Typer application, shared options and error handling.

Start-up matters (listing commands answer in well under half a second), so this
module and the command modules import only Typer at module level: rich, numpy,
pydantic and the plugins load inside the commands that use them.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from ..errors import ZooError
from ..tta import MAX_VARIANTS


class _Argument(TyperArgument):
    """Help names an argument by its metavar alone (``RUN``, not ``RUN <str>``); usage in click's
    style: ``RUN``, ``[MODEL]``, ``IMAGE_OR_DIR...``."""

    def display_type_rich(self, ctx):
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name.upper()
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")


class _Option(TyperOption):
    """An option without a metavar shows its type in capitals (``PATH``), choices as ``[a|b]``."""

    def display_type_rich(self, ctx):
        shown = super().display_type_rich(ctx)
        if self.metavar is not None or not shown or not shown.startswith("<"):
            return shown
        inner = shown.strip("<>.")
        return f"[{inner}]" if "|" in inner else inner.upper()


class ZooCommand(TyperCommand):
    """Every command: its parameters render with :class:`_Argument` and :class:`_Option`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _Argument
            elif type(param) is TyperOption:
                param.__class__ = _Option


class _Typer(typer.Typer):
    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or ZooCommand, **kwargs)


app = _Typer(
    name="mathsym-zoo",
    help="A plugin-based model zoo for handwritten math-symbol classification.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
    rich_markup_mode=None,  # help says exactly what it is given ("[models.NAME]" is not markup), and no rich import
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _LazyConsole:
    """A rich Console made on first use, so commands that print no rich output never import rich."""

    def __init__(self, **options) -> None:
        self._options = options
        self._console = None

    @property
    def real(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def _stream(self):
        return sys.stderr if self._options.get("stderr") else sys.stdout

    @property
    def is_terminal(self) -> bool:
        # Plain output to a pipe needs no rich; environment overrides (FORCE_COLOR...) are rich's to read.
        if self._console is None and not any(os.environ.get(v) for v in _RICH_TERMINAL_ENV):
            isatty = getattr(self._stream(), "isatty", None)
            return bool(isatty and isatty())
        return self.real.is_terminal

    @property
    def file(self):
        return self._stream() if self._console is None else self.real.file

    def __getattr__(self, name):
        return getattr(self.real, name)


#: Environment variables with which rich treats a non-terminal as a terminal.
_RICH_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


console = _LazyConsole()
err_console = _LazyConsole(stderr=True)


def escape(text: str) -> str:
    """``text`` with rich markup characters escaped (rich.markup.escape, imported when needed)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


#: "1"/"true": like --debug.
ENV_DEBUG = "MATHSYM_ZOO_DEBUG"
_debug = {"on": False}  # set by the --debug option of this run


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"mathsym-zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option(
        "--debug", help=f"Show the Python traceback behind an error (for bug reports; or {ENV_DEBUG}=1).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
):
    """A plugin-based model zoo for handwritten math-symbol classification."""
    _debug["on"] = debug


def debug_enabled() -> bool:
    return _debug["on"] or os.environ.get(ENV_DEBUG, "").strip().lower() in {"1", "true", "yes", "on"}


def _print_traceback(exc: BaseException) -> None:
    """The traceback of ``exc`` and what caused it (a plugin's own exception)."""
    import traceback

    err_console.print("".join(traceback.format_exception(exc)), highlight=False, markup=False, soft_wrap=True)

# Shared options: the same name means the same thing on every command.
RegistryOpt = Annotated[Optional[Path], typer.Option(
    "--registry", "-r", metavar="FILE", show_default=False,
    help="registry.toml to use (default: ./registry.toml, else the one shipped with the package).")]
SourceOpt = Annotated[Optional[str], typer.Option(
    "--source", "-s", metavar="SOURCE", show_default=False,
    help="Source: an entry of the registry, a source plugin, or a path (an archive such as data.rar or an "
         "image folder in the extracted_images/LABEL/ layout).")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", show_default=False,
    help="Override a registry value, e.g. train.epochs=3 (TOML values). Repeatable.")]
RecipeOpt = Annotated[Optional[str], typer.Option(
    "--recipe", metavar="NAME", show_default=False,
    help="A [recipes.NAME] table of the registry merged over [train] (after the source's own settings, "
         "before --set), e.g. final-fit.")]
PluginsDirOpt = Annotated[Optional[list[Path]], typer.Option(
    "--plugins-dir", metavar="PATH", show_default=False, help="Extra local plugin file or folder. Repeatable.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail on a broken plugin instead of skipping it "
                                                          "(or MATHSYM_ZOO_STRICT=1).")]
TtaOpt = Annotated[int, typer.Option(
    "--tta", min=1, max=MAX_VARIANTS, metavar="N", help="Average each prediction over the image and N-1 small "
    "rotations/shears of its symbol, re-fitted to the box (1 = off; N times the work).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress bars (off when output "
                                                                            "is not a terminal).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
RunArg = Annotated[str, typer.Argument(
    metavar="RUN", show_default=False, help="A run folder, or a .keras file with run.json or <name>.json beside it.")]


class Side(str, Enum):
    """Which images of a dataset: a side of the split, or all."""

    test = "test"
    val = "val"
    all = "all"


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as sentences for users (the class name, file and line only with --debug)."""
    if debug_enabled():
        import warnings

        text = warnings.formatwarning(message, category, filename, lineno, line)
    else:
        text = f"warning: {message}\n"
    (file or sys.stderr).write(text)


def show_problems(plugins) -> None:
    """Report each skipped plugin once, on stderr."""
    for problem in plugins.problems:
        err_console.print(f"[yellow]warning:[/] {escape(problem.message())}", highlight=False, soft_wrap=True)
    note = plugins.filter_note()
    if note:
        err_console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)


def load_job(registry=None, source=None, sets=None, plugins_dir=None, strict=False, *, check_plugins=True,
             recipe=None):
    """Resolve the registry into a Job, reporting broken plugins once."""
    from ..registry import resolve

    job = resolve(registry, overrides=sets or (), source=source, recipe=recipe, plugin_dirs=plugins_dir or (),
                  strict=strict or None)
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
    import warnings

    try:
        with warnings.catch_warnings():  # restores the formatter afterwards (tests call run() many times)
            warnings.showwarning = show_warning
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
            # markup=False: "[gpu]" is text, not a rich style tag.
            err_console.print(
                f"error: this command needs TensorFlow, which is not installed ({exc}). Install it with "
                "`pip install tensorflow` (CPU), or reinstall with `pip install 'mathsym-zoo[gpu]'` (NVIDIA GPU).",
                markup=False, highlight=False, soft_wrap=True)
            return 1
        raise
    except click_exc.ClickException as exc:
        exc.show()
        return exc.exit_code
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run(argv))
