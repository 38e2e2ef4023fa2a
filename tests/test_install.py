"""A plain install works: the wheel, installed into a fresh virtualenv, trains offline from any folder.

The wheel is built from a copy of the sources and installed with --no-deps into a
new venv that sees this environment's packages (TensorFlow included) through a
``.pth`` line, so the test needs no network and no second TensorFlow download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What the wheel is built from (pyproject.toml names the packages).
SOURCES = ("pyproject.toml", "README.md", "mathsym_zoo", "plugins")


def _sh(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    # No build isolation: setuptools comes from this environment (the `test` extra), not from an index.
    _sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(tmp / "dist"), str(src)])
    (wheel,) = (tmp / "dist").glob("mathsym_zoo-*.whl")
    return wheel


def venv_with_our_dependencies(tmp: Path) -> Path:
    """A new venv whose sys.path ends with this environment's site-packages (but not its
    editable mathsym_zoo: a plain path line does not run the .pth files found there)."""
    venv = tmp / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = _sh([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="venv layout (bin/) of POSIX")
def test_wheel_installs_and_trains_offline_with_the_shipped_defaults(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = venv_with_our_dependencies(tmp_path)
    _sh([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
         "--no-index", str(wheel)])
    work = tmp_path / "work"  # a folder with no registry.toml: the shipped one applies
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MATHSYM_ZOO"))}
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")  # offline: any network use fails
    where = _sh([str(venv / "bin" / "python"), "-c", "import mathsym_zoo; print(mathsym_zoo.__file__)"],
                cwd=work, env=env).stdout
    assert str(venv) in where, f"imported the checkout, not the wheel: {where}"

    tool = str(venv / "bin" / "mathsym-zoo")
    assert _sh([tool, "--version"], cwd=work, env=env).stdout.strip() == "mathsym-zoo 0.1.0"
    out = _sh([tool, "train", "notebook-cnn", "--set", "train.epochs=1", "--set", "sources.demo.images_per_class=4"],
              cwd=work, env=env)
    assert "run folder:" in out.stdout, out.stdout + out.stderr
    runs = list((work / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("notebook-cnn-")
    assert (work / ".mathsym-cache").is_dir()  # caches in the user's folder, not in site-packages


def test_every_package_folder_goes_into_the_wheel():
    """pyproject.toml lists packages by hand: a new sub-package must be added there too."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "mathsym_zoo").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
