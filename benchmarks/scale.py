"""Ingest, split, `info` and the input pipeline at the Kaggle set's size (~376k images).

    python benchmarks/scale.py [--sizes 50000,100000,200000,400000] [--workdir /tmp/mathsym-scale]

Data: one zip per size in the Kaggle layout (``extracted_images/<label>/<name>.jpg``,
deflated like the bench), made from the 46,479 CROHME bench JPEGs. Image ``m`` is
bench member ``m % 46479``, copy ``k = m // 46479``: copy 0 is the original file,
copy k > 0 the same image shifted by one pixel in one of 8 directions (white fill)
and re-encoded as JPEG (quality 95). The copies are distinct images, so duplicate
detection finds only the duplicates the bench itself holds, once per copy. The
group id (``group_pattern``, the source expression) includes the copy number.

Per size, each stage runs in a fresh process while this one samples the resident
memory of that process tree every 20 ms: the sum of RSS (pages a forked worker
shares with its parent count once per process, so this over-counts) and the sum
of PSS (shared pages split between the sharers):

* ingest: ``load_dataset(rebuild=True)`` with 2 workers (the archive checksum is
  computed before the clock starts, as in ``benchmarks/ingest.py``);
* split: build and persist the split (``load_split``, after removing split files);
* info: the whole ``mathsym-zoo info`` command (start-up, cache check, statistics);
* epoch: epochs of ``ArrayPipeline.train`` over the train side, batch 64, without
  a model; the fastest after the first (the tensor set-up is timed apart).

Prints a table, then ``name: value`` lines, the headline figures last. Goals:
time per ingested image at the largest size within 1.2x of that at the smallest,
ingest peak RSS at 400k <= 1.5 GB, epoch images/s at the largest >= 0.9x the smallest.
Wall-clock figures follow the machine's other load; the ingest's CPU time per image
(all its processes) does not, and is printed beside them.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT.parent / "shared" / "data" / "crohme_bench.zip"
SHIFTS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))
GROUP_PATTERN = r"([^/]+)_\d+\.[A-Za-z]+$"
BATCH = 64
EPOCHS = 4  # of the input pipeline, without a model

# -- data -----------------------------------------------------------------------

_BENCH: zipfile.ZipFile | None = None
_NAMES: list[str] = []


def _open_bench(names: list[str]) -> None:
    global _BENCH, _NAMES
    _BENCH, _NAMES = zipfile.ZipFile(BENCH), names


def copy_name(name: str, k: int) -> str:
    folder, base = name.rsplit("/", 1)
    return f"{folder}/k{k}-{base}" if k else name


def _make(span: tuple[int, int]) -> list[tuple[str, bytes]]:
    """Members ``span[0]:span[1]`` of the generated data: (name, JPEG bytes)."""
    import numpy as np
    from PIL import Image

    out = []
    for m in range(*span):
        k, i = divmod(m, len(_NAMES))
        data = _BENCH.read(_NAMES[i])
        if k:
            with Image.open(io.BytesIO(data)) as im:
                pixels = np.asarray(im.convert("L"))
            dx, dy = SHIFTS[(k - 1) % len(SHIFTS)]
            shifted = np.full_like(pixels, 255)
            h, w = pixels.shape
            shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                pixels[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
            buf = io.BytesIO()
            Image.fromarray(shifted).save(buf, format="JPEG", quality=95)
            data = buf.getvalue()
        out.append((copy_name(_NAMES[i], k), data))
    return out


def make_archives(sizes: list[int], workdir: Path) -> dict[int, Path]:
    """One zip per size (the first ``size`` generated members); reused when present."""
    paths = {n: workdir / f"kaggle-layout-{n}.zip" for n in sizes}
    todo = [n for n in sizes if not paths[n].is_file()]
    if not todo:
        return paths
    with zipfile.ZipFile(BENCH) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    start = time.perf_counter()
    writers = {n: zipfile.ZipFile(paths[n].with_suffix(".part"), "w", zipfile.ZIP_DEFLATED, compresslevel=1)
               for n in todo}
    spans = [(a, min(a + 2000, max(todo))) for a in range(0, max(todo), 2000)]
    with mp.get_context("fork").Pool(os.cpu_count(), initializer=_open_bench, initargs=(names,)) as pool:
        m = 0
        for members in pool.imap(_make, spans):
            for name, data in members:
                for n, zw in writers.items():
                    if m < n:
                        zw.writestr(name, data)
                m += 1
    for n, zw in writers.items():
        zw.close()
        paths[n].with_suffix(".part").rename(paths[n])
    print(f"generated {', '.join(f'{n:,}' for n in todo)} member archives in {time.perf_counter() - start:.0f} s",
          flush=True)
    return paths


# -- stages (each in its own process) --------------------------------------------


def write_registry(archive: Path, cache_dir: Path, workers: int) -> Path:
    path = cache_dir.parent / f"{archive.stem}.toml"
    path.write_text(f"""[data]
