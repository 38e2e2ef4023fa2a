"""Read image members from zip, tar (gz/bz2/xz), RAR archives and plain folders.

Every reader streams members in a deterministic order (archive order, or
sorted paths for folders) and never trusts member names: absolute names,
``..`` components and links are reported as skipped members instead of being
read. Nothing here writes outside a temporary folder it owns.

No member is ever held whole before its size is known: members whose declared
size is over a limit (default 16 MiB), or which claim an absurd compression
ratio, are skipped as "too large" without being read, and the others are read
in chunks that stop at the limit (declared sizes can lie). Memory per member is
thus bounded by the limit, whatever the archive says.

RAR members stored without compression are read by ``rarfile`` itself.
Compressed ones need an external tool; rather than one process per member
(rarfile's default: ~32 ms each), the whole archive is extracted once into a
private temporary folder (``unar``, else RARLAB's ``unrar``) and read from there.

Zip files, folders and extracted RARs are random-access: :func:`member_table`
lists their members once (names and skip reasons, no bytes) and any process
reads member ``i`` by itself, so ingest workers read their own share in
parallel instead of receiving the bytes from one reading process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DataError
from ..sources import Record

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
)
FORMATS = ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz", "rar", "folder")
RAR_MAGIC = (b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")
INSTALL_HINT = "install one: `apt-get install unar` (Debian/Ubuntu), `brew install unar` (macOS), or RARLAB's unrar"

# Skip reasons, shared with the ingest report (one wording per cause).
SKIP_UNSAFE = "unsafe path"
SKIP_LINK = "link (not a regular file)"
SKIP_SPECIAL = "not a regular file"
SKIP_NOT_IMAGE = "not an image"
SKIP_EMPTY = "empty file"
SKIP_ENCRYPTED = "encrypted member"
SKIP_UNREADABLE = "unreadable archive member"
SKIP_MACOS = "macOS metadata file"
SKIP_NO_LABEL = "no label"

#: Default limit on one member's uncompressed size: far above any symbol image.
DEFAULT_MAX_MEMBER_BYTES = 16 * 2**20
#: A member over RATIO_FLOOR bytes that is more than MAX_RATIO times its compressed
#: size is refused (deflate cannot exceed about 1032:1; only blank filler gets near).
MAX_RATIO = 1000
RATIO_FLOOR = 2**20
READ_CHUNK = 2**20


def too_large(limit: int) -> str:
    """The skip reason for a member over ``limit`` bytes (one wording per limit)."""
    return f"too large (over {limit / 2**20:.3g} MiB; raise the source's max_member_mb)"


SKIP_RATIO = f"too large for its compressed size (over {MAX_RATIO}:1, a compression bomb)"


@dataclasses.dataclass(frozen=True)
class Member:
    """A regular file of an archive: its bytes, or why they were not read."""

    name: str
    data: bytes | None = None
    skip: str | None = None


Select = Callable[[str, int], "str | None"]  # (name, size) -> skip reason or None


def _read_all(name: str, size: int) -> str | None:
    return None


def is_unsafe(name: str) -> bool:
    """Absolute names, drive letters and ``..`` components are never read."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return True
    return ".." in norm.split("/")


