"""A minimal RAR5 writer (store method only) for test fixtures.

Nothing on a Linux box can create a RAR archive, so the tests write their own:
RAR5 headers are small varint-encoded blocks with a CRC32 each, and stored
members are their raw bytes. rarfile reads these itself, and unar / bsdtar
extract them. Format reference: https://www.rarlab.com/technote.htm
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Iterable

SIGNATURE = b"Rar!\x1a\x07\x01\x00"
HEAD_MAIN, HEAD_FILE, HEAD_END = 1, 2, 5
HFL_DATA = 0x0002
FILE_DIR, FILE_MTIME, FILE_CRC32 = 0x0001, 0x0002, 0x0004
HOST_UNIX = 1


def vint(n: int) -> bytes:
    """RAR5 variable-length integer: 7 bits per byte, low bits first."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def block(head_type: int, flags: int, body: bytes, data_size: int | None = None) -> bytes:
    """One header block: CRC32, size, type, flags, [data size], body."""
    fields = vint(head_type) + vint(flags | (HFL_DATA if data_size is not None else 0))
    if data_size is not None:
        fields += vint(data_size)
    fields += body
    sized = vint(len(fields)) + fields
    return struct.pack("<I", zlib.crc32(sized)) + sized


def file_block(name: str, data: bytes | None, mtime: int = 1_700_000_000) -> bytes:
    """A stored file (``data`` given) or a directory (``data`` None)."""
    raw_name = name.encode("utf-8")
    is_dir = data is None
    flags = FILE_MTIME | (FILE_DIR if is_dir else FILE_CRC32)
    mode = 0o40755 if is_dir else 0o100644
    body = vint(flags) + vint(0 if is_dir else len(data)) + vint(mode) + struct.pack("<I", mtime)
    if not is_dir:
        body += struct.pack("<I", zlib.crc32(data))
    body += vint(0)  # compression info: version 0, not solid, method 0 (store)
    body += vint(HOST_UNIX) + vint(len(raw_name)) + raw_name
    if is_dir:
        return block(HEAD_FILE, 0, body)
    return block(HEAD_FILE, 0, body, data_size=len(data)) + data


def rar5_bytes(members: Iterable[tuple[str, bytes | None]]) -> bytes:
    """A whole archive from ``(name, data)`` pairs (data None = directory)."""
    parts = [SIGNATURE, block(HEAD_MAIN, 0, vint(0))]
    parts += [file_block(name, data) for name, data in members]
    parts.append(block(HEAD_END, 0, vint(0)))
    return b"".join(parts)


def write_rar5(path: str | Path, members: Iterable[tuple[str, bytes | None]]) -> Path:
    """Write a stored RAR5 archive at ``path`` and return the path."""
    path = Path(path)
    path.write_bytes(rar5_bytes(members))
    return path