source = "scale"
cache_dir = "{cache_dir}"
workers = {workers}

[sources.scale]
type = "archive"
path = "{archive}"
group_pattern = '{GROUP_PATTERN}'

[[preprocessing]]
type = "grayscale"

[[preprocessing]]
type = "resize_pad"
size = [45, 45]
""")
    return path


def cpu_seconds() -> float:
    """CPU time of this process and of its ended (waited-for) children, e.g. ingest workers."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                           resource.RUSAGE_CHILDREN)))


def stage(name: str, registry: Path) -> dict:
    """Run one stage in this process; returns its figures."""
    from mathsym_zoo.data.cache import load_dataset
    from mathsym_zoo.data.split import load_split
    from mathsym_zoo.registry import resolve

    job = resolve(path=registry)
    if name == "ingest":
        job.build_source().fingerprint()  # archive checksum: remembered, kept out of the timing
        start, cpu = time.perf_counter(), cpu_seconds()
        ds = load_dataset(job, progress=False, rebuild=True)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        size = sum(f.stat().st_size for f in ds.path.iterdir() if f.is_file())
        return {"seconds": seconds, "cpu": cpu, "images": len(ds), "cache_mb": size / 2**20,
                "duplicates": ds.report["duplicates"]["images"]}
    ds = load_dataset(job, progress=False)
    if name == "split":
        shutil.rmtree(ds.path / "splits", ignore_errors=True)
        start = time.perf_counter()
        split = load_split(ds, job.split)
        return {"seconds": time.perf_counter() - start, "sizes": split.sizes()}
    if name == "epoch":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from mathsym_zoo.data.pipeline import ArrayPipeline, steps_for

        import tensorflow  # noqa: F401  (its import is not the pipeline's set-up)

        train = load_split(ds, job.split).indices["train"]
        start = time.perf_counter()
        pipe = ArrayPipeline(ds.images, ds.labels, ds.num_classes)
        tensor = time.perf_counter() - start
        steps = steps_for(len(train), BATCH)
        batches = iter(pipe.train(train, batch_size=BATCH, seed=0, epochs=EPOCHS))
        times, cpus = [], []
        for _ in range(EPOCHS):
            start, cpu = time.perf_counter(), cpu_seconds()
            seen = sum(int(next(batches)[0].shape[0]) for _ in range(steps))
            times.append(time.perf_counter() - start)
            cpus.append(cpu_seconds() - cpu)
        best = min(times[1:])  # the first epoch also starts the pipeline's threads; the fastest other one
        return {"seconds": best, "images": seen, "rate": seen / best, "cpu": min(cpus[1:]), "tensor_seconds": tensor}
    raise SystemExit(f"unknown stage {name!r}")