def detect_format(path: Path) -> str:
    """The archive format of ``path`` from its content (not only its name)."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise DataError(f"archive {str(path)!r} does not exist; check the source's `path`")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise DataError(f"cannot read archive {str(path)!r}: {exc.strerror}") from None
    if head.startswith(RAR_MAGIC):
        return "rar"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        kind = "tar.gz"
    elif head[:3] == b"BZh":
        kind = "tar.bz2"
    elif head[:6] == b"\xfd7zXZ\x00":
        kind = "tar.xz"
    else:
        kind = "tar"
    try:
        if tarfile.is_tarfile(path):
            return kind
    except (OSError, EOFError):
        pass
    raise DataError(
        f"{str(path)!r} is not a supported archive (supported: .zip, .tar, .tar.gz, .tar.bz2, .tar.xz, "
        ".rar, or a folder of images); re-download it if it should be one"
    )


def iter_members(path: str | Path, select: Select = _read_all, *,
                 max_bytes: int = DEFAULT_MAX_MEMBER_BYTES) -> Iterator[Member]:
    """Every regular file of the archive or folder at ``path``, in a stable order.

    ``select(name, size)`` may return a skip reason so a member is reported
    without its bytes being read. Directories are not members. A member over
    ``max_bytes`` (declared or actual) is skipped as too large, never held whole.
    """
    path = Path(path)
    with member_table(path, select, max_bytes=max_bytes) as table:
        if table is not None:
            for i in range(len(table)):
                yield table.read(i)
            return
    if detect_format(path) == "rar":
        yield from _stored_rar_members(path, select, max_bytes)
    else:
        yield from _tar_members(path, select, max_bytes)


def count_members(path: str | Path) -> int | None:
    """Number of members when cheap to know (for progress bars), else None."""
    path = Path(path)
    try:
        fmt = detect_format(path)
        if fmt == "zip":
            with zipfile.ZipFile(path) as zf:
                return sum(1 for i in zf.infolist() if not i.is_dir())
        if fmt == "rar":
            import rarfile

            with rarfile.RarFile(path) as rf:
                return sum(1 for i in rf.infolist() if not i.is_dir())
        if fmt == "folder":
            return sum(len(files) for _, _, files in os.walk(path))
    except Exception:  # a hint only; the real read reports problems
        return None
    return None


# -- readers -------------------------------------------------------------------


def _checked(name: str, size: int, select: Select, max_bytes: int, links: set[str] = frozenset(),
             packed: int | None = None) -> str | None:
    """Why a member is skipped before reading it (``packed``: its compressed size when known)."""
    if is_unsafe(name) or _under_link(name, links):
        return SKIP_UNSAFE
    reason = select(name, size)
    if reason is None and size > max_bytes:
        reason = too_large(max_bytes)
    if reason is None and packed is not None and size > RATIO_FLOOR and size > MAX_RATIO * max(packed, 1):
        reason = SKIP_RATIO
    return reason


def _read_bounded(fh, limit: int) -> bytes | None:
    """At most ``limit`` bytes of ``fh``, read in chunks; None when there are more."""
    parts, total = [], 0
    while True:
        chunk = fh.read(min(READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > limit:
            return None
        parts.append(chunk)


def _bounded_member(name: str, fh, limit: int) -> Member:
    data = _read_bounded(fh, limit)
    return Member(name, data) if data is not None else Member(name, skip=too_large(limit))


def _under_link(name: str, links: set[str]) -> bool:
    """True when a parent folder of ``name`` is a link member (a traversal trick)."""
    if not links:
        return False
    parts = name.replace("\\", "/").split("/")
    return any("/".join(parts[:i]).rstrip("/") in links for i in range(1, len(parts)))


def _tar_members(path: Path, select: Select, max_bytes: int) -> Iterator[Member]:
    # Stream mode: one forward pass, also for compressed tars.
    try:
        tf = tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{str(path)!r} is not a readable tar archive ({exc}); re-download or re-create it") from None
    links: set[str] = set()
    with tf:
        try:
            for info in tf:
                if info.isdir():
                    continue
                name = info.name
                if info.issym() or info.islnk():
                    links.add(name.rstrip("/"))
                    yield Member(name, skip=SKIP_LINK)
                    continue
                if not info.isreg():
                    yield Member(name, skip=SKIP_SPECIAL)
                    continue
                # Stream mode skips an unread member by reading through it in small blocks.
                reason = _checked(name, info.size, select, max_bytes, links)
                if reason:
                    yield Member(name, skip=reason)
                    continue
                fh = tf.extractfile(info)
                yield _bounded_member(name, fh, max_bytes) if fh is not None else Member(name, b"")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{str(path)!r} is damaged or truncated ({type(exc).__name__}: {exc}); re-download or re-create it"
            ) from None


# -- random-access member tables --------------------------------------------------


@dataclasses.dataclass
class MemberTable:
    """The members of a zip file, a folder or an extracted RAR, listed once.

    ``names[i]`` and ``skips[i]`` (a reason, or None when the member is to be
    read) come from the listing; :meth:`read` fetches member ``i`` in whatever
    process calls it, so workers can read disjoint slices in parallel. ``kind``
    says how: ``"zip"`` (``keys[i]`` is the member's (local header offset,
    method, compressed size, size, CRC) from the zip's directory), ``"file"``
    (``keys[i]`` is a checked path to open) or ``"inside"`` (the name is read
    under ``root`` without following links). No read returns more than
    ``max_bytes``.
    """

    kind: str
    root: str
    names: list[str]
    skips: list[str | None]
    keys: Any  # zip: int64 array (N, 5); file: list of paths; inside: unused
    max_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    _handles: tuple[int, dict] | None = dataclasses.field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": None}  # an open file never travels

    def read(self, i: int) -> Member:
        name, skip = self.names[i], self.skips[i]
        if skip:
            return Member(name, skip=skip)
        if self.kind == "inside":
            return _read_inside(Path(self.root), name, self.max_bytes)
        if self.kind == "file":
            try:
                with open(self.keys[i], "rb") as fh:  # bounded: the file may have grown since the listing
                    return _bounded_member(name, fh, self.max_bytes)
            except OSError:
                return Member(name, skip=SKIP_UNREADABLE)
        data = self._read_zip(name, *(int(v) for v in self.keys[i]))
        return Member(name, data) if data is not None else Member(name, skip=SKIP_UNREADABLE)

    def _read_zip(self, name: str, offset: int, method: int, csize: int, size: int, crc: int) -> bytes | None:
        """The member's bytes from the directory entry listed by the parent: with
        zipfile each process would parse the whole directory again (~60 MB per
        100k members) and pay ~15 us per member for its file object. ``size`` is
        within ``max_bytes`` (the listing skipped larger members) and no more is
        ever inflated, nor more than ``max_bytes`` read."""
        if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):  # bzip2, lzma: rare, left to zipfile
            try:
                with self._open("zipfile", lambda: _open_zip(self.root)).open(name) as fh:
                    return _read_bounded(fh, self.max_bytes)
            except DataError:
                raise
            except Exception:  # bad CRC, unsupported method, truncated data
                return None
        if csize > self.max_bytes + 2**16:  # deflate adds a few bytes per 16 KiB at worst: the entry lies
            return None
        fd = self._open("fd", lambda: os.open(self.root, os.O_RDONLY))
        head = os.pread(fd, _LOCAL_HEADER.size, offset)
        if len(head) != _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(head)[0] != b"PK\x03\x04":
            return None
        raw = os.pread(fd, csize, offset + _LOCAL_HEADER.size + sum(_LOCAL_HEADER.unpack(head)[1:]))
        try:
            data = raw if method == zipfile.ZIP_STORED else zlib.decompressobj(-15).decompress(raw, size + 1)
        except zlib.error:
            return None
        return data if len(raw) == csize and len(data) == size and zlib.crc32(data) == crc else None

    def _open(self, kind: str, opener: Callable[[], Any]) -> Any:
        pid = os.getpid()
        if self._handles is None or self._handles[0] != pid:  # each process opens its own
            self._handles = (pid, {})
        if kind not in self._handles[1]:
            self._handles[1][kind] = opener()
        return self._handles[1][kind]

    def close(self) -> None:
        if self._handles is not None and self._handles[0] == os.getpid():
            for handle in self._handles[1].values():
                handle.close() if hasattr(handle, "close") else os.close(handle)
        self._handles = None


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # zip local file header: signature, ..., name and extra lengths


@contextlib.contextmanager
def member_table(path: str | Path, select: Select = _read_all, *,
                 max_bytes: int = DEFAULT_MAX_MEMBER_BYTES) -> Iterator[MemberTable | None]:
    """A :class:`MemberTable` of the zip, folder or RAR at ``path``, valid inside
    the ``with`` block (a RAR is extracted with one tool call and removed after);
    None for formats read only front to back (tar, RARs of stored members)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt in ("folder", "zip"):
        table = (_folder_table if fmt == "folder" else _zip_table)(path, select, max_bytes)
        try:
            yield table
        finally:
            table.close()
    elif fmt == "rar":
        plan = _rar_plan(path, select, max_bytes)
        if plan is None:
            yield None
        else:
            with extracted_rar(path) as root:
                yield MemberTable("inside", str(root), [n for n, _ in plan], [r for _, r in plan], None, max_bytes)
    else:
        yield None


