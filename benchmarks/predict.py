"""Prediction speed after loading: the compiled call against ``model.predict``.

Builds a zoo architecture (``--arch``, default notebook-cnn, untrained: speed
does not depend on the weights) behind ``wrap_model`` in a temporary run folder,
or uses ``--run PATH``, then measures with :func:`mathsym_zoo.predict.load_classifier`:

* single-image latency p50/p95 of the compiled call (preprocessed image in,
  probabilities out) and of ``Classifier.predict`` on one file (decode + offline
  preprocessing + call + top-k), against ``model.predict`` on one image,
* batch throughput of the compiled call and of ``predict`` on a folder of files,
* single-image latency of each export format (SavedModel, TFLite, ONNX; each loaded
  by ``load_classifier``, preprocessed image in) beside the compiled Keras call, and of
  the SavedModel's image-bytes signature (one encoded file in: decoding and
  preprocessing in the graph) beside ``predict()`` on one file.

Images are real CROHME JPEGs from ``../shared/data/crohme_bench.zip`` when present,
else generated strokes. Goal: single image <= 5 ms. Headline ``name: value`` lines last.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
BENCH_ZIP = REPO.parent / "shared" / "data" / "crohme_bench.zip"
PREPROCESSING = [
    {"name": "grayscale", "type": "grayscale", "plugin": "image_ops", "params": {}},
    {"name": "resize_pad", "type": "resize_pad", "plugin": "image_ops",
     "params": {"size": [45, 45], "resample": "bicubic", "fill": 255}},
]


def make_run(folder: Path, arch: str, num_classes: int = 82) -> Path:
    from mathsym_zoo.data.pipeline import wrap_model
    from mathsym_zoo.plugins import PluginSet

    comp = PluginSet().get("architecture", arch)
    model = wrap_model(comp.factory(comp.params(), (45, 45, 1), num_classes), (45, 45, 1), (), name=arch)
    folder.mkdir(parents=True)
    model.save(folder / "best.keras")
    info = {"class_names": [f"class_{i:02d}" for i in range(num_classes)], "preprocessing": PREPROCESSING,
            "input_shape": [45, 45, 1], "model": {"name": arch, "type": arch}}
    (folder / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    if BENCH_ZIP.is_file():
        with zipfile.ZipFile(BENCH_ZIP) as zf:
            names = [m for m in zf.namelist() if m.lower().endswith(".jpg")]
            for i, name in enumerate(names[:: max(1, len(names) // n)][:n]):
                paths.append(folder / f"{i:05d}.jpg")
                paths[-1].write_bytes(zf.read(name))
        return paths
    from PIL import Image

    from mathsym_zoo.export import synthetic_inputs

    for i, img in enumerate(synthetic_inputs((45, 45, 1), n=n)):
        paths.append(folder / f"{i:05d}.png")
        Image.fromarray(img[..., 0]).save(paths[-1])
    return paths


def timed(fn, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU (this process, all threads) milliseconds per call. On a shared
    machine the CPU time is the steadier measure of what one call costs."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return np.asarray(wall) * 1000, np.asarray(cpu) * 1000


def time_exports(run, tmp: Path, formats, one: np.ndarray, file: Path, repeat: int) -> dict:
    """Single-image latency of each export, loaded as a deployer would (through load_classifier)."""
    import tensorflow as tf

    from mathsym_zoo.export import export
    from mathsym_zoo.predict import load_classifier

    out = {}
    for fmt in formats:
        result = export(run, fmt, None, tmp / f"export-{fmt}")
        exported = load_classifier(result.path)
        exported.predict_proba(one)  # warm-up
        out[f"export {fmt}, 1 preprocessed image"] = timed(lambda: exported.predict_proba(one), repeat)
        if fmt == "saved_model" and result.info.get("image_bytes_signature", {}).get("available"):
            serve = tf.saved_model.load(str(result.model_path)).signatures["serving_default"]
            data = tf.constant([file.read_bytes()])
            serve(image_bytes=data)  # warm-up
            out["export saved_model bytes, 1 file (decode in graph)"] = timed(
                lambda: serve(image_bytes=data)["probabilities"].numpy(), repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="notebook-cnn", help="zoo architecture to build (ignored with --run)")
    parser.add_argument("--run", type=Path, help="an existing run folder or .keras file to measure instead")
    parser.add_argument("--repeat", type=int, default=300, help="single-image calls per measurement")
    parser.add_argument("--images", type=int, default=1024, help="images for the throughput measurements")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--formats", default="saved_model,tflite,onnx",
                        help="export formats to time beside the Keras call ('' for none)")
    args = parser.parse_args()

    import tensorflow as tf

    from mathsym_zoo.predict import load_classifier

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run or make_run(tmp / "run", args.arch)
        start = time.perf_counter()
        clf = load_classifier(run, warm_batch=args.batch_size)
        load_s = time.perf_counter() - start
        paths = write_images(tmp / "images", args.images)
        one = clf.preprocess(paths[0])
        batch = np.stack([clf.preprocess(p) for p in paths])

        compiled = timed(lambda: clf.predict_proba(one), args.repeat)
        full = timed(lambda: clf.predict(paths[0], top_k=5), args.repeat)
        x = one[None].astype("float32")
        clf.model.predict(x, verbose=0)  # warm-up
        keras_predict = timed(lambda: clf.model.predict(x, verbose=0), max(10, args.repeat // 10))

        for _ in range(2):  # warm-up of the batch shape
            clf.predict_proba(batch[: args.batch_size])
        start = time.perf_counter()
        for i in range(0, len(batch), args.batch_size):
            clf.predict_proba(batch[i:i + args.batch_size])
        call_ips = len(batch) / (time.perf_counter() - start)
        start = time.perf_counter()
        preds = clf.predict(paths, top_k=5, batch_size=args.batch_size)
        files_ips = len(preds) / (time.perf_counter() - start)
        exported = time_exports(run, tmp, [f for f in args.formats.split(",") if f], one, paths[0], args.repeat)

    name = args.run or args.arch
    print(f"model {name} ({clf.model.count_params():,} params), TensorFlow {tf.__version__}, "
          f"{os.cpu_count()} CPUs, images: {'crohme_bench.zip' if BENCH_ZIP.is_file() else 'generated'}")
    print(f"load + warm-up: {load_s:.2f} s")
    rows = [("compiled call, 1 preprocessed image", compiled),
            ("predict(), 1 file (decode+preprocess+top-5)", full),
            ("model.predict, 1 image", keras_predict)]
    for label, (t, c) in rows:
        print(f"{label:>46}: p50 {np.percentile(t, 50):7.2f} ms  p95 {np.percentile(t, 95):7.2f} ms  "
              f"(CPU p50 {np.percentile(c, 50):6.2f} ms, n={len(t)})")
    for label, (t, c) in exported.items():
        print(f"{label:>46}: p50 {np.percentile(t, 50):7.2f} ms  p95 {np.percentile(t, 95):7.2f} ms  "
              f"(CPU p50 {np.percentile(c, 50):6.2f} ms, n={len(t)})")
    print(f"{'speed-up of the compiled call (p50)':>46}: {np.median(keras_predict[0]) / np.median(compiled[0]):.0f}x")
    print(f"{'batch throughput, compiled call':>46}: {call_ips:,.0f} images/s (batch {args.batch_size})")
    print(f"{'batch throughput, predict() on files':>46}: {files_ips:,.0f} images/s ({len(preds)} files)")
    print()
    print(f"latency_p50_ms: {np.percentile(compiled[0], 50):.2f}")
    print(f"latency_p95_ms: {np.percentile(compiled[0], 95):.2f}")
    print(f"latency_cpu_p50_ms: {np.percentile(compiled[1], 50):.2f}")
    print(f"predict_file_p50_ms: {np.percentile(full[0], 50):.2f}")
    print(f"predict_file_p95_ms: {np.percentile(full[0], 95):.2f}")
    print(f"model_predict_p50_ms: {np.percentile(keras_predict[0], 50):.2f}")
    print(f"throughput_call_ips: {call_ips:.0f}")
    print(f"throughput_files_ips: {files_ips:.0f}")
    for label, (t, _) in exported.items():
        key = label.split(",")[0].replace(" ", "_").replace("-", "_")
        print(f"{key}_p50_ms: {np.percentile(t, 50):.2f}")
        print(f"{key}_vs_compiled_p50: {np.percentile(t, 50) / np.percentile(compiled[0], 50):.2f}x")


if __name__ == "__main__":
    main()
