"""The ingest streams: its memory does not grow with the archive.

A regression to "hold every decoded image, write at the end" must fail here, so
the archive's decoded pixels (~66 MB) are several times the allowed growth.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
COUNT, SIDE = 4000, 128  # 4000 distinct 128x128 grey images: 16 KiB each decoded, ~66 MB in all
MB = 2**20

INGEST = textwrap.dedent('''
    import json, resource, sys
    from mathsym_zoo.data.cache import load_dataset
    from mathsym_zoo.registry import resolve

    def peak_kib():
        # VmHWM starts afresh at exec; ru_maxrss would carry pytest's own peak over the fork.
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmHWM")).split()[1])

    job = resolve(raw=json.loads(sys.argv[1]))
    job.build_source().fingerprint()
    before = peak_kib()  # KiB, peak so far: imports done
    ds = load_dataset(job, progress=False)
    print(json.dumps({"images": len(ds), "workers": ds.report["workers"], "before": before,
                      "parent": peak_kib(),
                      "worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
''')


def make_archive(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(COUNT):
            image = np.full((SIDE, SIDE), 255, np.uint8)
            image[i % 100:i % 100 + 8, :8] = rng.integers(0, 256, (8, 8), dtype=np.uint8)  # distinct pixels
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG", compress_level=1)
            zf.writestr(f"extracted_images/c{i % 7}/img_{i}.png", buf.getvalue())
    return path


def test_ingest_memory_is_bounded_by_a_few_chunks_not_the_archive(tmp_path):
    archive = make_archive(tmp_path / "big.zip")
    raw = {"data": {"source": "big", "cache_dir": str(tmp_path / "cache"), "workers": 2},
           "sources": {"big": {"type": "archive", "path": str(archive)}},
           "preprocessing": [{"type": "grayscale"}]}  # no resize: 128x128 pixels are stored
    out = subprocess.run([sys.executable, "-c", INGEST, json.dumps(raw)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["images"] == COUNT and got["workers"] == 2
    decoded = COUNT * SIDE * SIDE
    # What may grow: the tasks in flight (3 per worker, ~1 MiB of pixels each, also
    # pickled once), per-image metadata (~0.5 KB) and allocator slack.
    ceiling = 16 * MB
    assert decoded > 3 * ceiling
    grew_parent = (got["parent"] - got["before"]) * 1024
    grew_worker = (got["worker"] - got["before"]) * 1024  # a worker starts as a fork of the parent
    assert grew_parent < ceiling, f"the ingest process grew by {grew_parent / MB:.1f} MB"
    assert grew_worker < ceiling, f"a worker grew by {grew_worker / MB:.1f} MB"
