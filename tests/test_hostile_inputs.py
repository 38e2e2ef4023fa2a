"""Hostile inputs (issue 12, data and plugin half): bombs, odd image modes, misbehaving
plugins, non-finite settings, bad layouts.

Every CLI case asserts the specific message or skip reason, the exit code, that no
Python traceback reaches the user, and that nothing was written outside the cache
folder. Every fixture is generated here; the bombs are small on disk.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mathsym_zoo.cli import run
from mathsym_zoo.data import archives
from mathsym_zoo.data.images import to_array
from rar5writer import write_rar5

REPO = Path(__file__).resolve().parents[1]


# -- helpers -----------------------------------------------------------------------


def png(value: int, size=(6, 5)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def snapshot(root: Path) -> set[str]:
    """Every file under ``root`` except the cache and Python's own bytecode caches."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] != "cache" and "__pycache__" not in p.parts}


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run the CLI in ``tmp_path``; returns (exit code, stdout + stderr) after the common checks."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MATHSYM_ZOO_CACHE", raising=False)
    monkeypatch.delenv("MATHSYM_ZOO_PLUGINS", raising=False)
    monkeypatch.delenv("MATHSYM_ZOO_STRICT", raising=False)

    def call(*args: str, traceback_ok: bool = False) -> tuple[int, str]:
        before = snapshot(tmp_path)
        code = run(list(args))
        out = capsys.readouterr()
        text = out.out + out.err
        if not traceback_ok:
            assert "Traceback" not in text, text
        assert snapshot(tmp_path) == before, "files written outside the cache folder"
        return code, " ".join(text.split())  # rich wraps long lines

    return call


def write_registry(tmp_path: Path, source: str, *, extra: str = "", preprocessing: bool = True) -> Path:
    steps = '[[preprocessing]]\ntype = "grayscale"\n[[preprocessing]]\ntype = "resize_pad"\nsize = [8, 8]\n'
    reg = tmp_path / "registry.toml"
    reg.write_text(textwrap.dedent(f'''
        plugin_paths = ["plugins/"]
        [data]
        source = "x"
        cache_dir = "cache"
        workers = 1
        [sources.x]
        {source}
        ''') + (steps if preprocessing else "") + textwrap.dedent(extra))
    (tmp_path / "plugins").mkdir(exist_ok=True)
    return reg


def archive_registry(tmp_path: Path, path: str, extra_source: str = "", **kw) -> Path:
    return write_registry(tmp_path, f'type = "archive"\npath = "{path}"\n{extra_source}', **kw)


def info_json(cli, *extra: str) -> dict:
    code, text = cli("info", "--json", "--no-progress", *extra)
    assert code == 0, text
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


# -- archives: bounded reading ---------------------------------------------------------

GOOD = {f"extracted_images/{label}/{label}_{i}.png": png(40 * i + (label == "b") * 7)
        for label in ("a", "b") for i in range(3)}
BIG_NAME = "extracted_images/a/huge.png"
BIG = os.urandom(40 * 1024)  # 40 KiB of noise: over a 0.02 MiB limit, not compressible


