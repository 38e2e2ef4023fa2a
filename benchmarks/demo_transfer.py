"""How much the demo data teaches about real handwriting.

Trains the zoo's notebook CNN (built through the plugin system) on demo images
only, then evaluates top-1 accuracy on every real CROHME image of the benchmark
zip (Kaggle layout ``extracted_images/<label>/*.jpg``; 46,479 images, 82
classes, chance 1.2%)::

    python benchmarks/demo_transfer.py [--per-class 200] [--epochs 15] [--zip PATH]

The last line is ``demo->real top-1: 0.xx``. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "crohme_bench.zip"


def load_real(zip_path: Path, class_names: tuple[str, ...], size: int = 45) -> tuple[np.ndarray, np.ndarray]:
    """Every image of the zip as uint8 (N, 45, 45), grayscale, padded-resized if needed."""
    from PIL import Image, ImageOps

    index = {c: i for i, c in enumerate(class_names)}
    images, labels = [], []
    with zipfile.ZipFile(zip_path) as z:
        for name in sorted(z.namelist()):
            parts = name.split("/")
            if len(parts) < 2 or not name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            label = parts[-2]
            if label not in index:
                continue
            im = Image.open(io.BytesIO(z.read(name))).convert("L")
            if im.size != (size, size):  # resize_with_pad, white padding
                im = ImageOps.pad(im, (size, size), method=Image.Resampling.BICUBIC, color=255)
            images.append(np.asarray(im, dtype=np.uint8))
            labels.append(index[label])
    return np.stack(images), np.asarray(labels, dtype=np.int32)


def demo_arrays(per_class: int, seed: int, distortion: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The demo source's records, through the plugin system, as arrays."""
    from mathsym_zoo.components import BuildContext
    from mathsym_zoo.plugins import PluginSet

    comp = PluginSet().get("source", "demo")
    src = comp.factory(comp.params(images_per_class=per_class, seed=seed, distortion=distortion),
                       BuildContext(ROOT, ROOT / ".mathsym-cache"))
    recs = list(src.records())
    class_names = tuple(sorted({r.label for r in recs}))
    index = {c: i for i, c in enumerate(class_names)}
    x = np.stack([r.image for r in recs])
    y = np.asarray([index[r.label] for r in recs], dtype=np.int32)
    return x, y, class_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=200, help="demo images per class for training")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distortion", type=float, default=1.0)
    ap.add_argument("--zip", default=str(DEFAULT_ZIP))
    ap.add_argument("--confusions", type=int, default=12, help="print the N most frequent real-data confusions")
    args = ap.parse_args()
    zip_path = Path(args.zip)
    if not zip_path.is_file():
        raise SystemExit(f"real benchmark zip not found: {zip_path}; pass --zip PATH")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    x, y, class_names = demo_arrays(args.per_class, args.seed, args.distortion)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    xr, yr = load_real(zip_path, class_names)
    t_real = time.perf_counter() - t0

    import keras

    from mathsym_zoo.plugins import PluginSet

    keras.utils.set_random_seed(args.seed)
    comp = PluginSet().get("architecture", "notebook-cnn")
    model = comp.factory(comp.params(), (45, 45, 1), len(class_names))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    xs = x[..., None].astype("float32") / 255.0
    t0 = time.perf_counter()
    model.fit(xs, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=2)
    t_train = time.perf_counter() - t0

    prob = model.predict(xr[..., None].astype("float32") / 255.0, batch_size=512, verbose=0)
    pred = prob.argmax(1)
    top1 = float((pred == yr).mean())
    top5 = float((np.argsort(-prob, 1)[:, :5] == yr[:, None]).any(1).mean())
    recalls = [float((pred[yr == c] == c).mean()) for c in range(len(class_names)) if (yr == c).any()]

    if args.confusions:
        pairs: dict[tuple[int, int], int] = {}
        for t, p in zip(yr[pred != yr], pred[pred != yr]):
            pairs[(int(t), int(p))] = pairs.get((int(t), int(p)), 0) + 1
        worst = sorted(pairs.items(), key=lambda kv: -kv[1])[: args.confusions]
        print("most frequent confusions (real -> predicted: count):")
        for (t, p), n in worst:
            print(f"  {class_names[t]} -> {class_names[p]}: {n}")
        per_class = sorted(((r, c) for r, c in zip(recalls, class_names)), key=lambda rc: rc[0])
        print("lowest recall:", ", ".join(f"{c} {r:.2f}" for r, c in per_class[:15]))

    print(f"demo images: {len(y)} ({args.per_class}/class, seed {args.seed}, distortion {args.distortion:g})")
    print(f"real images: {len(yr)}")
    print(f"generate s: {t_gen:.1f}")
    print(f"read real s: {t_real:.1f}")
    print(f"train s: {t_train:.1f}")
    print(f"demo->real top-5: {top5:.4f}")
    print(f"demo->real balanced accuracy: {np.mean(recalls):.4f}")
    print(f"demo->real top-1: {top1:.4f}")


if __name__ == "__main__":
    main()
