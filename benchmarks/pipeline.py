"""Input-pipeline benchmark: the seed notebook's pipeline against ours.

Prints, in one run:

1. images/s of the seed-style pipeline: a Python generator of JPEG bytes ->
   decode -> resize_with_pad(45, 45) -> batch 64 (as in the first notebook);
2. images/s of ours: tf.data over the decoded uint8 arrays (full seeded
   reshuffle, batch 64, gather, prefetch) - what training reads every epoch;
3. training images/s of the notebook CNN fed by our pipeline and by plain
   in-memory tensors (``model.fit`` on NumPy arrays): alternating one-epoch fits,
   fastest epoch of each after a warm-up (robust to other load on the machine).

The last two lines are the ratios (goals: >= 20 and >= 0.95).

    python benchmarks/pipeline.py [--zip ../shared/data/crohme_bench.zip] [--images 8192] [--train-images 2048] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SIZE = (45, 45)
BATCH = 64


def read_jpegs(path: Path, limit: int) -> tuple[list[bytes], np.ndarray, list[str]]:
    """``limit`` JPEGs spread evenly over the archive, with their folder labels."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg")))
        step = max(1, len(names) // limit)
        picked = names[::step][:limit]
        data = [zf.read(n) for n in picked]
    labels_str = [n.split("/")[-2] for n in picked]
    classes = sorted(set(labels_str))
    index = {c: i for i, c in enumerate(classes)}
    return data, np.array([index[s] for s in labels_str], np.int32), classes


def seed_style_images_per_second(data: list[bytes], labels: np.ndarray) -> float:
    """The notebook's pipeline: generator of bytes, decode + resize_with_pad per image, batch 64."""
    import tensorflow as tf

    def generator():
        for b, y in zip(data, labels.tolist()):
            yield b, y

    def preprocess(b):
        image = tf.io.decode_image(b, channels=3)
        image.set_shape([None, None, 3])
        image = tf.image.resize_with_pad(image, SIZE[0], SIZE[1], tf.image.ResizeMethod.BICUBIC)
        return tf.image.convert_image_dtype(image, tf.float32)

    ds = tf.data.Dataset.from_generator(generator, output_signature=(tf.TensorSpec((), tf.string),
                                                                     tf.TensorSpec((), tf.int32)))
    ds = ds.map(lambda b, y: (preprocess(b), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.batch(BATCH).prefetch(tf.data.AUTOTUNE)
    for _ in ds.take(2):  # warm-up: tracing, thread pools
        pass
    start, n = time.perf_counter(), 0
    for x, _ in ds:
        n += int(x.shape[0])
    return n / (time.perf_counter() - start)


def decode_once(data: list[bytes]) -> np.ndarray:
    """What the cache stores: grey uint8 45x45 arrays (decoded once, at ingest; not timed)."""
    import tensorflow as tf

    out = np.empty((len(data), *SIZE, 1), np.uint8)
    for i, b in enumerate(data):
        image = tf.image.resize_with_pad(tf.io.decode_jpeg(b, channels=1), SIZE[0], SIZE[1],
                                         tf.image.ResizeMethod.BICUBIC)
        out[i] = np.clip(np.round(image.numpy()), 0, 255).astype(np.uint8)
    return out


def ours_images_per_second(images: np.ndarray, labels: np.ndarray, num_classes: int, total: int = 200_000) -> float:
    """Our pipeline as training reads it: one dataset over several epochs, each a full reshuffle."""
    from mathsym_zoo.data.pipeline import ArrayPipeline

    pipe = ArrayPipeline(images, labels, num_classes)
    idx = np.arange(len(images))
    epochs = max(2, total // len(images))
    ds = pipe.train(idx, batch_size=BATCH, seed=0, epochs=epochs)
    it = iter(ds)
    for _ in range(2):  # warm-up
        next(it)
    start, n = time.perf_counter(), 0
    for x, _ in it:
        n += int(x.shape[0])
    return n / (time.perf_counter() - start)


def training_images_per_second(images, labels, num_classes, rounds: int) -> tuple[float, float]:
    """Notebook CNN, adam, batch 64, through our pipeline and through in-memory arrays.

    One-epoch ``fit`` calls alternate between the two (after one warm-up epoch each), so
    background load hits both alike; each figure is from its fastest epoch, the least
    disturbed measurement on a shared machine.
    """
    import keras

    from mathsym_zoo.data.pipeline import ArrayPipeline, steps_for, wrap_model
    from mathsym_zoo_plugins.arch_notebook_cnn import NotebookCNNParams, build_notebook_cnn

    def fresh():
        keras.utils.set_random_seed(0)
        model = wrap_model(build_notebook_cnn(NotebookCNNParams(), images.shape[1:], num_classes), images.shape[1:])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    n = len(images)
    steps = steps_for(n, BATCH)
    x_float = images.astype(np.float32)
    pipe = ArrayPipeline(images, labels, num_classes)
    ours_model, mem_model = fresh(), fresh()
    seconds: dict[str, list[float]] = {"ours": [], "memory": []}
    for epoch in range(rounds + 1):
        for name in ("memory", "ours"):
            start = time.perf_counter()
            if name == "ours":  # what train_model feeds fit: epoch k of the seeded reshuffle
                ds = pipe.train(np.arange(n), batch_size=BATCH, seed=0, epochs=epoch + 1, initial_epoch=epoch)
                ours_model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
            else:
                mem_model.fit(x_float, labels, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
            if epoch:  # the first epoch traces and warms up
                seconds[name].append(time.perf_counter() - start)
    return n / min(seconds["ours"]), n / min(seconds["memory"])


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", type=Path, default=here.parent / "shared" / "data" / "crohme_bench.zip")
    parser.add_argument("--images", type=int, default=8192, help="JPEGs sampled from the archive")
    parser.add_argument("--train-images", type=int, default=2048, help="images per training epoch")
    parser.add_argument("--rounds", type=int, default=6, help="timed training epochs per variant")
    args = parser.parse_args()

    data, labels, classes = read_jpegs(args.zip, args.images)
    print(f"{len(data)} JPEGs from {args.zip.name}, {len(classes)} classes, batch {BATCH}")
    seed = seed_style_images_per_second(data, labels)
    print(f"seed-style pipeline (generator -> decode -> resize_with_pad -> batch): {seed:,.0f} images/s")
    images = decode_once(data)
    ours = ours_images_per_second(images, labels, len(classes))
    print(f"our pipeline (uint8 arrays -> reshuffle -> batch -> gather -> prefetch): {ours:,.0f} images/s")
    m = min(args.train_images, len(images))
    train_ours, train_mem = training_images_per_second(images[:m], labels[:m], len(classes), args.rounds)
    print(f"notebook CNN training through our pipeline: {train_ours:,.0f} images/s")
    print(f"notebook CNN training on in-memory tensors (fit on arrays): {train_mem:,.0f} images/s")
    print(f"ratio ours/seed-style: {ours / seed:.1f}")
    print(f"ratio train-pipeline/in-memory: {train_ours / train_mem:.2f}")


if __name__ == "__main__":
    main()
