"""Every command's --help says what it means, at 80 columns, on a terminal or in a pipe; one CLI style."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mathsym_zoo.cli import app, run

REPO = Path(__file__).resolve().parents[1]


def click_command():
    import typer.main

    return typer.main.get_command(app)


def commands() -> dict:
    return dict(click_command().commands)


#: Type placeholders Typer prints when a parameter has no metavar (``<str>``, ``<list[Path]>``...).
TYPE_METAVAR = re.compile(r"<(str|bool|int|float|path|file|list\[[^>]*\]|[a-z]+ range)>", re.IGNORECASE)


def render_help(argv: list[str]) -> str:
    """``mathsym-zoo ARGV --help`` as a user sees it: a fresh process, 80 columns, output piped."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm-256color"}
    out = subprocess.run([sys.executable, "-m", "mathsym_zoo", *argv, "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    # One process renders every command's help (fresh processes per command cost seconds each).
    code = ("import sys, io, contextlib\nfrom mathsym_zoo.cli import run\n"
            "for name in sys.argv[1:]:\n"
            "    buf = io.StringIO()\n"
            "    with contextlib.redirect_stdout(buf):\n"
            "        run(([name] if name != '-' else []) + ['--help'])\n"
            "    print('=====', name); print(buf.getvalue())\n")
    names = ["-", *commands()]
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-c", code, *names], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    parts = re.split(r"^===== (\S+)\n", out.stdout, flags=re.M)[1:]
    return dict(zip(parts[::2], parts[1::2]))


def test_every_command_help_renders_cleanly_at_80_columns(helps):
    assert set(helps) == {"-", *commands()}
    for name, text in helps.items():
        assert text.startswith("Usage: mathsym-zoo"), (name, text[:200])
        assert not TYPE_METAVAR.search(text), f"{name}: type metavar {TYPE_METAVAR.search(text)[0]!r} in help"
        usage = text.split("\n\n", 1)[0]
        assert "[[" not in usage and "]...]" not in usage, f"{name}: usage {usage!r}"
        assert "\x1b[" not in text, f"{name}: colour codes in piped help"
        wide = [line for line in text.splitlines() if len(line) > 80]
        assert not wide, f"{name}: lines over 80 columns: {wide}"


def test_help_shows_every_parameter_help_verbatim(helps):
    """Nothing is eaten as markup: every [bracketed] word of a parameter's help reaches the screen."""
    for name, command in commands().items():
        flat = " ".join(helps[name].split())
        for param in command.params:
            for bracketed in re.findall(r"\[[^\]]+\]", getattr(param, "help", None) or ""):
                assert bracketed in flat, f"{name} {param.name}: {bracketed!r} missing from its help"
    assert "[models.NAME]" in " ".join(helps["train"].split())


def test_one_meaning_per_option_name():
    metavars: dict[str, dict[str, str]] = {}  # option -> {metavar: first command using it}
    for name, command in commands().items():
        for param in command.params:
            if param.param_type_name != "option":
                continue
            assert "-q" not in param.opts or "--quiet" in param.opts, f"{name}: -q is only for --quiet"
            if "--json" in param.opts:
                assert param.is_flag, f"{name}: --json is a flag (JSON on stdout) everywhere"
            for opt in param.opts:
                # (compare's --resume takes a comparison folder, train's a run: not the same thing)
                if opt in ("--registry", "--set", "--plugins-dir", "--source"):
                    metavars.setdefault(opt, {}).setdefault(str(param.metavar), name)
    for opt, seen in metavars.items():
        assert len(seen) == 1, f"{opt} has different metavars: {seen}"


def test_run_folders_are_called_RUN_everywhere():
    for name in ("evaluate", "predict", "export"):
        first = commands()[name].params[0]
        assert first.metavar == "RUN", f"{name}: first argument is {first.metavar!r}"
    for opt in ("--resume", "--init-from"):
        (param,) = [p for p in commands()["train"].params if opt in getattr(p, "opts", ())]
        assert param.metavar == "RUN"


def choices(param) -> tuple:
    """The allowed values of an enumerated parameter (Typer 0.28+ keeps them on a type descriptor)."""
    holder = getattr(param, "type_descriptor", None) or getattr(param, "type", None)
    return tuple(getattr(holder, "choices", None) or ())


def test_enumerated_options_list_their_choices(helps):
    for name, command in commands().items():
        flat = " ".join(helps[name].split())
        for param in command.params:
            for choice in choices(param):
                assert str(getattr(choice, "value", choice)) in flat, f"{name} {param.name}: {choice}"
    assert choices([p for p in commands()["export"].params if p.name == "fmt"][0])
    assert "[saved_model|tflite|onnx]" in helps["export"] and "[dynamic|float16]" in helps["export"]
    assert "[test|val|all]" in helps["evaluate"]


def test_source_is_an_option_on_every_command_that_reads_data():
    for name in ("info", "show", "split", "train", "compare", "evaluate", "check"):
        params = commands()[name].params
        assert any("--source" in getattr(p, "opts", ()) for p in params), name
        assert not any(p.name in ("source", "source_arg") and not getattr(p, "opts", [""])[0].startswith("-")
                       for p in params), f"{name}: a positional SOURCE"


def test_version_and_shell_completion(capsys, helps):
    from mathsym_zoo import __version__

    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mathsym-zoo {__version__}"
    assert "--install-completion" in helps["-"] and "--show-completion" in helps["-"]


def test_a_real_process_renders_the_same_help():
    text = render_help(["train"])
    assert "[models.NAME]" in " ".join(text.split()) and not TYPE_METAVAR.search(text)


def test_warnings_are_sentences(capsys):
    """A Python warning raised inside a command prints as 'warning: ...', without class, file and line."""
    import warnings

    @app.command("warn-probe", hidden=True)
    def warn_probe():
        warnings.warn("class 'x' has 1 image; it goes to train", UserWarning)

    try:
        assert run(["warn-probe"]) == 0
        err = capsys.readouterr().err
        assert err == "warning: class 'x' has 1 image; it goes to train\n"
        assert "UserWarning" not in err and ".py:" not in err
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "warn-probe"]


@pytest.mark.parametrize("width", [80, 60, 120])
def test_models_table_fits_a_narrow_terminal_without_breaking_names(width, monkeypatch, capsys):
    from rich.console import Console

    from mathsym_zoo.cli import core

    monkeypatch.setattr(core.console, "_console", Console(width=width, force_terminal=True, color_system=None))
    assert run(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(map(len, lines)) <= width
    for name in ("mobilenet-head", "notebook-cnn", "resnet-lite"):
        assert any(name in line for line in lines), f"{name} broken over lines at {width} columns"
    header = " ".join(lines[:6])
    assert ("(defaults)" in header) == (width >= 120)  # the widest column goes first when narrow


def test_tables_are_plain_aligned_text_in_a_pipe(capsys):
    assert run(["models"]) == 0  # capsys: not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "architectures" and lines[1].startswith("name ")
    assert not any(ch in "".join(lines) for ch in "┃│━─")  # no box drawing
    starts = {line.index(name) for line, name in zip(lines[2:], ("mobilenet-head", "notebook-cnn", "resnet-lite"))}
    assert starts == {0}
    size_col = lines[1].index("size")  # right-aligned numbers end under their header
    assert all(line[size_col:].strip().endswith("KiB") for line in lines[2:5])


def test_missing_tensorflow_hint_is_printed_as_written(capsys):
    """The install hint keeps its extras ("[gpu]" is not rich markup)."""

    @app.command("tf-probe", hidden=True)
    def tf_probe():
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    try:
        assert run(["tf-probe"]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert "pip install tensorflow" in err and "pip install 'mathsym-zoo[gpu]'" in err
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "tf-probe"]
