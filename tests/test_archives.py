"""Archive readers: every format, every bad-member case, RAR through rarfile and unar."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from mathsym_zoo.data import archives
from mathsym_zoo.data.archives import archive_records, extracted_rar, iter_members
from mathsym_zoo.errors import DataError
from rar5writer import write_rar5

RAR_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rar-samples"
STEST_MD5 = "2c3dc8055c457947e5a16d46c969ea79"
HAVE_UNAR = shutil.which("unar") is not None
# CI installs unar (.ci/run); only a local machine without it may skip.
needs_unar = pytest.mark.skipif(not HAVE_UNAR and not os.environ.get("CI"),
                                reason="unar not installed (apt-get install unar)")
needs_samples = pytest.mark.shared_data("rar-samples")


def png(value: int = 0, size=(6, 5)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


GOOD = {
    "extracted_images/alpha/a_1.png": png(10),
    "extracted_images/alpha/a_2.png": png(20),
    "extracted_images/beta/b_1.png": png(30),
}
BAD = {
    "extracted_images/alpha/readme.txt": b"not an image",
    "extracted_images/beta/empty.png": b"",
    "__MACOSX/extracted_images/alpha/._a_1.png": b"\x00\x05\x16\x07",
}


def write_archive(tmp_path: Path, fmt: str, members: dict[str, bytes]) -> Path:
    if fmt == "zip":
        path = tmp_path / "data.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(zipfile.ZipInfo(name), data)
        return path
    if fmt.startswith("tar"):
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt]
        path = tmp_path / f"data.{fmt}"
        with tarfile.open(path, mode) as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return path
    if fmt == "rar":
        return write_rar5(tmp_path / "data.rar", list(members.items()))
    root = tmp_path / "folder"
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


FORMATS = ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz", "rar", "folder"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_yields_labelled_images_and_skips_bad_members(tmp_path, fmt):
    path = write_archive(tmp_path, fmt, {**GOOD, **BAD})
    assert archives.detect_format(path) == fmt
    records = list(archive_records(path))
    good = {r.path: r for r in records if not r.skip}
    assert {p: r.data for p, r in good.items()} == GOOD
    assert {r.label for r in good.values()} == {"alpha", "beta"}
    skipped = {r.path: r.skip for r in records if r.skip}
    assert skipped == {
        "extracted_images/alpha/readme.txt": "not an image",
        "extracted_images/beta/empty.png": "empty file",
        "__MACOSX/extracted_images/alpha/._a_1.png": "macOS metadata file",
    }


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz", "rar"])
def test_unsafe_member_names_are_skipped_not_read(tmp_path, fmt):
    members = {**GOOD, "../evil/x.png": png(), "/abs/olute.png": png(), "a/../../b/y.png": png(),
               "C:/windows/z.png": png()}
    path = write_archive(tmp_path, fmt, members)
    skipped = {r.path: r.skip for r in archive_records(path) if r.skip}
    assert set(skipped.values()) == {"unsafe path"}
    assert len(skipped) == 4


def test_tar_links_and_members_under_links_are_skipped(tmp_path):
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as tf:
        for name, kind, target in (("imgs/up", tarfile.SYMTYPE, ".."), ("imgs/hard.png", tarfile.LNKTYPE, "x")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
        data = png()
        info = tarfile.TarInfo("imgs/up/pwned.png")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    reasons = {r.path: r.skip for r in archive_records(path)}
    assert reasons == {"imgs/up": "link (not a regular file)", "imgs/hard.png": "link (not a regular file)",
                       "imgs/up/pwned.png": "unsafe path"}


def test_folder_symlink_leaving_the_folder_is_unsafe(tmp_path):
    root = write_archive(tmp_path, "folder", GOOD)
    outside = tmp_path / "secret.png"
    outside.write_bytes(png())
    (root / "extracted_images" / "alpha" / "link.png").symlink_to(outside)
    (root / "extracted_images" / "alpha" / "inside.png").symlink_to(root / "extracted_images/alpha/a_1.png")
    reasons = {r.path: r.skip for r in archive_records(root)}
    assert reasons["extracted_images/alpha/link.png"] == "unsafe path"
    assert reasons["extracted_images/alpha/inside.png"] is None


def test_label_and_group_patterns(tmp_path):
    members = {"w1/sum_3.png": png(), "w2/sum_4.png": png(), "w2/int_1.png": png(), "w2/noscore.png": png()}
    path = write_archive(tmp_path, "zip", members)
    records = {r.path: r for r in archive_records(path, label_pattern=r"/([a-z]+)_\d+\.png$",
                                                  group_pattern=r"^(?P<group>w\d)/")}
    assert records["w1/sum_3.png"].label == "sum" and records["w1/sum_3.png"].group == "w1"
    assert records["w2/int_1.png"].label == "int" and records["w2/int_1.png"].group == "w2"
    assert records["w2/noscore.png"].skip == "no label"


def test_member_at_archive_root_has_no_label(tmp_path):
    path = write_archive(tmp_path, "zip", {"top.png": png(), **GOOD})
    assert {r.path: r.skip for r in archive_records(path)}["top.png"] == "no label"


def test_unsupported_and_missing_archives_fail_clearly(tmp_path):
    junk = tmp_path / "data.7z"
    junk.write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\0" * 600)
    with pytest.raises(DataError, match="not a supported archive.*supported: .zip"):
        list(iter_members(junk))
    with pytest.raises(DataError, match="does not exist"):
        list(iter_members(tmp_path / "missing.zip"))


def test_truncated_tar_gz_is_a_clear_error(tmp_path):
    path = write_archive(tmp_path, "tar.gz", {f"a/{i}.png": os.urandom(5000) for i in range(5)})
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataError, match="damaged or truncated"):
        list(iter_members(path))


# -- RAR ---------------------------------------------------------------------------


def test_stored_rar5_is_read_by_rarfile_without_any_tool(tmp_path, monkeypatch):
    path = write_archive(tmp_path, "rar", {**GOOD, "extracted_images/beta/link_target.txt": b"x"})
    monkeypatch.setattr(archives, "rar_tools", lambda: pytest.fail("no tool needed for stored members"))
    members = {m.name: m.data for m in iter_members(path)}
    assert {k: v for k, v in members.items() if k in GOOD} == GOOD


@needs_unar
def test_stored_rar5_written_by_our_writer_extracts_with_unar(tmp_path):
    path = write_archive(tmp_path, "rar", GOOD)
    with extracted_rar(path) as root:
        assert {n: (root / n).read_bytes() for n in GOOD} == GOOD


@needs_unar
@needs_samples
@pytest.mark.parametrize("name", ["rar3-solid.rar", "rar5-blake.rar", "rar5-crc.rar", "rar5-solid-qo.rar",
                                  "rar5-times.rar", "seektest.rar"])
def test_compressed_rar_samples_extract_with_one_tool_call(name, monkeypatch):
    calls = []
    real_run = archives.subprocess.run

    def counting_run(cmd, *a, **kw):
        if cmd and os.path.basename(str(cmd[0])) in {"unar", "unrar"}:
            calls.append(cmd)
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(archives.subprocess, "run", counting_run)
    members = list(iter_members(RAR_SAMPLES / name))
    assert members and all(hashlib.md5(m.data).hexdigest() == STEST_MD5 for m in members)
    assert len(calls) == 1


@needs_unar
@needs_samples
def test_rar_subdirs_and_unicode_names():
    names = {m.name for m in iter_members(RAR_SAMPLES / "rar3-subdirs.rar")}
    assert "sub/with space/long fn.txt" in names
    assert len({m.name for m in iter_members(RAR_SAMPLES / "unicode.rar")}) == 2


@needs_unar
@needs_samples
def test_rar_hard_links_are_skipped():
    members = {m.name: m for m in iter_members(RAR_SAMPLES / "rar5-hlink.rar")}
    assert hashlib.md5(members["stest1.txt"].data).hexdigest() == STEST_MD5
    assert members["stest2.txt"].skip == members["stest3.txt"].skip == "link (not a regular file)"


@needs_unar
@needs_samples
def test_evil_symlink_archive_never_writes_outside_the_destination(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(archives.tempfile, "tempdir", None)
    evil = RAR_SAMPLES / "rar5-evil-symlink-traversal.rar"
    with extracted_rar(evil) as root:
        member = archives._read_inside(root, "up/pwned.txt", 2**20)
        assert member.data is None and member.skip == archives.SKIP_UNREADABLE  # never through the link
        sandbox = root.parent
        assert sorted(p.name for p in sandbox.iterdir()) == ["out"]
    assert not list(tmp_path.rglob("pwned.txt"))
    # The reader itself reports the link and the member behind it, and reads nothing through it.
    members = {m.name: m.skip for m in iter_members(evil)}
    assert members == {"up": "link (not a regular file)", "up/pwned.txt": "unsafe path"}


@needs_samples
def test_compressed_rar_without_a_tool_names_the_tools_and_the_fix(monkeypatch):
    monkeypatch.setattr(archives.shutil, "which", lambda name: None)
    with pytest.raises(DataError) as err:
        list(iter_members(RAR_SAMPLES / "rar5-crc.rar"))
    text = str(err.value)
    assert "unar (not installed)" in text and "unrar (not installed)" in text
    assert "apt-get install unar" in text