def _folder_table(root: Path, select: Select, max_bytes: int) -> MemberTable:
    real_root = os.path.realpath(root)
    names, skips, keys = [], [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            full = os.path.join(dirpath, fname)
            names.append(os.path.relpath(full, root).replace(os.sep, "/"))
            keys.append(full)
            skips.append(_folder_skip(real_root, full, names[-1], select, max_bytes))
    return MemberTable("file", str(root), names, skips, keys, max_bytes)


def _folder_skip(real_root: str, full: str, name: str, select: Select, max_bytes: int) -> str | None:
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(full)
            if os.path.commonpath([real_root, target]) != real_root or not os.path.isfile(target):
                return SKIP_UNSAFE
            st = os.stat(target)
        elif not stat.S_ISREG(st.st_mode):
            return SKIP_SPECIAL
    except OSError:
        return SKIP_UNREADABLE
    return _checked(name, st.st_size, select, max_bytes)


def _open_zip(path: str | Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{str(path)!r} is not a readable zip archive ({exc}); re-download or re-create it") from None


def _listed_reason(name: str, size: int, packed: int, encrypted: bool, select: Select, max_bytes: int,
                   links: set[str]) -> str | None:
    """Why a member listed in a zip or RAR directory is skipped (None: it is read)."""
    if name.rstrip("/") in links:
        return SKIP_LINK
    reason = _checked(name, size, select, max_bytes, links, packed=packed)
    return SKIP_ENCRYPTED if reason is None and encrypted else reason


def _zip_table(path: Path, select: Select, max_bytes: int) -> MemberTable:
    import numpy as np

    with _open_zip(path) as zf:
        infos = zf.infolist()
        links = {i.filename.rstrip("/") for i in infos if stat.S_ISLNK(i.external_attr >> 16)}
        names, skips, keys = [], [], []
        for info in infos:
            if info.is_dir():
                continue
            name = info.filename
            reason = _listed_reason(name, info.file_size, info.compress_size, bool(info.flag_bits & 0x1), select,
                                    max_bytes, links)
            names.append(name)
            skips.append(reason)
            keys.append((info.header_offset, info.compress_type, info.compress_size, info.file_size, info.CRC))
    return MemberTable("zip", str(path), names, skips, np.array(keys, dtype=np.int64).reshape(-1, 5), max_bytes)


# -- RAR -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RarTool:
    name: str
    path: str | None
    problem: str | None = None  # why it cannot be used

    @property
    def usable(self) -> bool:
        return self.path is not None and self.problem is None


def rar_tools() -> list[RarTool]:
    """The extraction tools looked for, in order of preference."""
    tools = []
    unar = shutil.which("unar")
    tools.append(RarTool("unar", unar, None if unar else "not installed"))
    unrar = shutil.which("unrar")
    problem = None if unrar else "not installed"
    if unrar:
        try:
            out = subprocess.run([unrar], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
            banner = (out.stdout + out.stderr).lower()
            if "unrar-free" in banner or "unrar" not in banner:
                problem = "is unrar-free, which cannot read RAR5"
        except (OSError, subprocess.SubprocessError):
            problem = "does not run"
    tools.append(RarTool("unrar", unrar, problem))
    return tools


def _tool_command(tool: RarTool, archive: Path, dest: Path) -> list[str]:
    if tool.name == "unar":
        # -D: no extra top folder; -nr: no nested archives; -k skip: no resource forks.
        return [tool.path, "-q", "-f", "-D", "-nr", "-k", "skip", "-o", str(dest), str(archive)]
    return [tool.path, "x", "-o+", "-y", "-idq", "-p-", str(archive), str(dest) + os.sep]


@contextlib.contextmanager
def extracted_rar(archive: str | Path) -> Iterator[Path]:
    """Extract a whole RAR archive with ONE tool call into a private temporary
    folder, yield that folder, and remove it afterwards.

    The destination sits alone inside a fresh sandbox folder; anything a
    hostile archive manages to put next to it (a symlink escape) is removed
    and reported, and readers of the result never follow links.
    """
    archive = Path(archive).resolve()
    tools = rar_tools()
    usable = [t for t in tools if t.usable]
    if not usable:
        tried = ", ".join(f"{t.name} ({t.problem})" for t in tools)
        raise DataError(f"{str(archive)!r} has compressed members, which need an external RAR tool; tried: {tried}. "
                        f"To fix, {INSTALL_HINT}")
    sandbox = Path(tempfile.mkdtemp(prefix="mathsym-rar-"))
    dest = sandbox / "out"
    dest.mkdir()
    try:
        errors = []
        for tool in usable:
            proc = subprocess.run(_tool_command(tool, archive, dest), capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
            escaped = [p.name for p in sandbox.iterdir() if p.name != "out"]
            if escaped:
                raise DataError(f"{str(archive)!r} tried to write outside its extraction folder "
                                f"({', '.join(escaped)}); refusing to read this archive")
            if proc.returncode == 0 or any(dest.iterdir()):
                break  # partial failures show up as unreadable members
            errors.append(f"{tool.name}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:] or 'failed'}")
            shutil.rmtree(dest)
            dest.mkdir()
        else:
            raise DataError(f"could not extract {str(archive)!r}: {'; '.join(errors)}. "
                            "The archive may be damaged; re-download it")
        yield dest
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def _check_room(archive: Path, need: int) -> None:
    """Refuse an extraction that the temporary folder has no room for (by the declared
    sizes), rather than fill the disk and fail half-way."""
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DataError(f"{str(archive)!r} would extract {need / 2**30:.1f} GiB, but {folder} has "
                        f"{free / 2**30:.1f} GiB free; set TMPDIR to a folder on a bigger disk, or extract the "
                        "archive yourself and point the source at the folder")


def _read_inside(root: Path, name: str, max_bytes: int) -> Member:
    """``root/name`` if it is a regular file reached without links and within the limit."""
    full = root / name
    real_root = os.path.realpath(root)
    if os.path.realpath(full) != os.path.normpath(os.path.join(real_root, name)):
        return Member(name, skip=SKIP_UNREADABLE)  # some component is a link
    try:
        st = os.lstat(full)
        if not stat.S_ISREG(st.st_mode):
            return Member(name, skip=SKIP_UNREADABLE)
        if st.st_size > max_bytes:  # the extracted size, whatever the header said
            return Member(name, skip=too_large(max_bytes))
        with open(full, "rb") as fh:
            return _bounded_member(name, fh, max_bytes)
    except OSError:
        return Member(name, skip=SKIP_UNREADABLE)


def _open_rar(path: Path):
    import rarfile

    try:
        rf = rarfile.RarFile(path)
    except rarfile.NeedFirstVolume:
        raise DataError(f"{str(path)!r} is a later volume of a multi-part RAR; point the source at the first part") from None
    except (rarfile.Error, OSError) as exc:
        raise DataError(f"{str(path)!r} is not a readable RAR archive ({exc}); re-download it") from None
    if rf.needs_password():
        rf.close()
        raise DataError(f"{str(path)!r} is password-protected; extract it yourself and use the folder instead")
    return rf


def _rar_infos(rf, select: Select, max_bytes: int) -> list[tuple[object, str | None]]:
    """Every non-directory member with its skip reason (None: to be read)."""
    infos = rf.infolist()
    links = {i.filename.rstrip("/") for i in infos if i.file_redir is not None or i.is_symlink()}
    plan: list[tuple[object, str | None]] = []
    for info in infos:
        if info.is_dir():
            continue
        reason = _listed_reason(info.filename, info.file_size, info.compress_size, info.needs_password(), select,
                                max_bytes, links)
        plan.append((info, reason))
    return plan


def _rar_plan(path: Path, select: Select, max_bytes: int) -> list[tuple[str, str | None]] | None:
    """(name, skip reason) of every member when reading needs the extraction tool
    (the room it needs is checked first); None when every wanted member is
    stored, which rarfile reads by itself."""
    import rarfile

    with _open_rar(path) as rf:
        plan = _rar_infos(rf, select, max_bytes)
    if not any(info.compress_type != rarfile.RAR_M0 for info, reason in plan if reason is None):
        return None
    _check_room(path, sum(info.file_size for info, _ in plan))
    return [(info.filename, reason) for info, reason in plan]


def _stored_rar_members(path: Path, select: Select, max_bytes: int) -> Iterator[Member]:
    import rarfile

    with _open_rar(path) as rf:
        for info, reason in _rar_infos(rf, select, max_bytes):
            if reason:
                yield Member(info.filename, skip=reason)
                continue
            try:
                with rf.open(info) as fh:
                    member = _bounded_member(info.filename, fh, max_bytes)
            except (rarfile.Error, OSError):
                member = Member(info.filename, skip=SKIP_UNREADABLE)
            yield member


# -- records -------------------------------------------------------------------


def _compile(pattern: str | None, what: str) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DataError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from None


def _match(regex: re.Pattern, name: str) -> str | None:
    m = regex.search(name)
    if m is None:
        return None
    if "label" in regex.groupindex:
        return m.group("label")
    if "group" in regex.groupindex:
        return m.group("group")
    return m.group(1) if regex.groups else m.group(0)


def image_member(name: str, size: int) -> str | None:
    """Skip reason for members that cannot be images, judged by name and size."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if name.startswith("__MACOSX/") or base.startswith("._"):
        return SKIP_MACOS
    if os.path.splitext(base)[1].lower() not in IMAGE_SUFFIXES:
        return SKIP_NOT_IMAGE
    if size == 0:
        return SKIP_EMPTY
    return None


@dataclasses.dataclass(frozen=True)
class Labeler:
    """Turns members into records. The label is the member's parent folder name,
    or the first group (or the ``label`` named group) of ``label_pattern``
    searched in the member path; ``group_pattern`` gives an optional group id
    the same way."""

    label_re: re.Pattern | None = None
    group_re: re.Pattern | None = None

    @classmethod
    def of(cls, label_pattern: str | None = None, group_pattern: str | None = None) -> "Labeler":
        return cls(_compile(label_pattern, "label_pattern"), _compile(group_pattern, "group_pattern"))

    def record(self, member: Member) -> Record:
        if member.skip:
            return Record(member.name, None, skip=member.skip)
        if not member.data:
            return Record(member.name, None, skip=SKIP_EMPTY)
        name = member.name.replace("\\", "/")
        if self.label_re is not None:
            label = _match(self.label_re, name)
        else:
            parts = name.rsplit("/", 2)
            label = parts[-2] if len(parts) >= 2 else None
        if not label:
            return Record(member.name, None, skip=SKIP_NO_LABEL)
        group = _match(self.group_re, name) if self.group_re is not None else None
        return Record(member.name, label, group or None, data=member.data)


@dataclasses.dataclass(frozen=True)
class RecordTable:
    """The records of a random-access archive by position: ``records(start, stop)``
    reads that slice in the calling process (see ``Source.record_table``)."""

    members: MemberTable
    labeler: Labeler

    def __len__(self) -> int:
        return len(self.members)

    def records(self, start: int, stop: int) -> list[Record]:
        return [self.labeler.record(self.members.read(i)) for i in range(start, stop)]


def archive_records(path: str | Path, *, label_pattern: str | None = None, group_pattern: str | None = None,
                    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES) -> Iterator[Record]:
    """Records of the images in an archive or folder, in archive order (labels:
    :class:`Labeler`). Members over ``max_member_bytes`` are skipped as too large."""
    labeler = Labeler.of(label_pattern, group_pattern)
    for member in iter_members(path, image_member, max_bytes=max_member_bytes):
        yield labeler.record(member)


@contextlib.contextmanager
def record_table(path: str | Path, *, label_pattern: str | None = None, group_pattern: str | None = None,
                 max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES) -> Iterator[RecordTable | None]:
    """A :class:`RecordTable` of the images at ``path``, valid inside the ``with``
    block; None for archives read only front to back (use :func:`archive_records`)."""
    labeler = Labeler.of(label_pattern, group_pattern)
    with member_table(path, image_member, max_bytes=max_member_bytes) as members:
        yield RecordTable(members, labeler) if members is not None else None


# -- identity ------------------------------------------------------------------


def file_sha256(path: str | Path, memo_dir: str | Path | None = None) -> str:
    """sha256 of a file, remembered per (path, size, mtime) in ``memo_dir``."""
    path = Path(path)
    st = path.stat()
    token = f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = Path(memo_dir) / "checksums.json" if memo_dir else None
    memo: dict[str, str] = {}
    if memo_file is not None and memo_file.is_file():
        with contextlib.suppress(OSError, ValueError):
            memo = json.loads(memo_file.read_text())
    if token in memo:
        return memo[token]
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    if memo_file is not None:
        memo[token] = digest
        with contextlib.suppress(OSError):
            memo_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_file.with_name(f".checksums-{os.getpid()}.tmp")
            tmp.write_text(json.dumps(memo, indent=0))
            os.replace(tmp, memo_file)
    return digest


def folder_signature(root: str | Path) -> str:
    """sha256 over every file's relative path, size and modification time."""
    h = hashlib.sha256()
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            full = os.path.join(dirpath, fname)
            with contextlib.suppress(OSError):
                st = os.stat(full)
                h.update(f"{os.path.relpath(full, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
