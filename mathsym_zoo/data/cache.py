"""Ingest a source once into a checked, memory-mappable cache of decoded images.

``load_dataset(job)`` returns the cached :class:`Dataset` for the job's source
and offline preprocessing, building it first when needed:

* worker processes decode the records, apply the offline preprocessors and
  hash the pixels (sha1); when the source has a record table (zip, folder,
  RAR) each worker reads its own slices of it, otherwise the parent reads the
  records and sends their bytes in chunks. The parent appends the pixels
  straight to ``images.npy`` in record order: memory stays bounded by a few
  tasks in flight (~1 MiB of pixels each), whatever the dataset size;
* arrays are plain ``.npy`` files (``allow_pickle=False`` everywhere) plus a
  JSON manifest with the report, the cache key and a sha1 per file;
* everything is written into a temporary folder that is renamed into place
  only when complete, so an interrupted ingest leaves nothing that is trusted;
  a cache whose files no longer match their checksums is rebuilt with a warning.

The cache folder is ``<cache_dir>/<source entry>-<key[:12]>/``; the key covers
the source entry, its ``fingerprint()`` (archive checksum, Kaggle version...)
and the offline preprocessing steps, so changing any of them builds a new cache.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import struct
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..components import is_offline
from ..errors import DataError
from ..registry import fingerprint
from .dataset import Dataset
from .layout import layout_warnings

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
ARRAY_FILES = ("images.npy", "labels.npy", "paths.npy", "groups.npy", "hashes.npy")
CHUNK = 256  # records per task: big enough to hide IPC costs, small enough for a smooth bar
CHUNK_BYTES = 32 * 2**20  # ...and at most this much encoded data, so chunks in flight stay bounded
FIRST_CHUNK = 16  # records per task until the decoded image size is known
TASK_PIXEL_BYTES = 1 << 20  # decoded bytes per task at most (fewer records for big images)
HEADER_BYTES = 128  # reserved .npy header, filled in once the image count is known
MAX_LISTED_SKIPS = 10_000

SKIP_CORRUPT = "corrupt or truncated image"
SKIP_TOO_LARGE = "image too large (decompression-bomb guard)"
SKIP_SHAPE = "size differs from the other images after preprocessing (add a resize_pad step)"
SKIP_NO_DATA = "no image data"


class CacheInvalid(Exception):
    """A cache folder that must not be trusted (reason in the message)."""


# -- worker side ---------------------------------------------------------------

# What workers need, set in the parent before the pool forks (and by the pool
# initializer under spawn): offline steps, and the source's record table if any.
_STEPS: list = []
_TABLE = None


def _init_worker(steps: list, table=None) -> None:
    import signal

    global _STEPS, _TABLE
    _STEPS, _TABLE = steps, table
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool


@contextlib.contextmanager
def _worker_state(steps: list, table) -> Iterator[None]:
    global _STEPS, _TABLE
    saved = _STEPS, _TABLE
    _STEPS, _TABLE = steps, table
    try:
        yield
    finally:
        _STEPS, _TABLE = saved


def _to_pil(array: np.ndarray):
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"decoded images must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def image_to_array(image) -> np.ndarray:
    """uint8 HxWxC from a PIL image of any mode (see :mod:`mathsym_zoo.data.images`)."""
    from .images import to_array

    return to_array(image)


def _pixels(image) -> tuple[bytes, tuple[int, ...]]:
    """The bytes and (H, W, C) shape :func:`image_to_array` gives, without the array for L and RGB."""
    if image.mode in ("L", "RGB"):  # the usual case (to_8bit ran before the steps): stored as it is
        return image.tobytes(), (image.height, image.width, 1 if image.mode == "L" else 3)
    array = image_to_array(image)
    return array.tobytes(), array.shape


def decode_items(items: list[tuple[bytes | None, np.ndarray | None]], steps: list | None = None) -> list[tuple]:
    """Decode, preprocess and hash one chunk.

    Each result is ``(pixels, shape, sha1, "WxH", mode)`` or ``(None, reason)``.
    """
    from PIL import Image

    from .images import to_8bit

    steps = _STEPS if steps is None else steps
    out: list[tuple] = []
    for data, image in items:
        if image is not None:
            try:
                im = _to_pil(image)
            except Exception as exc:
                out.append((None, f"invalid image array ({exc})"))
                continue
        else:
            try:
                im = Image.open(io.BytesIO(data))
                im.load()
            except Image.DecompressionBombError:
                out.append((None, SKIP_TOO_LARGE))
                continue
            except Exception:  # PIL raises many types for bad data (OSError, SyntaxError, ValueError...)
                out.append((None, SKIP_CORRUPT))
                continue
        size, mode = f"{im.width}x{im.height}", im.mode
        try:
            im = to_8bit(im)  # before the steps: they expect 8-bit pixels, upright, first frame
            for step in steps:
                im = step.apply(im)
            pixels, shape = _pixels(im)
        except Exception as exc:
            out.append((None, f"preprocessing failed ({type(exc).__name__}: {exc})"))
            continue
        out.append((pixels, shape, hashlib.sha1(pixels).hexdigest(), size, mode))
    return out


def sort_records(records: list) -> tuple[list, list, list]:
    """``(meta, items, skipped)``: records to decode as (path, label, group) and
    (data, image), and the others as (path, reason)."""
    meta, items, skipped = [], [], []
    for r in records:
        if r.skip:
            skipped.append((r.path, r.skip))
        elif not r.label:
            skipped.append((r.path, "no label"))
        elif r.data is None and r.image is None:
            skipped.append((r.path, SKIP_NO_DATA))
        else:
            meta.append((r.path, str(r.label), r.group or ""))
            items.append((r.data, r.image))
    return meta, items, skipped


def decode_slice(start: int, stop: int) -> tuple[list, list, list, int]:
    """Read records ``start:stop`` of the record table and decode them, in this
    process: ``(meta, results, skipped, members)``."""
    records = _TABLE.records(start, stop)
    meta, items, skipped = sort_records(records)
    return meta, decode_items(items), skipped, len(records)


# -- parent side -----------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (dtype, tuple(int(d) for d in shape))
    body = HEADER_BYTES - 10
    if len(text) + 1 > body:
        raise DataError(f"image array shape {shape} does not fit the cache header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (text.ljust(body - 1) + "\n").encode("latin1")


class _ImageStream:
    """Appends images to an .npy file whose header is written last."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "wb", buffering=1 << 20)
        self.fh.write(b"\0" * HEADER_BYTES)
        self.count = 0

    def write(self, pixels: bytes) -> None:
        self.fh.write(pixels)
        self.count += 1

    def finish(self, shape: tuple[int, ...]) -> None:
        self.fh.flush()
        self.fh.seek(0)
        self.fh.write(_npy_header((self.count, *shape)))
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()

    def close(self) -> None:
        self.fh.close()