def write_members(tmp_path: Path, fmt: str, members: dict[str, bytes]) -> str:
    if fmt == "zip":
        with zipfile.ZipFile(tmp_path / "d.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return "d.zip"
    if fmt.startswith("tar"):
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt]
        with tarfile.open(tmp_path / f"d.{fmt}", mode) as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return f"d.{fmt}"
    if fmt == "rar":
        write_rar5(tmp_path / "d.rar", list(members.items()))
        return "d.rar"
    for name, data in members.items():
        (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / name).write_bytes(data)
    return "d"


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz", "rar", "folder"])
def test_member_over_the_limit_is_a_counted_too_large_skip(tmp_path, cli, fmt):
    path = write_members(tmp_path, fmt, {**GOOD, BIG_NAME: BIG})
    archive_registry(tmp_path, path, "max_member_mb = 0.02")
    stats = info_json(cli)["stats"]
    assert stats["images"] == 6
    assert stats["skipped"] == {"too large (over 0.02 MiB; raise the source's max_member_mb)": 1}


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "rar", "folder"])
def test_a_member_declared_over_the_limit_is_skipped_without_reading_it(tmp_path, monkeypatch, fmt):
    path = tmp_path / write_members(tmp_path, fmt, {**GOOD, BIG_NAME: BIG})
    opened = []
    real = archives._bounded_member
    monkeypatch.setattr(archives, "_bounded_member", lambda name, fh, limit: opened.append(name) or real(name, fh, limit))
    real_zip = archives.MemberTable._read_zip  # zip members: read by offset, capped at their listed size
    monkeypatch.setattr(archives.MemberTable, "_read_zip", lambda self, name, *a: opened.append(name) or real_zip(self, name, *a))
    skips = {m.name: m.skip for m in archives.iter_members(path, max_bytes=20_000) if m.skip}
    assert skips == {BIG_NAME: archives.too_large(20_000)}
    assert BIG_NAME not in opened and len(opened) == len(GOOD)


def test_zip_member_with_an_absurd_compression_ratio_is_refused(tmp_path, cli):
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        for name, data in GOOD.items():
            zf.writestr(name, data)
        zf.writestr(zipfile.ZipInfo(BIG_NAME), bytes(4 * 2**20), compress_type=zipfile.ZIP_BZIP2)
    assert zf.getinfo(BIG_NAME).compress_size * archives.MAX_RATIO < 4 * 2**20
    archive_registry(tmp_path, "d.zip")
    stats = info_json(cli)["stats"]
    assert stats["images"] == 6 and stats["skipped"] == {archives.SKIP_RATIO: 1}


def test_zip_member_whose_header_lies_about_its_size_is_never_read_past_it(tmp_path, cli):
    """A central directory claiming 100 bytes for a 3 MiB member: read stops, member skipped."""
    data = os.urandom(3 * 2**20)
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        for name, good in GOOD.items():
            zf.writestr(name, good)
        zf.writestr(BIG_NAME, data)
    raw = bytearray((tmp_path / "d.zip").read_bytes())
    size = len(data).to_bytes(4, "little")
    at = raw.rindex(BIG_NAME.encode()) - 46  # its central directory entry: 46 fixed bytes, then the name
    assert raw[at:at + 4] == b"PK\x01\x02" and raw[at + 24:at + 28] == size
    raw[at + 24:at + 28] = (100).to_bytes(4, "little")
    (tmp_path / "d.zip").write_bytes(bytes(raw))
    archive_registry(tmp_path, "d.zip", "max_member_mb = 1")
    stats = info_json(cli)["stats"]
    assert stats["images"] == 6 and stats["skipped"] == {archives.SKIP_UNREADABLE: 1}


@pytest.mark.parametrize("size,limit,expected", [(10, 10, 10), (11, 10, None), (3 * 2**20, 2**20, None),
                                                 (2**20, 2**20, 2**20)])
def test_bounded_read_stops_one_byte_past_the_limit(size, limit, expected):
    class Counting(io.BytesIO):
        served = 0

        def read(self, n=-1):
            chunk = super().read(n)
            Counting.served += len(chunk)
            return chunk

    data = archives._read_bounded(Counting(bytes(size)), limit)
    assert (None if data is None else len(data)) == expected
    assert Counting.served <= limit + 1


BOMB_SCRIPT = """
import resource, sys
from mathsym_zoo.cli import run
code = run(["info", "-r", sys.argv[1], "--json", "--no-progress"])
# VmHWM starts afresh at exec; ru_maxrss would carry pytest's own peak over the fork.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
print("\\nPEAK_KB", hwm,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "EXIT", code)
"""


