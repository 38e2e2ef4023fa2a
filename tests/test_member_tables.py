"""Random-access member tables: zip entries read by offset in any process, and
record tables giving exactly what the streaming readers give."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import zipfile

import numpy as np
import pytest

from mathsym_zoo.data import archives
from mathsym_zoo.data.archives import archive_records, member_table, record_table
from test_archives import BAD, GOOD, RAR_SAMPLES, STEST_MD5, needs_samples, needs_unar, png, write_archive

METHODS = {"stored.png": zipfile.ZIP_STORED, "deflated.png": zipfile.ZIP_DEFLATED,
           "bzip2.png": zipfile.ZIP_BZIP2, "lzma.png": zipfile.ZIP_LZMA}


def zip_of_methods(path):
    data = {f"d/{name}": png(i * 40, size=(30, 20)) + bytes(200) for i, name in enumerate(METHODS)}
    with zipfile.ZipFile(path, "w") as zf:
        for name, method in METHODS.items():
            zf.writestr(f"d/{name}", data[f"d/{name}"], compress_type=method)
    return data


def _read_slice(args):
    table, start, stop = args
    return [(m.name, m.data, m.skip) for m in map(table.read, range(start, stop))]


def test_zip_members_of_every_method_read_alike_here_and_in_forked_workers(tmp_path):
    data = zip_of_methods(tmp_path / "m.zip")
    with member_table(tmp_path / "m.zip") as table:
        assert {m.name: m.data for m in map(table.read, range(len(table)))} == data
        table.read(0)  # the parent's own file handle is open before the workers fork
        with mp.get_context("fork").Pool(2) as pool:
            parts = pool.map(_read_slice, [(table, 0, 2), (table, 2, 4)])
    assert {name: d for part in parts for name, d, _ in part} == data


def test_zip_with_data_before_it_is_read_at_the_right_offsets(tmp_path):
    data = zip_of_methods(tmp_path / "m.zip")
    sfx = tmp_path / "sfx.zip"
    sfx.write_bytes(b"#!/bin/sh\nexit 0\n" * 50 + (tmp_path / "m.zip").read_bytes())
    table = archives._zip_table(sfx, archives._read_all, 2**20)  # (detect_format wants the zip magic first)
    assert {m.name: m.data for m in map(table.read, range(len(table)))} == data
    table.close()


def test_damaged_or_lying_zip_entries_are_unreadable_not_inflated(tmp_path):
    path = tmp_path / "bad.zip"
    payload = bytes(100_000)  # deflates to ~100 bytes
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/ok.png", png(1))
        zf.writestr("a/crc.png", png(2), compress_type=zipfile.ZIP_STORED)
        zf.writestr("a/bomb.png", payload)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        crc_info, bomb_info = zf.getinfo("a/crc.png"), zf.getinfo("a/bomb.png")
    at = crc_info.header_offset + 30 + len("a/crc.png") + 5
    raw[at] ^= 0xFF  # flip a data byte: the CRC no longer matches
    path.write_bytes(bytes(raw))
    with member_table(path) as table:
        # The directory now says the bomb inflates to 10 bytes: reading stops there.
        table.keys[table.names.index("a/bomb.png"), 3] = 10
        read = {m.name: m for m in map(table.read, range(len(table)))}
        # A compressed size of 1 TiB is never allocated, let alone read.
        table.keys[table.names.index("a/ok.png"), 2] = 2**40
        lying = table.read(table.names.index("a/ok.png"))
    assert read["a/ok.png"].data == png(1)
    assert read["a/crc.png"].skip == read["a/bomb.png"].skip == lying.skip == "unreadable archive member"
    assert bomb_info.file_size == len(payload)


@pytest.mark.parametrize("fmt", ["zip", "folder", "rar", "tar"])
def test_record_tables_give_what_the_streaming_reader_gives(tmp_path, fmt):
    members = {**GOOD, **BAD, "../evil.png": png(), "top.png": png()}
    path = write_archive(tmp_path, fmt, {k: v for k, v in members.items() if fmt != "folder" or ".." not in k})
    with record_table(path, group_pattern=r"_(\d)\.png$") as table:
        if fmt in ("tar", "rar"):
            assert table is None  # read front to back only (this RAR's members are stored: rarfile reads them)
            return
        assert table.records(0, len(table)) == list(archive_records(path, group_pattern=r"_(\d)\.png$"))


@needs_unar
@needs_samples
def test_compressed_rar_members_are_read_by_forked_workers_from_the_one_extraction():
    with member_table(RAR_SAMPLES / "rar5-solid-qo.rar") as table:
        assert table.kind == "inside" and len(table) > 1
        with mp.get_context("fork").Pool(2) as pool:
            parts = pool.map(_read_slice, [(table, i, i + 1) for i in range(len(table))])
    assert all(hashlib.md5(data).hexdigest() == STEST_MD5 for part in parts for _, data, _ in part)


def test_ingest_through_worker_read_tables_equals_the_parent_read_stream(tmp_path, monkeypatch):
    from mathsym_zoo.data import cache
    from mathsym_zoo.data.cache import load_dataset
    from mathsym_zoo.registry import resolve
    from test_cache import encode, glyph

    members = {f"extracted_images/c{i % 3}/w{i % 4}_{i}.png": encode(glyph(i)) for i in range(60)}
    members.update({"extracted_images/c0/broken.png": b"not a png", "notes.txt": b"x", "top.png": encode(glyph(0))})
    monkeypatch.setattr(cache, "CHUNK", 7)  # many tasks, several in flight
    loaded = {}
    for fmt in ("zip", "tar", "folder"):
        (tmp_path / fmt).mkdir()
        path = write_archive(tmp_path / fmt, fmt, members)
        raw = {"data": {"source": "s", "cache_dir": str(tmp_path / fmt / "cache"), "workers": 2},
               "sources": {"s": {"type": "archive", "path": str(path), "group_pattern": r"/(w\d)_"}},
               "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [8, 8]}]}
        loaded[fmt] = load_dataset(resolve(raw=raw), progress=False)
    zip_, tar = loaded["zip"], loaded["tar"]
    assert zip_.report["workers"] == tar.report["workers"] == 2 and len(zip_) == 60
    for ds in (tar, loaded["folder"]):
        order = np.argsort(ds.paths)
        ref = np.argsort(zip_.paths)
        assert ds.paths[order].tolist() == zip_.paths[ref].tolist()
        assert np.array_equal(ds.images[order], zip_.images[ref])
        assert ds.hashes[order].tolist() == zip_.hashes[ref].tolist()
        assert ds.groups[order].tolist() == zip_.groups[ref].tolist()
        assert ds.report["skipped"] == zip_.report["skipped"]
    assert zip_.report["skipped"] == {"corrupt or truncated image": 1, "not an image": 1, "no label": 1}
