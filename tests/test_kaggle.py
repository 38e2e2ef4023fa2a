"""The kaggle source, offline, through kagglehub's own cache lookup."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from mathsym_zoo.data.cache import load_dataset
from mathsym_zoo.errors import DataError
from mathsym_zoo.registry import resolve
from fixtures.make_compressed_rar import ARCHIVE as COMPRESSED_RAR
from fixtures.make_compressed_rar import NOT_AN_IMAGE
from fixtures.make_compressed_rar import images as compressed_rar_images
from mathsym_zoo.data import archives
from rar5writer import write_rar5

HANDLE = "xainano/handwrittenmathsymbols"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails at once, as on an offline machine."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((45, 45, 3), value, dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def fill_kagglehub_cache(root, version: int = 2, marker: bool = True, archive=None):
    """The layout kagglehub 1.x leaves after downloading a dataset version:
    ``datasets/<owner>/<name>/versions/<v>/...`` plus ``datasets/<owner>/<name>/<v>.complete``.
    ``data.rar`` is a copy of ``archive``, or a stored RAR5 of six JPEGs."""
    base = root / "datasets" / "xainano" / "handwrittenmathsymbols"
    folder = base / "versions" / str(version)
    folder.mkdir(parents=True)
    if archive is not None:
        shutil.copyfile(archive, folder / "data.rar")
    else:
        members = [("extracted_images", None)]
        for label, values in {"alpha": (10, 20, 30), "sum": (200, 210), "!": (100,)}.items():
            members.append((f"extracted_images/{label}", None))
            members += [(f"extracted_images/{label}/{label}_{v}.jpg", jpeg(v)) for v in values]
        write_rar5(folder / "data.rar", members)
    if marker:
        (base / f"{version}.complete").touch()
    return folder


def kaggle_job(tmp_path, **params):
    raw = {"data": {"source": "kaggle", "cache_dir": str(tmp_path / "cache")},
           "sources": {"kaggle": {"type": "kaggle", "handle": HANDLE, "version": 2, **params}},
           "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [45, 45]}]}
    return resolve(raw=raw)


def test_kaggle_source_end_to_end_offline(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    fill_kagglehub_cache(tmp_path / "kagglehub")
    job = kaggle_job(tmp_path)
    start = time.perf_counter()
    ds = load_dataset(job, progress=False)
    assert time.perf_counter() - start < 20
    assert ds.class_names == ("!", "alpha", "sum")
    assert len(ds) == 6 and ds.images.shape == (6, 45, 45, 1)
    assert ds.source["fingerprint"] == f"kaggle:{HANDLE}/versions/2/data.rar"
    assert ds.source["kind"] == "kaggle" and ds.source["version"] == 2
    # a second load needs no archive at all: remove the whole kagglehub download
    shutil.rmtree(tmp_path / "kagglehub")
    ds2 = load_dataset(job, progress=False)
    assert ds2.path == ds.path and ds2.class_names == ds.class_names
    assert np.array_equal(ds2.images, ds.images) and np.array_equal(ds2.labels, ds.labels)
    meta = job.build_source().metadata()
    assert meta["name"] == "Handwritten math symbols dataset"
    assert meta["license"].startswith("CC0")
    assert meta["date_published"].startswith("2017-01-15")


def test_empty_kagglehub_cache_gives_one_clear_message(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    source = kaggle_job(tmp_path).build_source()
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        list(source.records())
    assert time.perf_counter() - start < 30
    text = str(err.value)
    assert f"could not get Kaggle dataset {HANDLE!r} version 2" in text
    assert str(tmp_path / "kagglehub" / "datasets" / "xainano" / "handwrittenmathsymbols" / "versions" / "2") in text
    assert "(missing)" in text and "log in" in text and "archive" in text and "2.complete" in text


def test_cache_without_completion_marker_is_not_used(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    fill_kagglehub_cache(tmp_path / "kagglehub", marker=False)
    with pytest.raises(DataError, match="without its completion marker"):
        list(kaggle_job(tmp_path).build_source().records())


def test_download_that_never_answers_times_out(tmp_path, monkeypatch):
    import kagglehub

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setattr(kagglehub, "dataset_download", lambda *a, **k: time.sleep(30))
    source = kaggle_job(tmp_path, download_timeout=0.2).build_source()
    start = time.perf_counter()
    with pytest.raises(DataError, match="no answer within 0.2 s"):
        source.dataset_dir()
    assert time.perf_counter() - start < 5


def test_unversioned_handle_hint_and_fingerprint(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    source = kaggle_job(tmp_path, version=None).build_source()
    with pytest.raises(DataError, match="unversioned handle always asks the Kaggle API"):
        source.fingerprint()


def test_missing_archive_member_lists_what_is_there(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    fill_kagglehub_cache(tmp_path / "kagglehub")
    with pytest.raises(DataError, match=r"no 'images.zip'.*it holds: data.rar"):
        list(kaggle_job(tmp_path, archive="images.zip").build_source().records())


def test_bad_handle_is_a_config_error():
    from mathsym_zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="sources.kaggle.handle"):
        resolve(raw={"sources": {"kaggle": {"type": "kaggle", "handle": "no-slash"}}})


# -- the compressed RAR path end to end (the real data.rar is compressed) --------

# CI installs unar (scripts/test.sh); only a local machine without it may skip.
needs_unar = pytest.mark.skipif(shutil.which("unar") is None and not os.environ.get("CI"),
                                reason="unar not installed (apt-get install unar)")


@pytest.fixture
def extractor_calls(monkeypatch):
    """Every RAR extraction command run (unar / unrar with arguments), in order."""
    calls = []
    real_run = subprocess.run

    def spy(cmd, *args, **kwargs):
        if isinstance(cmd, (list, tuple)) and len(cmd) > 1 and os.path.basename(str(cmd[0])) in ("unar", "unrar"):
            calls.append([str(c) for c in cmd])
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(archives.subprocess, "run", spy)
    return calls


def compressed_rar_job(tmp_path, monkeypatch, via: str):
    """A job reading tests/fixtures/compressed.rar through the `kaggle` source (a filled
    kagglehub cache) or the `archive` source; returns (job, the data.rar it reads)."""
    if via == "kaggle":
        monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
        rar = fill_kagglehub_cache(tmp_path / "kagglehub", archive=COMPRESSED_RAR) / "data.rar"
        return kaggle_job(tmp_path), rar
    rar = tmp_path / "data.rar"
    shutil.copyfile(COMPRESSED_RAR, rar)
    raw = {"data": {"source": "local", "cache_dir": str(tmp_path / "cache")},
           "sources": {"local": {"type": "archive", "path": str(rar)}},
           "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [45, 45]}]}
    return resolve(raw=raw), rar


def test_fixture_members_are_really_compressed():
    import rarfile

    with rarfile.RarFile(COMPRESSED_RAR) as rf:
        files = [i for i in rf.infolist() if not i.is_dir()]
    assert {i.filename for i in files} == set(compressed_rar_images()) | {NOT_AN_IMAGE}
    assert all(i.compress_type != rarfile.RAR_M0 for i in files)  # rarfile alone cannot read them


@needs_unar
@pytest.mark.parametrize("via", ["kaggle", "archive"])
def test_compressed_rar_into_the_cache_with_one_extractor_call(tmp_path, monkeypatch, no_network, extractor_calls, via):
    job, rar = compressed_rar_job(tmp_path, monkeypatch, via)
    ds = load_dataset(job, progress=False)
    assert len(extractor_calls) == 1, extractor_calls  # the whole archive at once, not one call per member
    assert str(rar.resolve()) in extractor_calls[0]
    expected = compressed_rar_images()
    assert ds.class_names == ("!", "alpha", "sum")
    assert sorted(ds.paths) == sorted(expected) and ds.images.shape == (6, 45, 45, 1)
    for path, label, image in zip(ds.paths, ds.labels, ds.images):
        assert ds.class_names[label] == path.split("/")[1]
        np.testing.assert_array_equal(image[..., 0], expected[path], err_msg=path)
    assert ds.report["skipped"] == {"not an image": 1}
    # Built once: the next load reads the cache and runs no extractor. A Kaggle version is
    # immutable, so its data.rar may even be gone; a local archive is re-hashed (it must stay).
    if via == "kaggle":
        rar.unlink()
    again = load_dataset(job, progress=False)
    assert len(extractor_calls) == 1 and again.path == ds.path
    assert np.array_equal(again.images, ds.images)