def zeros_zip(path: Path, name: str, size: int) -> None:
    """A zip whose member ``name`` inflates to ``size`` zero bytes, written in chunks (~2 MB on disk)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "a") as zf, zf.open(info, "w", force_zip64=True) as fh:
        chunk = bytes(2**20)
        for _ in range(size // len(chunk)):
            fh.write(chunk)


class Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def zeros_targz(path: Path, name: str, size: int) -> None:
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for good, data in GOOD.items():
            info = tarfile.TarInfo(good)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(name)
        info.size = size
        tf.addfile(info, io.BufferedReader(Zeros(size), 2**20))


@pytest.mark.slow
@pytest.mark.parametrize("fmt,size", [("zip", 2 * 2**30), ("tar.gz", 2**30)])
def test_bomb_ingests_with_peak_memory_below_1_gb(tmp_path, fmt, size):
    archive = tmp_path / f"bomb.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in GOOD.items():
                zf.writestr(name, data)
        zeros_zip(archive, BIG_NAME, size)
    else:
        zeros_targz(archive, BIG_NAME, size)
    assert archive.stat().st_size < 8 * 2**20
    reg = archive_registry(tmp_path, archive.name)
    proc = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(reg)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    body, tail = proc.stdout.rsplit("PEAK_KB", 1)
    peak_kb, children_kb, _, code = tail.split()
    assert code == "0", proc.stderr
    assert int(peak_kb) < 1_000_000 and int(children_kb) < 1_000_000, (peak_kb, children_kb)
    stats = json.loads(body[body.index("{"):body.rindex("}") + 1])["stats"]
    assert stats["images"] == 6
    assert stats["skipped"] == {"too large (over 16 MiB; raise the source's max_member_mb)": 1}


def test_rar_extraction_without_room_is_refused_before_it_starts(tmp_path, monkeypatch):
    import collections

    from mathsym_zoo.errors import DataError

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(archives.shutil, "disk_usage", lambda folder: usage(2**40, 2**40 - 2**20, 2**20))
    with pytest.raises(DataError, match=r"would extract 2\.0 GiB, but .* has 0\.0 GiB free; set TMPDIR"):
        archives._check_room(tmp_path / "big.rar", 2 * 2**30)
    archives._check_room(tmp_path / "small.rar", 2**19)


@pytest.mark.parametrize("value,message", [("0", "max_member_mb: input should be greater than 0"),
                                           ("inf", "max_member_mb: input should be a finite number")])
def test_member_limit_is_validated(tmp_path, cli, value, message):
    archive_registry(tmp_path, write_members(tmp_path, "folder", GOOD), f"max_member_mb = {value}")
    code, text = cli("check")
    assert code == 1 and message in text


# -- images: every Pillow mode --------------------------------------------------------

H, W = 6, 8


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _rng() -> np.random.Generator:
    return np.random.default_rng(12)


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(float)[..., None] / 255
    return np.rint(rgb.astype(float) * a + 255 * (1 - a))


def case_i16():
    a = _rng().integers(0, 65536, (H, W)).astype(np.uint16)
    return "png", _encode(Image.fromarray(a), "PNG"), "I;16", np.rint(a / 257)[..., None]


def case_i16_big_endian():
    a = _rng().integers(0, 65536, (H, W)).astype(">u2")
    return "tif", _encode(Image.fromarray(a), "TIFF"), "I;16B", np.rint(a.astype(float) / 257)[..., None]


def case_i32_wide():
    a = _rng().integers(-5000, 2**31 - 1, (H, W)).astype(np.int32)
    expected = np.clip(np.rint(a.astype(float) * 255 / (2**31 - 1)), 0, 255)
    return "tif", _encode(Image.fromarray(a), "TIFF"), "I", expected[..., None]


def case_i32_holding_16_bit():
    a = _rng().integers(0, 65536, (H, W)).astype(np.int32)
    return "tif", _encode(Image.fromarray(a), "TIFF"), "I", np.rint(a / 257)[..., None]


def case_float_0_1():
    a = _rng().random((H, W)).astype(np.float32)
    return "tif", _encode(Image.fromarray(a), "TIFF"), "F", np.rint(a.astype(float) * 255)[..., None]


def case_float_wide_with_nan():
    a = _rng().uniform(-50, 400, (H, W)).astype(np.float32)
    a[0, 0] = np.nan
    expected = np.clip(np.rint(np.nan_to_num(a.astype(float), nan=0.0)), 0, 255)
    return "tif", _encode(Image.fromarray(a), "TIFF"), "F", expected[..., None]


def case_bilevel():
    a = _rng().random((H, W)) > 0.5
    return "png", _encode(Image.fromarray(a), "PNG"), "1", (a * 255.0)[..., None]


PALETTE = np.array([[255, 255, 255], [0, 0, 0], [200, 30, 40], [10, 220, 90]], np.uint8)


def _palette_image(index: np.ndarray) -> Image.Image:
    image = Image.fromarray(index.astype(np.uint8), "P")
    image.putpalette(PALETTE.flatten().tolist())
    return image


def case_palette_transparency():
    index = _rng().integers(0, 4, (H, W))
    expected = PALETTE[index].astype(float)
    expected[index == 2] = 255  # index 2 is transparent: white paper
    return "png", _encode(_palette_image(index), "PNG", transparency=2), "P", expected


def case_multiframe_first_frame():
    first, second = _rng().integers(0, 4, (H, W)), np.full((H, W), 3)
    frames = [_palette_image(first), _palette_image(second)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    return "gif", data, "P", PALETTE[first].astype(float)


def case_grey_alpha():
    grey, alpha = _rng().integers(0, 256, (2, H, W)).astype(np.uint8)
    image = Image.fromarray(np.stack([grey, alpha], -1), "LA")
    return "png", _encode(image, "PNG"), "LA", _on_white(grey[..., None], alpha)


def case_rgba():
    rgba = _rng().integers(0, 256, (H, W, 4)).astype(np.uint8)
    return "png", _encode(Image.fromarray(rgba, "RGBA"), "PNG"), "RGBA", _on_white(rgba[..., :3], rgba[..., 3])


def case_cmyk():
    cmyk = _rng().integers(0, 256, (H, W, 4)).astype(float)
    k = 255 - cmyk[..., 3:]
    expected = np.rint((255 - cmyk[..., :3]) * k / 255)
    image = Image.fromarray(cmyk.astype(np.uint8), "CMYK")
    return "tif", _encode(image, "TIFF"), "CMYK", expected


def case_exif_orientation():
    a = _rng().integers(0, 256, (H, W)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    return "png", _encode(Image.fromarray(a), "PNG", exif=exif), "L", np.rot90(a, -1)[..., None].astype(float)


def case_grey():
    a = _rng().integers(0, 256, (H, W)).astype(np.uint8)
    return "png", _encode(Image.fromarray(a), "PNG"), "L", a[..., None].astype(float)


def case_rgb():
    a = _rng().integers(0, 256, (H, W, 3)).astype(np.uint8)
    return "png", _encode(Image.fromarray(a), "PNG"), "RGB", a.astype(float)


MODE_CASES = {f.__name__[5:]: f for f in (
    case_i16, case_i16_big_endian, case_i32_wide, case_i32_holding_16_bit, case_float_0_1, case_float_wide_with_nan,
    case_bilevel, case_palette_transparency, case_multiframe_first_frame, case_grey_alpha, case_rgba, case_cmyk,
    case_exif_orientation, case_grey, case_rgb)}


def _luma(rgb: np.ndarray) -> np.ndarray:
    if rgb.shape[2] == 1:
        return rgb[..., 0]
    return np.rint(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_every_mode_decodes_to_the_expected_8_bit_pixels_in_ingest_and_predict(tmp_path, monkeypatch, case):
    from mathsym_zoo.data.cache import load_dataset, offline_steps
    from mathsym_zoo.predict import Classifier
    from mathsym_zoo.registry import resolve

    ext, data, mode, expected = MODE_CASES[case]()
    opened = Image.open(io.BytesIO(data))
    assert opened.mode == mode  # the fixture really is in the mode under test
    got = to_array(opened)
    assert got.shape == expected.shape
    assert np.abs(got.astype(float) - expected).max() <= 1, (got[..., 0], expected[..., 0])

    image = tmp_path / "d" / "sym" / f"img.{ext}"
    image.parent.mkdir(parents=True)
    image.write_bytes(data)
    monkeypatch.delenv("MATHSYM_ZOO_CACHE", raising=False)
    job = resolve(write_registry(tmp_path, 'type = "archive"\npath = "d"', extra='[[preprocessing]]\ntype = "grayscale"\n',
                                 preprocessing=False))
    ingested = load_dataset(job, progress=False).images[0]
    assert np.abs(ingested[..., 0].astype(float) - _luma(expected)).max() <= 1
    steps, _ = offline_steps(job)
    clf = Classifier(lambda b: b, class_names=["sym"], input_shape=ingested.shape, preprocessing=[],
                     steps=steps, source=tmp_path, kind="keras")
    np.testing.assert_array_equal(clf.preprocess(image), ingested)  # predict sees what training saw


# -- plugins at their boundary ----------------------------------------------------------

FLAKY_SOURCE = '''
import numpy as np
from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params
from mathsym_zoo.sources import Record

MODE = {mode!r}


class FlakyParams(Params):
    n: int = 600


class Flaky:
    def fingerprint(self):
        if MODE == "fingerprint":
            raise ValueError("no fingerprint today")
        return "flaky-1"

    def describe(self):
        return {{"kind": "flaky"}}

    def metadata(self):
        return None

    def records(self):
        if MODE == "records-call":
            raise OSError("disk on fire")
        for i in range(600):
            if MODE == "records-mid" and i == 300:
                raise RuntimeError("lost the connection at record 300")
            yield Record(f"x/{{i}}.png", "ab"[i % 2], image=np.full((4, 4), i % 256, np.uint8))


def factory(params, context):
    if MODE == "factory":
        raise KeyError("api_key")
    if MODE == "factory-exit":
        raise SystemExit(4)
    return Flaky()


@hookimpl
def register_sources(register):
    register("flaky", summary="A source that fails on purpose.", params=FlakyParams, factory=factory)
'''


@pytest.mark.parametrize("mode,where,message", [
    ("factory", "its factory", "KeyError: 'api_key'"),
    ("factory-exit", "its factory", "SystemExit: 4"),
    ("fingerprint", "fingerprint()", "ValueError: no fingerprint today"),
    ("records-call", "records()", "OSError: disk on fire"),
    ("records-mid", "records()", "RuntimeError: lost the connection at record 300"),
])
def test_source_plugin_failures_are_one_error_naming_plugin_and_component(tmp_path, cli, mode, where, message):
    reg = write_registry(tmp_path, 'type = "flaky"', preprocessing=False)
    reg.write_text(reg.read_text().replace("workers = 1", "workers = 2"))  # mid-stream with worker processes
    (tmp_path / "plugins" / "flaky_plugin.py").write_text(FLAKY_SOURCE.format(mode=mode))
    code, text = cli("info", "--no-progress")
    assert code == 1
    assert f"source 'flaky' of plugin 'flaky_plugin' failed in {where}: {message}" in text
    assert "--debug" in text
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir()), list(cache.iterdir())  # nothing half-written


def test_debug_shows_the_plugin_traceback(tmp_path, cli):
    write_registry(tmp_path, 'type = "flaky"', preprocessing=False)
    (tmp_path / "plugins" / "flaky_plugin.py").write_text(FLAKY_SOURCE.format(mode="records-mid"))
    code, text = cli("--debug", "info", "--no-progress", traceback_ok=True)
    assert code == 1
    assert "Traceback" in text and "flaky_plugin.py" in text and "lost the connection" in text


BROKEN_STEP = '''
from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params

class P(Params):
    pass

def factory(params):
    return 1 / 0

@hookimpl
def register_preprocessors(register):
    register("explode", summary="Fails when built.", params=P, factory=factory)
'''


def test_preprocessor_factory_failure_names_the_step(tmp_path, cli):
    archive_registry(tmp_path, write_members(tmp_path, "folder", GOOD), extra='[[preprocessing]]\ntype = "explode"\n')
    (tmp_path / "plugins" / "steps.py").write_text(BROKEN_STEP)
    code, text = cli("info", "--no-progress")
    assert code == 1
    assert "preprocessor 'explode' of plugin 'steps' failed in its factory: ZeroDivisionError: division by zero" in text


def test_call_factory_passes_our_own_errors_unchanged():
    from mathsym_zoo.components import Component, Params, call_factory
    from mathsym_zoo.errors import DataError, PluginError

    def factory(params):
        raise DataError("path is not set")

    comp = Component("source", "s", "", Params, factory, "p")
    with pytest.raises(DataError, match="^path is not set$"):
        call_factory(comp, None)
    with pytest.raises(PluginError, match="architecture 'a' of plugin 'p' failed in its factory: TypeError: x"):
        call_factory(Component("architecture", "a", "", Params, lambda: (_ for _ in ()).throw(TypeError("x")), "p"))


@pytest.mark.parametrize("body,message", [
    ("import sys\nsys.exit(3)\n", "called sys.exit(3) while importing"),
    ("raise KeyboardInterrupt\n", "raised KeyboardInterrupt while importing"),
    ("raise SystemExit\n", "called sys.exit(None) while importing"),
    ("from mathsym_zoo import hookimpl\n@hookimpl\ndef register_architectures(register):\n    raise SystemExit(2)\n",
     "called sys.exit(2) in its register_architectures hook"),
    ("import nosuchmodule_zz\n", "ModuleNotFoundError: No module named 'nosuchmodule_zz'"),
])
def test_plugin_exiting_or_interrupting_on_import_is_skipped(tmp_path, cli, body, message):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "rude.py").write_text(body)
    code, text = cli("models", "--json", "--plugins-dir", "plugins")
    assert code == 0
    assert "plugin 'rude' (" in text and message in text and "notebook-cnn" in text


def test_plugin_exiting_on_import_is_an_error_in_strict_mode(tmp_path, cli):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "rude.py").write_text("import sys\nsys.exit(3)\n")
    code, text = cli("models", "--plugins-dir", "plugins", "--strict")
    assert code == 1 and "plugin 'rude'" in text and "failed: called sys.exit(3)" in text


def test_real_ctrl_c_during_plugin_import_still_stops(tmp_path, cli):
    import signal

    # Python's own Ctrl-C handler, even when this pytest inherited SIGINT ignored (started in the background).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        real_ctrl_c_stops(tmp_path, cli)
    finally:
        signal.signal(signal.SIGINT, previous)


def real_ctrl_c_stops(tmp_path, cli):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "slow.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
                                                   "time.sleep(5)\n")
    code, text = cli("models", "--plugins-dir", "plugins")
    assert code == 130 and "skipped" not in text  # stopped, not isolated like a plugin's own KeyboardInterrupt


@pytest.mark.parametrize("only,command,message", [
    ("nothing", "check", "MATHSYM_ZOO_PLUGINS=nothing loads only the plugins named there, and 'nothing' matched no "
                         "plugin; so no plugin at all is loaded"),
    ("archive,nosuch", "sources", "'nosuch' matched no plugin; loaded: archive"),
])
def test_plugin_filter_that_hides_everything_says_so(tmp_path, cli, monkeypatch, only, command, message):
    archive_registry(tmp_path, write_members(tmp_path, "folder", GOOD), preprocessing=False)
    monkeypatch.setenv("MATHSYM_ZOO_PLUGINS", only)
    code, text = cli(command)
    assert code == (1 if command == "check" else 0)
    available = text.split("Available plugins: ", 1)[1].split(".")[0].split(", ")
    assert message in text and {"archive", "demo"} <= set(available)  # any other built-ins may sit between


# -- registry: non-finite values, missing files ----------------------------------------------


@pytest.mark.parametrize("assignment,key", [
    ("train.learning_rate=inf", "train.learning_rate"),
    ("train.learning_rate=nan", "train.learning_rate"),
    ("train.weight_decay=-inf", "train.weight_decay"),
    ("split.train=nan", "split.train"),
    ("models.m.dropout=inf", "models.m.dropout"),
])
def test_non_finite_values_are_refused(tmp_path, cli, assignment, key):
    archive_registry(tmp_path, write_members(tmp_path, "folder", GOOD), extra='[models.m]\ntype = "mobilenet-head"\n')
    code, text = cli("check", "--set", assignment)
    assert code == 1 and f"{key}: input should be a finite number" in text


@pytest.mark.parametrize("path,message", [
    ("missing.zip", "archive source: 'missing.zip' (resolved to"),
    ("junk.zip", "is not a supported archive"),
])
def test_check_reports_an_archive_source_it_cannot_use(tmp_path, cli, path, message):
    (tmp_path / "junk.zip").write_bytes(b"this is not an archive at all")
    archive_registry(tmp_path, path)
    code, text = cli("check")
    assert code == 1 and message in text


def test_check_passes_an_archive_source_that_exists(tmp_path, cli):
    archive_registry(tmp_path, write_members(tmp_path, "zip", GOOD))
    code, text = cli("check")
    assert code == 0 and "valid" in text


# -- JSON: no NaN ----------------------------------------------------------------------------


def test_json_writer_writes_null_for_non_finite_numbers(tmp_path):
    from mathsym_zoo.fileio import atomic_write_json

    atomic_write_json(tmp_path / "x.json", {"nan": float("nan"), "inf": np.float32("inf"),
                                             "arr": np.array([1.5, -np.inf]), "ok": (1, 2.5)})
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"nan": None, "inf": None, "arr": [1.5, None], "ok": [1, 2.5]}


def test_prediction_json_writes_null_for_nan_probabilities():
    from mathsym_zoo.cli.predict import predictions_json

    class Pred:
        ok = True

        def to_dict(self):
            return {"path": "x.png", "labels": ["a"], "probabilities": [float("nan")]}

    text = predictions_json([Pred()], "m", 1)
    assert json.loads(text)["predictions"][0]["probabilities"] == [None]


# -- layout warnings -------------------------------------------------------------------------


def test_batch_folders_under_the_labels_are_reported_with_the_label_pattern_fix(tmp_path, cli):
    members = {f"train/{label}/batch{b}/{label}{i}.png": png(9 * i + b) for label in ("x", "y") for b in (0, 1)
               for i in range(2)}
    archive_registry(tmp_path, write_members(tmp_path, "folder", members))
    for _ in ("ingest", "from the cache"):  # said once each time the data is used
        code, text = cli("info", "--no-progress")
        assert code == 0
        assert text.count("labels 'batch0', 'batch1' look like split or batch folders, not classes") == 1
        assert "label_pattern = '([^/]+)/[^/]+/[^/]+$'" in text
    (tmp_path / "registry.toml").write_text((tmp_path / "registry.toml").read_text().replace(
        'path = "d"', "path = \"d\"\nlabel_pattern = '([^/]+)/[^/]+/[^/]+$'"))
    stats = info_json(cli)["stats"]
    assert stats["classes"] == 2 and stats["warnings"] == [] and set(stats["largest_classes"]) == {"x", "y"}


@pytest.mark.parametrize("counts,message", [
    ({"digits": 60, "a": 5, "b": 5}, "label 'digits' holds 60 of 70 images (86%)"),
    ({"only": 3}, "only one label ('only') was found"),
])
def test_one_label_holding_most_images_is_reported(tmp_path, cli, counts, message):
    members = {f"d/{label}/{i}.png": png(i % 250) for label, n in counts.items() for i in range(n)}
    archive_registry(tmp_path, write_members(tmp_path, "folder", members))
    code, text = cli("info", "--no-progress")
    assert code == 0 and message in text and "label_pattern" in text
