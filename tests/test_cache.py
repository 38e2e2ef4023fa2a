"""The decoded cache: contents, report, keying, parallel ingest, atomicity, checksums."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params
from mathsym_zoo.data import cache
from mathsym_zoo.data.cache import load_dataset
from mathsym_zoo.errors import DataError
from mathsym_zoo.plugins import PluginSet
from mathsym_zoo.registry import resolve
from mathsym_zoo.sources import Record

REPO = Path(__file__).resolve().parents[1]


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def glyph(seed: int, size=(12, 10)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)


def make_zip(path: Path, *, classes=("beta", "alpha", "gamma"), per_class=4, extra=None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for c, name in enumerate(classes):
            for i in range(per_class):
                zf.writestr(f"extracted_images/{name}/w{i % 2}_{i}.png", encode(glyph(c * 100 + i)))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def job_for(tmp_path: Path, archive: Path, *, size=(8, 8), workers=1, extra_steps=(), plugin_paths=(),
            **source_params):
    raw = {
        "plugin_paths": [str(p) for p in plugin_paths],
        "data": {"source": "tiny", "cache_dir": str(tmp_path / "cache"), "workers": workers},
        "sources": {"tiny": {"type": "archive", "path": str(archive), **source_params}},
        "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": list(size)}, *extra_steps],
    }
    return resolve(raw=raw)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_ingest_contents_and_report(tmp_path):
    png = encode(glyph(1))
    extra = {
        "extracted_images/alpha/corrupt.png": b"\x89PNG\r\n\x1a\n garbage",
        "extracted_images/alpha/truncated.jpg": encode(glyph(7, (40, 40)), "JPEG")[:200],
        "extracted_images/alpha/notes.txt": b"hello",
        "extracted_images/alpha/zero.png": b"",
        "../escape/x.png": png,
        "extracted_images/beta/copy.png": encode(glyph(0)),  # glyph(0) is beta/w0_0.png: a duplicate
        "extracted_images/alpha/dup_of_beta.png": encode(glyph(0)),  # the same pixels under a second label
    }
    archive = make_zip(tmp_path / "d.zip", extra=extra)
    console = quiet()
    ds = load_dataset(job_for(tmp_path, archive, group_pattern=r"/(w\d)_"), console=console)
    assert ds.class_names == ("alpha", "beta", "gamma")
    assert len(ds) == 14 and ds.images.shape == (14, 8, 8, 1) and ds.images.dtype == np.uint8
    assert isinstance(ds.images, np.memmap) and not ds.images.flags.writeable
    assert ds.labels.dtype == np.int32
    assert set(ds.groups.tolist()) == {"w0", "w1", ""}  # copy.png has no group id
    # hashes are sha1 of the stored pixels
    import hashlib

    assert all(hashlib.sha1(ds.images[i].tobytes()).hexdigest() == ds.hashes[i] for i in range(len(ds)))
    rep = ds.report
    assert rep["skipped"] == {"corrupt or truncated image": 2, "not an image": 1, "empty file": 1, "unsafe path": 1}
    assert {i["path"] for i in rep["skipped_items"]} >= {"../escape/x.png", "extracted_images/alpha/zero.png"}
    assert rep["duplicates"]["sets"] == 1 and rep["duplicates"]["images"] == 3
    assert rep["conflicts"]["sets"] == 1 and rep["conflicts"]["examples"][0]["labels"] == ["alpha", "beta"]
    assert rep["sizes"] == {"10x12": 14} and rep["modes"] == {"L": 14}
    out = console.file.getvalue()
    assert "14 images in 3 classes" in out and "corrupt or truncated image" in out
    manifest = json.loads((ds.path / "manifest.json").read_text())
    assert manifest["key"] == ds.key and ds.path.name == f"tiny-{ds.key[:12]}"
    assert not list(ds.path.parent.glob(".*"))  # no temporary folders left


def test_second_load_reuses_the_cache_and_config_changes_rebuild(tmp_path):
    archive = make_zip(tmp_path / "d.zip")
    first = load_dataset(job_for(tmp_path, archive), progress=False)
    stamp = (first.path / "manifest.json").stat().st_mtime_ns
    again = load_dataset(job_for(tmp_path, archive), progress=False)
    assert again.path == first.path and (again.path / "manifest.json").stat().st_mtime_ns == stamp
    resized = load_dataset(job_for(tmp_path, archive, size=(6, 6)), progress=False)
    assert resized.path != first.path and resized.images.shape[1:] == (6, 6, 1)
    inverted = load_dataset(job_for(tmp_path, archive, extra_steps=[{"type": "invert"}]), progress=False)
    assert inverted.path not in (first.path, resized.path)
    assert np.array_equal(inverted.images[0], 255 - np.asarray(first.images[0]))
    # an online step does not change the decoded data
    augmented = load_dataset(job_for(tmp_path, archive, extra_steps=[{"type": "augment"}]), progress=False)
    assert augmented.path == first.path
    # new archive content -> new fingerprint -> new cache
    time.sleep(0.01)
    make_zip(archive, per_class=5)
    changed = load_dataset(job_for(tmp_path, archive), progress=False)
    assert changed.path != first.path and len(changed) == 15


def test_parallel_ingest_matches_in_process(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "d.zip", per_class=7)
    serial = load_dataset(job_for(tmp_path / "a", archive, workers=1), progress=False)
    monkeypatch.setattr(cache, "CHUNK", 3)  # many chunks, so the pool really runs
    parallel = load_dataset(job_for(tmp_path / "b", archive, workers=2), progress=False)
    assert parallel.report["workers"] == 2 and serial.report["workers"] == 1
    assert np.array_equal(serial.images, parallel.images)
    assert serial.paths.tolist() == parallel.paths.tolist()
    assert serial.hashes.tolist() == parallel.hashes.tolist()


def test_checksum_mismatch_rebuilds_with_a_warning(tmp_path):
    archive = make_zip(tmp_path / "d.zip")
    job = job_for(tmp_path, archive)
    ds = load_dataset(job, progress=False)
    labels = ds.path / "labels.npy"
    raw = bytearray(labels.read_bytes())
    raw[-1] ^= 0x01
    labels.write_bytes(bytes(raw))
    console = quiet()
    again = load_dataset(job, progress=False, console=console)
    assert "does not match its recorded checksum" in console.file.getvalue()
    assert "rebuilding" in console.file.getvalue()
    assert again.path == ds.path and again.labels.tolist() == ds.labels.tolist()  # ds.labels: read before the damage
    cache.open_cache(again.path, key=again.key)  # valid again: raises CacheInvalid otherwise


def test_half_written_cache_is_not_trusted(tmp_path):
    archive = make_zip(tmp_path / "d.zip")
    job = job_for(tmp_path, archive)
    ds = load_dataset(job, progress=False)
    (ds.path / "manifest.json").unlink()
    console = quiet()
    load_dataset(job, progress=False, console=console)
    assert "manifest is missing" in console.file.getvalue()


SLOW_STEP = textwrap.dedent('''
    import os, time
    from mathsym_zoo import hookimpl
    from mathsym_zoo.components import Params, Preprocessor

    class SlowParams(Params):
        pass

    class Slow(Preprocessor):
        stage = "offline"
        def __init__(self, params):
            self.params = params
        def apply(self, image):
            time.sleep(float(os.environ.get("SLOW_STEP_SECONDS", "0")))  # not part of the cache key
            return image

    @hookimpl
    def register_preprocessors(register):
        register("slow", summary="sleeps", params=SlowParams, factory=Slow)
''')

KILLED_INGEST = textwrap.dedent('''
    import sys
    from mathsym_zoo.registry import resolve
    from mathsym_zoo.data.cache import load_dataset
    import json
    job = resolve(raw=json.loads(sys.argv[1]))
    load_dataset(job, progress=False)
''')


def test_killed_ingest_leaves_nothing_trusted(tmp_path):
    plugin = tmp_path / "slow_step.py"
    plugin.write_text(SLOW_STEP)
    archive = make_zip(tmp_path / "d.zip", per_class=10)
    cache_dir = tmp_path / "cache"

    raw = {"plugin_paths": [str(plugin)], "data": {"source": "tiny", "cache_dir": str(cache_dir), "workers": 1},
           "sources": {"tiny": {"type": "archive", "path": str(archive)}},
           "preprocessing": [{"type": "grayscale"}, {"type": "slow"}]}
    env = {**os.environ, "SLOW_STEP_SECONDS": "0.2"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_INGEST, json.dumps(raw)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list(cache_dir.glob(".tiny-*.tmp-*/images.npy")):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        time.sleep(0.3)  # mid-ingest: a few images written
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = list(cache_dir.glob(".tiny-*"))
    assert leftovers, "the killed build should have left its temporary folder"
    assert not list(cache_dir.glob("tiny-*"))  # nothing published
    # Same config, same key: the next load builds afresh and removes the dead build's folder.
    ds = load_dataset(resolve(raw=raw), progress=False)
    assert len(ds) == 30 and not list(cache_dir.glob(".tiny-*"))


class ArrayParams(Params):
    count: int = 6


class ArraySource:
    def __init__(self, params, context):
        self.params = params

    def fingerprint(self):
        return f"arrays:{self.params.count}"

    def describe(self):
        return {"kind": "arrays", "count": self.params.count}

    def records(self):
        for i in range(self.params.count):
            yield Record(f"gen/{i}", "odd" if i % 2 else "even", group=f"g{i // 2}",
                         image=np.full((4, 5), i * 10, dtype=np.uint8))
        yield Record("gen/rgb", "even", image=np.zeros((4, 5, 3), dtype=np.uint8))
        yield Record("gen/broken", "odd", image=np.zeros((4, 5), dtype=np.float32))
        yield Record("gen/unlabelled", None, image=np.zeros((4, 5), dtype=np.uint8))

    def metadata(self):
        return None


class ArrayPlugin:
    @staticmethod
    @hookimpl
    def register_sources(register):
        register("arrays", summary="test arrays", params=ArrayParams, factory=ArraySource)


def test_decoded_arrays_skip_decoding_but_are_preprocessed(tmp_path):
    plugins = PluginSet()
    plugins.register(ArrayPlugin, name="arrays-test")
    raw = {"data": {"source": "arrays", "cache_dir": str(tmp_path)},
           "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [6, 6]}]}
    ds = load_dataset(resolve(raw=raw, plugins=plugins), progress=False)
    assert len(ds) == 7 and ds.images.shape == (7, 6, 6, 1)
    assert ds.report["skipped"] == {"invalid image array (decoded images must be uint8, got float32)": 1,
                                    "no label": 1}
    assert ds.images[1, 2, 3, 0] == 10 and ds.images[1, 5, 3, 0] == 255  # 5x6 scaled, padded with paper colour
    assert ds.groups[0] == "g0"


def test_mixed_sizes_without_resize_are_reported(tmp_path):
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/1.png", encode(glyph(1, (5, 5))))
        zf.writestr("a/2.png", encode(glyph(2, (6, 5))))
    raw = {"data": {"source": "t", "cache_dir": str(tmp_path / "c")},
           "sources": {"t": {"type": "archive", "path": str(archive)}}, "preprocessing": []}
    ds = load_dataset(resolve(raw=raw), progress=False)
    assert len(ds) == 1 and list(ds.report["skipped"]) == [cache.SKIP_SHAPE]


def test_no_usable_images_is_a_clear_error(tmp_path):
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/readme.txt", b"x")
    with pytest.raises(DataError, match="no usable images.*1 not an image"):
        load_dataset(job_for(tmp_path, archive), progress=False)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != "checksums.json"]


def test_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist; set `path`"):
        load_dataset(job_for(tmp_path, tmp_path / "nope.zip"), progress=False)


CROHME = REPO.parent / "shared" / "data" / "crohme_bench.zip"


@pytest.mark.slow
@pytest.mark.shared_data("crohme_bench.zip")
def test_real_crohme_archive(tmp_path):
    raw = {"data": {"source": "crohme", "cache_dir": str(tmp_path)},
           "sources": {"crohme": {"type": "archive", "path": str(CROHME),
                                  "group_pattern": r"([^/]+)_\d+\.[A-Za-z]+$"}},
           "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [45, 45]}]}
    ds = load_dataset(resolve(raw=raw), progress=False)
    assert len(ds) == 46_479 and ds.num_classes == 82
    assert ds.images.shape == (46_479, 45, 45, 1) and not ds.report["skipped"]
