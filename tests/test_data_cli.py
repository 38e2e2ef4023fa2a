"""`mathsym-zoo info` and `mathsym-zoo show` on a tiny generated archive."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mathsym_zoo.cli import run

REPO = Path(__file__).resolve().parents[1]
CROHME = REPO.parent / "shared" / "data" / "crohme_bench.zip"


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (9, 7), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def registry(tmp_path):
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for c, label in enumerate(["alpha", "beta", "sum"]):
            for i in range(2 + c):
                zf.writestr(f"imgs/{label}/w{i}_{i}.png", png(c * 10 + i))
        zf.writestr("imgs/sum/dup.png", png(0))  # alpha's first image again, under another label
        zf.writestr("imgs/README.txt", b"hello")
    reg = tmp_path / "registry.toml"
    reg.write_text(f'''
[data]
source = "tiny"
cache_dir = "cache"
[sources.tiny]
type = "archive"
path = "tiny.zip"
group_pattern = '/(w\\d)_'
croissant = "{(REPO / 'plugins' / 'kaggle-croissant.json').as_posix()}"
[sources.other]
type = "archive"
path = "missing.zip"
[[preprocessing]]
type = "grayscale"
[[preprocessing]]
type = "resize_pad"
size = [10, 10]
''')
    return reg


def test_info_json(registry, capsys):
    assert run(["info", "--source", "tiny", "-r", str(registry), "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    stats = data["stats"]
    assert stats["images"] == 10 and stats["classes"] == 3
    assert stats["per_class"] == {"min": 2, "median": 3, "max": 5}
    assert list(stats["smallest_classes"])[0] == "alpha"
    assert stats["image_sizes"] == {"7x9": 10} and stats["image_modes"] == {"L": 10}
    assert stats["duplicates"]["sets"] == 1 and stats["under_two_labels"]["sets"] == 1
    assert stats["skipped"] == {"not an image": 1}
    assert data["metadata"]["name"] == "Handwritten math symbols dataset"


def test_info_table(registry, capsys):
    assert run(["info", "--source", "tiny", "-r", str(registry), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for text in ("Handwritten math symbols dataset", "CC0", "2017-01-15", "images", "10", "classes",
                 "min 2 / median 3 / max 5", "under two labels", "7x9", "alpha / sum"):
        assert text in out, text


def test_info_errors_are_one_message(registry, capsys):
    assert run(["info", "--source", "other", "-r", str(registry), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "missing.zip" in err and "does not exist" in err and "Traceback" not in err
    assert run(["info", "tiny", "-r", str(registry)]) == 2  # one rule: the source is always --source
    assert "unexpected extra argument" in capsys.readouterr().err


def test_show_writes_a_png_contact_sheet(registry, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert run(["show", "--source", "tiny", "-r", str(registry), "-n", "4", "--seed", "1", "--out", str(out),
                "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 60 and im.height > 30


def test_show_label_and_terminal_preview(registry, capsys):
    assert run(["show", "-r", str(registry), "--label", "sum", "-n", "3", "--seed", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "▀" in out and "sum" in out and "alpha" not in out.split("random images")[0]
    assert run(["show", "-r", str(registry), "--label", "summ", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not a class" in err and "'sum'" in err


def test_show_rejects_non_png_output(registry, tmp_path, capsys):
    assert run(["show", "-r", str(registry), "--out", str(tmp_path / "x.jpg"), "--no-progress"]) == 1
    assert "PNG" in capsys.readouterr().err


def test_data_commands_do_not_import_tensorflow(registry):
    probe = ("import sys; from mathsym_zoo.cli import run; "
             f"code = run(['info', '-r', {str(registry)!r}, '--json', '--no-progress']); "
             "print('HEAVY', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules), code)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert "HEAVY [] 0" in out.stdout, out.stderr


@pytest.mark.slow
@pytest.mark.shared_data("crohme_bench.zip")
def test_info_and_show_on_real_crohme(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATHSYM_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    assert run(["info", "--source", "crohme", "--json", "--no-progress"]) == 0
    stats = json.loads(capsys.readouterr().out)["stats"]
    assert stats["images"] == 46_479 and stats["classes"] == 82
    sheet = tmp_path / "sheet.png"
    assert run(["show", "--source", "crohme", "-n", "24", "--out", str(sheet), "--no-progress"]) == 0
    with Image.open(sheet) as im:
        assert im.width >= 400


def test_split_prints_plain_tables_in_a_pipe(registry, capsys):
    assert run(["split", "-r", str(registry), "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split() == ["side", "images", "share", "classes", "present"]
    assert "per class" in lines and any(line.split()[:1] == ["sum"] for line in lines)
    assert not any(ch in out for ch in "┃│━─") and "\x1b[" not in out
    assert "note:" in out  # small classes go to train, said in a sentence
    assert run(["split", "-r", str(registry), "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["sizes"]) == {"train", "val", "test"} and len(data["hash"]) == 64


def test_info_is_plain_aligned_text_in_a_pipe(registry, capsys):
    assert run(["info", "--source", "tiny", "-r", str(registry), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "source 'tiny' (archive)" and not any(ch in "".join(lines) for ch in "┃│━─")
    values = {line[:18].strip(): line[18:] for line in lines[1:] if not line.startswith(" ")}
    assert values["images"] == "10" and values["classes"] == "3" and values["groups"].isdigit()