class _Ingest:
    """Collects worker results in record order and writes the arrays."""

    def __init__(self, folder: Path) -> None:
        self.images = _ImageStream(folder / "images.npy")
        self.labels: list[str] = []
        self.paths: list[str] = []
        self.groups: list[str] = []
        self.hashes: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.sizes: collections.Counter = collections.Counter()
        self.modes: collections.Counter = collections.Counter()
        self.shape: tuple[int, ...] | None = None
        self.members = 0
        self._names: dict[str, str] = {}

    def chunk_size(self) -> int:
        """Records per task: CHUNK, fewer for big images so that the tasks in
        flight hold a few MB whatever the image size (small until the size is known)."""
        first = min(FIRST_CHUNK, CHUNK)
        if self.shape is None:
            return first
        return max(first, min(CHUNK, TASK_PIXEL_BYTES // max(1, math.prod(self.shape))))

    def add(self, meta: list, results: list, skipped: list, members: int) -> None:
        self.members += members
        self.skipped.extend(skipped)
        for (path, label, group), res in zip(meta, results):
            if res[0] is None:
                self.skipped.append((path, res[1]))
                continue
            pixels, shape, digest, size, mode = res
            if self.shape is None:
                self.shape = tuple(shape)
            elif tuple(shape) != self.shape:
                self.skipped.append((path, SKIP_SHAPE))
                continue
            self.images.write(pixels)
            self.labels.append(self._names.setdefault(label, label))  # one string per class, not per image
            self.paths.append(path)
            self.groups.append(group)
            self.hashes.append(digest)
            self.sizes[size] += 1
            self.modes[mode] += 1


def _stream_tasks(records: Iterator, ingest: _Ingest) -> Iterator[tuple]:
    """Tasks whose bytes the parent reads: ``(known, function, args)``, ``known``
    being what the parent already has (meta, skipped, members). A chunk also ends
    at CHUNK_BYTES of encoded data, so chunks in flight stay bounded."""
    records = iter(records)
    while True:
        chunk, held, size = [], 0, ingest.chunk_size()
        for record in records:
            chunk.append(record)
            held += len(record.data) if record.data is not None else 0
            if len(chunk) >= size or held >= CHUNK_BYTES:
                break
        if not chunk:
            return
        meta, items, skipped = sort_records(chunk)
        yield (meta, skipped, len(chunk)), decode_items, (items,)


def _table_tasks(total: int, ingest: _Ingest) -> Iterator[tuple]:
    """Tasks that read their own slice of the record table in the worker."""
    start = 0
    while start < total:
        stop = min(total, start + ingest.chunk_size())
        yield None, decode_slice, (start, stop)
        start = stop


def _collect(ingest: _Ingest, known: tuple | None, result) -> int:
    if known is None:
        meta, results, skipped, members = result
    else:
        (meta, skipped, members), results = known, result
    ingest.add(meta, results, skipped, members)
    return members


def _sha1_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha1").hexdigest()


def _worker_count(requested: int, hint: int | None) -> int:
    cores = os.cpu_count() or 1
    n = cores if requested <= 0 else min(requested, cores * 4)
    if hint is not None and hint < 2 * CHUNK:
        return 1  # not worth starting processes
    return max(1, n)


def _progress(console, enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} img/s" if speed else "- img/s", style="progress.data.speed")

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                    disable=not enabled, transient=False)


def _run(source, steps: list, workers: int, ingest: _Ingest, progress) -> int:
    """Feed the source through the workers; returns the worker count used."""
    tables = source.record_table() if hasattr(source, "record_table") else contextlib.nullcontext()
    with tables as table:
        hint = len(table) if table is not None else None
        if hint is None:
            with contextlib.suppress(Exception):
                hint = source.size_hint() if hasattr(source, "size_hint") else None
        n = _worker_count(workers, hint)
        task = progress.add_task("ingest", total=hint)
        tasks = _table_tasks(hint, ingest) if table is not None else _stream_tasks(source.records(), ingest)
        with _worker_state(steps, table):
            if n == 1:
                for known, fn, args in tasks:
                    progress.advance(task, _collect(ingest, known, fn(*args)))
            else:
                _run_pool(n, steps, table, tasks, ingest, lambda k: progress.advance(task, k))
    if hint is None:
        progress.update(task, total=ingest.members)
    return n


def _run_pool(n: int, steps: list, table, tasks: Iterator[tuple], ingest: _Ingest, advance) -> None:
    import multiprocessing as mp

    # fork: workers inherit the plugins (also local plugin files) and the record table without
    # re-importing or pickling anything.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(n, initializer=_init_worker, initargs=(steps, table))
    window: collections.deque = collections.deque()
    try:
        for known, fn, args in tasks:
            window.append((known, pool.apply_async(fn, args)))
            while len(window) >= 3 * n:  # bounded memory: a few tasks in flight
                known, pending = window.popleft()
                advance(_collect(ingest, known, pending.get()))
        while window:
            known, pending = window.popleft()
            advance(_collect(ingest, known, pending.get()))
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _report(ingest: _Ingest, class_names: list[str], labels: np.ndarray, seconds: float, workers: int) -> dict:
    reasons = collections.Counter(reason for _, reason in ingest.skipped)
    counts = collections.Counter(ingest.hashes)
    dup = {h: c for h, c in counts.items() if c > 1}
    labels_of: dict[str, set[str]] = collections.defaultdict(set)
    where: dict[str, list[str]] = collections.defaultdict(list)
    for h, label, path in zip(ingest.hashes, ingest.labels, ingest.paths):
        if h in dup:
            labels_of[h].add(label)
            if len(where[h]) < 3:
                where[h].append(path)
    conflicts = {h: sorted(ls) for h, ls in labels_of.items() if len(ls) > 1}
    per_class = np.bincount(labels, minlength=len(class_names)) if len(labels) else np.zeros(0, int)
    n = len(ingest.labels)
    per_class_counts = {name: int(c) for name, c in zip(class_names, per_class)}
    return {
        "members": ingest.members,
        "images": n,
        "classes": len(class_names),
        "per_class": per_class_counts,
        "warnings": layout_warnings(per_class_counts),
        "shape": list(ingest.shape or ()),
        "sizes": dict(ingest.sizes.most_common()),
        "modes": dict(ingest.modes.most_common()),
        "skipped": dict(reasons.most_common()),
        "skipped_items": [{"path": p, "reason": r} for p, r in ingest.skipped[:MAX_LISTED_SKIPS]],
        "skipped_items_truncated": max(0, len(ingest.skipped) - MAX_LISTED_SKIPS),
        "duplicates": {"sets": len(dup), "images": int(sum(dup.values())),
                       "extra_copies": int(sum(dup.values()) - len(dup))},
        "conflicts": {"sets": len(conflicts), "images": int(sum(counts[h] for h in conflicts)),
                      "examples": [{"hash": h, "labels": ls, "paths": where[h]}
                                   for h, ls in sorted(conflicts.items())[:20]]},
        "seconds": round(seconds, 3),
        "rate": round(n / seconds, 1) if seconds > 0 else None,
        "workers": workers,
    }


def _write_cache(folder: Path, source, steps: list, workers: int, progress, meta: dict) -> None:
    ingest = _Ingest(folder)
    start = time.perf_counter()
    try:
        used = _run(source, steps, workers, ingest, progress)
    except BaseException:
        ingest.images.close()
        raise
    if not ingest.labels:
        ingest.images.close()
        reasons = collections.Counter(r for _, r in ingest.skipped)
        detail = ", ".join(f"{c} {r}" for r, c in reasons.most_common()) or "the source yielded no members"
        raise DataError(f"no usable images in source {meta['name']!r} ({meta['source'].get('path') or meta['source']}): "
                        f"{detail}. Check the source's path and label_pattern")
    ingest.images.finish(ingest.shape)
    seconds = time.perf_counter() - start
    class_names = sorted(set(ingest.labels))
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.fromiter((index[x] for x in ingest.labels), dtype=np.int32, count=len(ingest.labels))
    report = _report(ingest, class_names, labels, seconds, used)
    report["notes"] = [str(line) for line in source.notes()] if hasattr(source, "notes") else []
    np.save(folder / "labels.npy", labels, allow_pickle=False)
    for name in ("paths", "groups", "hashes"):  # one at a time, each list freed once saved: the peak stays low
        np.save(folder / f"{name}.npy", np.array(getattr(ingest, name), dtype=str), allow_pickle=False)
        setattr(ingest, name, [])
    files = {name: {"size": (folder / name).stat().st_size, "sha1": _sha1_file(folder / name)} for name in ARRAY_FILES}
    manifest = {**meta, "class_names": class_names, "count": len(labels), "files": files, "report": report,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = folder / MANIFEST
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def open_cache(folder: str | Path, *, key: str | None = None, verify: bool = True) -> Dataset:
    """The Dataset stored in ``folder``; raises :class:`CacheInvalid` when the
    manifest is missing or unreadable, the key differs, or a file does not
    match its recorded size and sha1."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheInvalid("its manifest is missing (an unfinished build)") from None
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"its manifest is unreadable ({exc})") from None
    if manifest.get("format") != CACHE_FORMAT:
        raise CacheInvalid(f"it has cache format {manifest.get('format')!r}, expected {CACHE_FORMAT}")
    if key is not None and manifest.get("key") != key:
        raise CacheInvalid("its key does not match its folder")
    files = manifest.get("files", {})
    for name in ARRAY_FILES:
        path, want = folder / name, files.get(name)
        if want is None or not path.is_file():
            raise CacheInvalid(f"{name} is missing")
        if path.stat().st_size != want["size"]:
            raise CacheInvalid(f"{name} has {path.stat().st_size} bytes, {want['size']} recorded")
        if verify and _sha1_file(path) != want["sha1"]:
            raise CacheInvalid(f"{name} does not match its recorded checksum")
    try:
        images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
        arrays = {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in ("labels", "paths", "groups", "hashes")}
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"an array cannot be loaded ({exc})") from None
    return Dataset(
        path=folder, key=manifest["key"], images=images, labels=arrays["labels"],
        class_names=tuple(manifest["class_names"]), paths=arrays["paths"], groups=arrays["groups"],
        hashes=arrays["hashes"], source=manifest.get("source", {}), preprocessing=manifest.get("preprocessing", []),
        report=manifest.get("report", {}),
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(cache_dir: Path, folder_name: str) -> None:
    """Delete temporary folders left by killed builds of this cache."""
    for tmp in cache_dir.glob(f".{folder_name}.*"):
        parts = tmp.name.rsplit(".", 1)[-1].split("-")  # "tmp-<pid>-<random>" / "old-<pid>-<random>"
        if len(parts) == 3 and parts[1].isdigit() and (parts[0] == "old" or not _pid_alive(int(parts[1]))):
            shutil.rmtree(tmp, ignore_errors=True)


def offline_steps(job) -> tuple[list, list[dict]]:
    """The job's offline preprocessors and their resolved descriptions."""
    built = job.build_preprocessors()
    pairs = [(step, res) for step, res in zip(built, job.preprocessing) if is_offline(step)]
    return [s for s, _ in pairs], [r.to_dict() for _, r in pairs]


def cache_key(job, source_fingerprint: str, preprocessing: list[dict]) -> str:
    """sha256 of the source entry, its fingerprint and the offline steps."""
    data = {**job.data_key(), "preprocessing": preprocessing}
    return fingerprint({"format": CACHE_FORMAT, "data": data, "fingerprint": source_fingerprint})


def cache_folder(job, key: str) -> Path:
    return Path(job.cache_dir) / f"{job.source.name}-{key[:12]}"


def load_dataset(job, *, progress: bool = True, console=None, rebuild: bool = False) -> Dataset:
    """The decoded dataset of ``job``'s source, ingested first when no valid
    cache exists (or ``rebuild``). ``progress`` shows a bar and the ingest
    report on ``console`` (default: stderr)."""
    from rich.console import Console

    console = console or Console(stderr=True)
    source = job.build_source()
    steps, step_dicts = offline_steps(job)
    fp = source.fingerprint()
    key = cache_key(job, fp, step_dicts)
    folder = cache_folder(job, key)
    if folder.exists() and not rebuild:
        try:
            return _open_existing(folder, key, console)
        except CacheInvalid as exc:
            console.print(f"[yellow]warning:[/] the dataset cache {folder} is not valid: {exc}; rebuilding it",
                          highlight=False, soft_wrap=True)
    cache_dir = Path(job.cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(cache_dir, folder.name)
    tmp = cache_dir / f".{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    meta = {"format": CACHE_FORMAT, "key": key, "name": job.source.name,
            "source": {**source.describe(), "fingerprint": fp}, "preprocessing": step_dicts,
            "entry": job.source.to_dict()}
    try:
        with _progress(console, progress) as bar:
            # A composed source yields images already through these steps (its parts' caches).
            todo = [] if getattr(source, "preprocessed", False) else steps
            _write_cache(tmp, source, todo, job.workers, bar, meta)
        ours = _publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dataset = open_cache(folder, key=key, verify=not ours)  # checksums just computed from these very files
    if progress:
        print_report(dataset.report, console, title=f"Ingested {job.source.name} into {folder}")
    else:
        print_warnings(dataset.report, console)
    return dataset


def _open_existing(folder: Path, key: str, console) -> Dataset:
    """A valid cache; its layout warnings are repeated on every use, like a compiler's."""
    dataset = open_cache(folder, key=key)
    print_warnings(dataset.report, console)
    return dataset


def _publish(tmp: Path, folder: Path) -> bool:
    """Rename the finished build into place (replacing an invalid old one);
    False when a concurrent build of the same cache got there first."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, folder)
    except OSError:
        if not (folder / MANIFEST).is_file():  # not a concurrent build that won the race
            raise
        return False
    return True


# -- reporting -------------------------------------------------------------------


def print_warnings(report: dict[str, Any], console) -> None:
    """The layout warnings of an ingest report (labels that look wrong), one line each."""
    from rich.markup import escape

    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def print_report(report: dict[str, Any], console, *, title: str = "Ingest report", max_list: int = 10) -> None:
    """The ingest report: counts, skipped members by reason (with examples),
    duplicates and images found under two labels."""
    from rich.markup import escape
    from rich.table import Table

    images, classes = report.get("images", 0), report.get("classes", 0)
    rate = report.get("rate")
    console.print(f"[bold]{escape(title)}[/]", highlight=False)
    console.print(f"  {images:,} images in {classes} classes from {report.get('members', 0):,} members"
                  + (f" in {report.get('seconds', 0):.1f} s ({rate:,.0f} images/s, {report.get('workers')} workers)"
                     if rate else ""), highlight=False)
    dup, conf = report.get("duplicates", {}), report.get("conflicts", {})
    console.print(f"  exact duplicates: {dup.get('sets', 0):,} sets of identical images ({dup.get('images', 0):,} images); "
                  f"under two or more labels: {conf.get('sets', 0):,} sets ({conf.get('images', 0):,} images)",
                  highlight=False)
    for ex in conf.get("examples", [])[:3]:
        console.print(f"    {escape(' / '.join(ex['labels']))}: {escape(', '.join(ex['paths']))}", highlight=False)
    print_warnings(report, console)
    for note in report.get("notes", []):
        console.print(f"  {escape(note)}", highlight=False, soft_wrap=True)
    skipped = report.get("skipped", {})
    if not skipped:
        console.print("  skipped: none", highlight=False)
        return
    table = Table(title="skipped members", title_justify="left", show_edge=False)
    table.add_column("reason")
    table.add_column("count", justify="right")
    table.add_column("examples", overflow="fold")
    items = report.get("skipped_items", [])
    for reason, count in skipped.items():
        examples = [i["path"] for i in items if i["reason"] == reason][:max_list]
        more = count - len(examples)
        table.add_row(escape(reason), f"{count:,}", escape(", ".join(examples)) + (f" (+{more:,} more)" if more > 0 else ""))
    console.print(table)