def tree_memory(proc) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) of ``proc`` and its descendants, in bytes. RSS counts
    pages that forked workers share with their parent once per process; PSS splits
    them between the sharers, so its sum is the memory the tree really holds."""
    import psutil

    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_full_info()
        except psutil.Error:  # ended between listing and reading
            continue
        rss, pss = rss + info.rss, pss + info.pss
    return rss, pss


def measured(cmd: list[str], log: Path) -> tuple[float, tuple[int, int], str]:
    """Run ``cmd``; wall seconds, peak (RSS, PSS) sums of its process tree (bytes), stdout."""
    import psutil

    with open(log, "ab") as err:
        start = time.perf_counter()
        proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        peak = (0, 0)
        while proc.poll() is None:
            try:
                peak = tuple(map(max, peak, tree_memory(proc)))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        out = proc.stdout.read().decode()
        proc.wait()
        seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return seconds, peak, out


def run_stage(name: str, registry: Path, log: Path) -> tuple[dict, tuple[int, int]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--registry", str(registry)]
    _, peak, out = measured(cmd, log)
    return json.loads(out.strip().splitlines()[-1]), peak


def measure_size(n: int, archive: Path, workdir: Path, workers: int, keep: bool) -> dict:
    cache_dir = workdir / f"cache-{n}"
    registry = write_registry(archive, cache_dir, workers)
    log = workdir / "stages.log"
    row: dict = {"size": n}
    ingest, (row["ingest_rss"], row["ingest_pss"]) = run_stage("ingest", registry, log)
    row.update(images=ingest["images"], ingest_s=ingest["seconds"], ingest_cpu=ingest["cpu"], cache_mb=ingest["cache_mb"],
               duplicates=ingest["duplicates"])
    split, (row["split_rss"], row["split_pss"]) = run_stage("split", registry, log)
    row["split_s"] = split["seconds"]
    info_cmd = [sys.executable, "-m", "mathsym_zoo", "info", "--registry", str(registry), "--no-progress"]
    row["info_s"], (row["info_rss"], row["info_pss"]), _ = measured(info_cmd, log)
    epoch, (row["epoch_rss"], row["epoch_pss"]) = run_stage("epoch", registry, log)
    row.update(epoch_rate=epoch["rate"], epoch_cpu=epoch["cpu"] / epoch["images"], tensor_s=epoch["tensor_seconds"])
    if not keep:
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> None:
    mb = 2**20
    print(f"{'images':>8} {'ingest s':>8} {'img/s':>6} {'s/img':>5} {'CPU us/img':>10} {'RSS MB':>6} {'PSS MB':>6} {'cache MB':>8} "
          f"{'dups':>5} {'split s':>7} {'info s':>6} {'epoch img/s':>11} {'CPU us/img':>10} {'epoch PSS MB':>12}")
    first = rows[0]
    for r in rows:
        growth = (r["ingest_s"] / r["images"]) / (first["ingest_s"] / first["images"])
        print(f"{r['images']:>8,} {r['ingest_s']:>8.1f} {r['images'] / r['ingest_s']:>6,.0f} {growth:>5.2f} "
              f"{r['ingest_cpu'] / r['images'] * 1e6:>10.0f} "
              f"{r['ingest_rss'] / mb:>6,.0f} {r['ingest_pss'] / mb:>6,.0f} {r['cache_mb']:>8,.0f} "
              f"{r['duplicates']:>5,} {r['split_s']:>7.1f} {r['info_s']:>6.1f} {r['epoch_rate']:>11,.0f} "
              f"{r['epoch_cpu'] * 1e6:>10.1f} {r['epoch_pss'] / mb:>12,.0f}")
    print("(s/img: ingest wall seconds per image relative to the first size; CPU us/img: CPU time of the ingest's "
          "processes, then of the epoch, per image; RSS, PSS: peak sums over the ingest's process tree)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,100000,200000,400000")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mathsym-scale"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the caches (the archives are always kept)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--registry", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.registry)))
        return
    if not BENCH.is_file():
        sys.exit(f"benchmark archive {BENCH} not found")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    archives = make_archives(sizes, args.workdir)
    rows = [measure_size(n, archives[n], args.workdir, args.workers, args.keep) for n in sizes]
    table(rows)
    first, last = rows[0], rows[-1]
    mb = 2**20
    label = f"{last['images'] // 1000}k"
    print(f"split s at {label}: {last['split_s']:.1f}")
    print(f"info s at {label}: {last['info_s']:.1f}")
    print(f"cache MB at {label}: {last['cache_mb']:.0f}")
    print(f"epoch images/s at {label}: {last['epoch_rate']:.0f}")
    print(f"epoch images/s ratio {first['images'] // 1000}k->{label}: {last['epoch_rate'] / first['epoch_rate']:.2f}")
    print(f"epoch CPU time per image ratio {first['images'] // 1000}k->{label}: "
          f"{last['epoch_cpu'] / first['epoch_cpu']:.2f}")
    cpu_growth = (last["ingest_cpu"] / last["images"]) / (first["ingest_cpu"] / first["images"])
    print(f"ingest CPU time growth {first['images'] // 1000}k->{label}: {cpu_growth:.2f}")
    print(f"peak PSS MB at {label}: {last['ingest_pss'] / mb:.0f}")
    print(f"ingest images/s at {label}: {last['images'] / last['ingest_s']:.0f}")
    print(f"peak RSS MB at {label}: {last['ingest_rss'] / mb:.0f}")  # summed over the ingest's processes
    growth = (last["ingest_s"] / last["images"]) / (first["ingest_s"] / first["images"])
    print(f"time growth {first['images'] // 1000}k->{label}: {growth:.2f}")


if __name__ == "__main__":
    main()
