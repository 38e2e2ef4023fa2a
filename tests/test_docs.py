"""Documentation stays true: every hook is documented, the README's commands exist."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from mathsym_zoo import hookspecs

REPO = Path(__file__).resolve().parents[1]


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if getattr(fn, "mathsym_zoo_spec", None) is not None]


def test_there_are_hooks_and_each_has_a_docstring():
    names = hook_names()
    assert set(names) >= {"register_sources", "register_preprocessors", "register_architectures"}
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc.split()) >= 10, f"hook {name} needs a real docstring"
        assert ":param register:" in doc


def test_every_hook_is_documented_in_readme_or_docs():
    text = (REPO / "README.md").read_text() + "".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))
    missing = [name for name in hook_names() if f"`{name}" not in text]
    assert not missing, f"hooks not documented in README.md or docs/*.md: {missing}"


def test_readme_commands_are_real():
    readme = (REPO / "README.md").read_text()
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert f"bash {script}" in readme
        assert (REPO / script).is_file()
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_readme_cli_commands_exist():
    from mathsym_zoo.cli import app
    import typer.main

    command = typer.main.get_command(app)
    known = set(command.commands)
    used = set(re.findall(r"mathsym-zoo ([a-z]+)", (REPO / "README.md").read_text()))
    assert used, "README shows no mathsym-zoo commands"
    assert used <= known, f"README uses unknown commands: {sorted(used - known)}"


def test_readme_plugin_example_is_the_tested_file():
    """The README's tiny-mlp plugin is exactly examples/plugins/tiny_mlp.py (which a test trains)."""
    readme = (REPO / "README.md").read_text()
    example = (REPO / "examples" / "plugins" / "tiny_mlp.py").read_text()
    start = example.index("from pydantic import Field")
    end = example.index("factory=build_tiny_mlp)") + len("factory=build_tiny_mlp)")
    assert example[start:end] in readme


def _help_summary(name: str, capsys) -> tuple[str, str]:
    """The usage line and the first paragraph of ``mathsym-zoo NAME --help``, as printed."""
    from mathsym_zoo.cli import run

    assert run([name, "--help"]) == 0
    text = capsys.readouterr().out
    usage, _, rest = text.partition("\n\n")
    return " ".join(usage.removeprefix("Usage:").split()), " ".join(rest.split("\n\n", 1)[0].split())


def test_readme_command_table_matches_help_exactly(capsys):
    import typer.main

    from mathsym_zoo.cli import app

    section = (REPO / "README.md").read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(mathsym-zoo [^`]+)` \| (.+) \|$", section, flags=re.M)
    names = [n for n, c in typer.main.get_command(app).commands.items() if not c.hidden]
    expected = [_help_summary(name, capsys) for name in names]
    table = "\n".join(f"| `{usage}` | {summary} |" for usage, summary in expected)
    assert rows == expected, f"README.md's command table should read (one row per command, in order):\n{table}"
