"""Exports round-trip: reloaded with plain TensorFlow (``tf.saved_model.load``,
``tf.lite.Interpreter``) they match the Keras model.

Tolerances on softmax probabilities (max absolute difference over the batch):

=====================  ==============  ====================
export                 max |Δp|        top-1 agreement
=====================  ==============  ====================
SavedModel             1e-5            100 %
TFLite float32         1e-4            100 %
ONNX (onnxruntime)     1e-4            100 %
TFLite float16         1e-2            >= 98 %
TFLite dynamic (int8)  5e-2            >= 95 %, accuracy change >= -3 points
=====================  ==============  ====================

The real-data tests train a small model with ``train_model`` for a few seconds
on CROHME symbols from ``../shared/data/crohme_bench.zip`` (skipped when absent; an error in CI)
and compare on held-out images of that archive; they print size and agreement
per format (``pytest -s``).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import predict_helpers as H
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.export import compare_outputs, export, synthetic_inputs
from mathsym_zoo.predict import load_classifier

TOLERANCE = {  # (format, quantize): (max |Δp|, min top-1 agreement)
    ("saved_model", None): (1e-5, 1.0),
    ("tflite", None): (1e-4, 1.0),
    ("onnx", None): (1e-4, 1.0),
    ("tflite", "float16"): (1e-2, 0.98),
    ("tflite", "dynamic"): (5e-2, 0.95),
}
CLASSES = ("alpha", "beta", "gamma")


def saved_model_probs(folder: Path, batch: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    return loaded.signatures["serving_images"](image=tf.constant(batch))["probabilities"].numpy()


def onnx_probs(file: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    return session.run(["probabilities"], {"image": batch})[0]


def tflite_probs(file: Path, batch: np.ndarray) -> np.ndarray:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(file))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.uint8 and list(inp["shape"][1:]) == list(batch.shape[1:])
    interpreter.resize_tensor_input(inp["index"], list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], batch)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def reload_probs(result, batch: np.ndarray) -> np.ndarray:
    if result.format == "saved_model":
        return saved_model_probs(result.model_path, batch)
    if result.format == "onnx":
        return onnx_probs(result.model_path, batch)
    return tflite_probs(result.model_path, batch)


def keras_probs(run_dir: Path, batch: np.ndarray) -> np.ndarray:
    import keras

    model = keras.saving.load_model(run_dir / "best.keras", safe_mode=True, compile=False)
    return model(batch.astype("float32"), training=False).numpy()


# -- fast: an untrained model, synthetic inputs ------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return H.tiny_run(tmp_path_factory.mktemp("tiny") / "run", CLASSES)


@pytest.mark.parametrize("fmt,quantize", [("saved_model", None), ("tflite", None), ("onnx", None)])
def test_export_round_trip_with_labels_and_metadata(tiny, tmp_path, fmt, quantize):
    out = tmp_path / "export"
    batch = synthetic_inputs((45, 45, 1), n=16)
    result = export(tiny, fmt, quantize, out, check=batch)
    assert result.path == out and result.model_path.exists() and result.size_bytes > 0
    assert (out / "labels.txt").read_text().splitlines() == list(CLASSES)
    info = json.loads((out / "model_info.json").read_text())
    assert info["format"] == fmt and info["class_names"] == list(CLASSES)
    assert info["output"]["name"] == "probabilities"
    assert info["input"] == {"name": "image", "shape": [None, 45, 45, 1], "dtype": "uint8", "range": [0, 255],
                             "description": info["input"]["description"]}
    assert [p["type"] for p in info["preprocessing"]] == ["grayscale", "resize_pad"]
    tol, agree = TOLERANCE[(fmt, quantize)]
    np.testing.assert_allclose(reload_probs(result, batch), keras_probs(tiny, batch), atol=tol)
    assert result.check["max_abs_diff"] <= tol and result.check["top1_agreement"] >= agree
    # The export folder is a model too: same offline preprocessing, same answers.
    exported = load_classifier(out)
    assert exported.kind == fmt and exported.class_names == CLASSES
    raw = np.full((30, 70, 3), 255, np.uint8)
    raw[10:20, 5:60] = 0
    mine, theirs = load_classifier(tiny).predict(raw, top_k=3)[0], exported.predict(raw, top_k=3)[0]
    assert mine.labels == theirs.labels
    np.testing.assert_allclose(mine.probabilities, theirs.probabilities, atol=tol)
    assert not list(tmp_path.glob(".export.*"))  # no temporary folders left


def test_a_model_with_the_class_prior_layer_exports_to_every_format(tmp_path):
    """undo_class_weights adds ClassPrior to the saved model; every export applies it like Keras."""
    from mathsym_zoo.data.pipeline import wrap_model

    model = wrap_model(H.small_cnn(H.INPUT_SHAPE, len(CLASSES)), H.INPUT_SHAPE, (), class_prior=[1.5, 0.0, -1.5])
    run_dir = H.write_run(tmp_path / "run", model, CLASSES)
    batch = synthetic_inputs((45, 45, 1), n=16)
    reference = keras_probs(run_dir, batch)
    for fmt in ("saved_model", "tflite", "onnx"):
        result = export(run_dir, fmt, None, tmp_path / fmt, check=batch)
        np.testing.assert_allclose(reload_probs(result, batch), reference, atol=TOLERANCE[(fmt, None)][0],
                                   err_msg=fmt)


def test_bad_arguments_and_existing_output(tiny, tmp_path):
    with pytest.raises(ConfigError, match="TFLite only"):
        export(tiny, "saved_model", "dynamic", tmp_path / "a")
    with pytest.raises(ConfigError, match="unknown export format"):
        export(tiny, "caffe", None, tmp_path / "a")
    with pytest.raises(ConfigError, match="unknown quantization"):
        export(tiny, "tflite", "int4", tmp_path / "a")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="already exists.*--force"):
        export(tiny, "tflite", None, tmp_path / "taken")
    result = export(tiny, "tflite", None, tmp_path / "taken", overwrite=True)
    assert (tmp_path / "taken" / "model.tflite").is_file() and result.check is None
    with pytest.raises(ConfigError, match="already an export"):
        export(tmp_path / "taken", "tflite", None, tmp_path / "again")


def test_failed_export_leaves_nothing_behind(tiny, tmp_path, monkeypatch):
    import mathsym_zoo.export as E

    def boom(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(E, "_write_tflite", boom)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export(tiny, "tflite", None, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_cli_export_prints_size_and_agreement(tiny, tmp_path, capsys):
    from mathsym_zoo.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["export", str(tiny), "--format", "tflite", "--quantize", "float16", "--out", str(tmp_path / "e")])
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert (exc.value.code or 0) == 0
    assert "size" in out and "x the .keras file" in out and "top-1 agreement" in out and "synthetic" in out
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_inputs((60, 30, 1), n=3, seed=i)[i, ..., 0]).save(folder / f"{i}.png")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tiny), "--out", str(tmp_path / "g"), "--check", str(folder)])
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert (exc.value.code or 0) == 0 and "on 3 given images" in out
    assert "image bytes → top-1" in out and "100.00% on 3 files" in out
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tiny), "--quantize", "float16", "--out", str(tmp_path / "f")])
    assert exc.value.code == 1 and "TFLite only" in capsys.readouterr().err


# -- the SavedModel's image-bytes signature and the TFLite example ---------------------------------

VARIANTS = [  # (height, width), Pillow mode, file format: sizes and modes a deployer may send
    ((60, 90), "RGB", "PNG"), ((45, 45), "L", "PNG"), ((200, 37), "L", "JPEG"), ((33, 120), "RGBA", "PNG"),
    ((70, 50), "LA", "PNG"), ((90, 80), "P", "GIF"), ((41, 300), "RGB", "BMP"), ((128, 128), "1", "PNG"),
    ((15, 20), "RGB", "JPEG"), ((300, 20), "L", "PNG"),
]


def encode(pixels: np.ndarray, mode: str, fmt: str, rng) -> bytes:
    image = Image.fromarray(pixels).convert(mode)
    if mode in ("RGBA", "LA"):  # partly transparent: becomes white paper
        array = np.asarray(image).copy()
        array[..., -1] = rng.integers(0, 256, array.shape[:2])
        image = Image.fromarray(array, mode)
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def write_variants(folder: Path, bases: list[np.ndarray], seed: int = 0) -> list[Path]:
    """Each base grey image (H, W) resized to every VARIANTS size/mode/format, written to ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, base in enumerate(bases):
        for (h, w), mode, fmt in VARIANTS:
            pixels = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR))
            paths.append(folder / f"{i:03d}-{w}x{h}-{mode}.{fmt.lower()}")
            paths[-1].write_bytes(encode(pixels, mode, fmt, rng))
    return paths


def cache_pixels(paths, preprocessing=None) -> np.ndarray:
    """The decoded cache's pixels for these files: the ingest's own decode + offline steps."""
    from mathsym_zoo.data.cache import decode_items
    from mathsym_zoo.plugins import PluginSet
    from mathsym_zoo.predict import build_offline_steps

    steps = build_offline_steps(preprocessing or H.DEFAULT_PREPROCESSING, PluginSet())
    decoded = decode_items([(Path(p).read_bytes(), None) for p in paths], steps)
    return np.stack([np.frombuffer(d[0], np.uint8).reshape(d[1]) for d in decoded])


def bytes_signatures(folder: Path, paths):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    data = tf.constant([Path(p).read_bytes() for p in paths])
    out = {k: v.numpy() for k, v in loaded.signatures["serving_default"](image_bytes=data).items()}
    pixels = loaded.signatures["preprocess"](image_bytes=data)["image"].numpy()
    return out, pixels


def test_saved_model_takes_encoded_images_of_any_size_and_mode(tiny, tmp_path):
    bases = [synthetic_inputs((45, 45, 1), n=2, seed=s)[1, ..., 0] for s in range(2)]
    paths = write_variants(tmp_path / "files", bases)
    result = export(tiny, "saved_model", None, tmp_path / "sm", check=[str(tmp_path / "files")])
    out, pixels = bytes_signatures(result.model_path, paths)
    # In-graph decoding and preprocessing give the cache's pixels (Pillow's arithmetic, reproduced).
    expected = cache_pixels(paths)
    assert pixels.dtype == np.uint8 and pixels.shape == expected.shape
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= 1
    clf = load_classifier(tiny)
    reference = clf.predict_proba(np.stack([clf.preprocess(p) for p in paths]))
    np.testing.assert_allclose(out["probabilities"], reference, atol=1e-5)
    # top_k: labels from the SavedModel's own asset, scores in order.
    assert out["top_k_labels"].shape == (len(paths), 3) and out["top_k_scores"].shape == (len(paths), 3)
    for probs, labels, scores in zip(out["probabilities"], out["top_k_labels"], out["top_k_scores"]):
        order = np.argsort(-probs, kind="stable")
        assert [lab.decode() for lab in labels] == [CLASSES[i] for i in order]
        np.testing.assert_allclose(scores, probs[order])
    assert (result.model_path / "assets" / "labels.txt").read_text().splitlines() == list(CLASSES)
    info = result.info
    assert info["image_bytes_signature"] == {"available": True} and info["top_k"] == 3
    assert set(info["signatures"]) == {"serving_default", "serving_images", "preprocess"}
    bytes_check = result.check["image_bytes"]
    assert bytes_check["images"] == len(paths) and bytes_check["pixels_max_diff"] <= 1
    assert bytes_check["top1_agreement"] == 1.0 and bytes_check["max_abs_diff"] <= 1e-5


def test_step_without_graph_version_keeps_the_images_signature_as_default(tmp_path):
    import tensorflow as tf

    preprocessing = [dict(H.DEFAULT_PREPROCESSING[0]), {**H.DEFAULT_PREPROCESSING[1],
                     "params": {"size": [45, 45], "resample": "nearest", "fill": 255}}]
    run = H.tiny_run(tmp_path / "run", CLASSES, preprocessing=preprocessing)
    result = export(run, "saved_model", None, tmp_path / "sm")
    state = result.info["image_bytes_signature"]
    assert state["available"] is False and "nearest" in state["reason"]
    loaded = tf.saved_model.load(str(result.model_path))
    assert set(loaded.signatures) == {"serving_default", "serving_images"}
    batch = synthetic_inputs((45, 45, 1), n=4)
    probs = loaded.signatures["serving_default"](image=tf.constant(batch))["probabilities"].numpy()
    np.testing.assert_allclose(probs, keras_probs(run, batch), atol=1e-5)


def test_tflite_example_script_runs_with_pillow_preprocessing(tiny, tmp_path):
    result = export(tiny, "tflite", None, tmp_path / "tfl")
    bases = [synthetic_inputs((45, 45, 1), n=1, seed=7)[0, ..., 0]]
    paths = write_variants(tmp_path / "files", bases)[:4]
    script = Path(__file__).resolve().parent.parent / "examples" / "tflite_predict.py"
    proc = subprocess.run([sys.executable, str(script), str(result.path), *map(str, paths)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    expected = load_classifier(tiny).predict(paths, top_k=3)
    assert [line[0] for line in lines] == [str(p) for p in paths]
    for line, pred in zip(lines, expected):
        got = [cell.rsplit(" ", 1) for cell in line[1:]]
        assert [label for label, _ in got] == list(pred.labels)
        np.testing.assert_allclose([float(p) for _, p in got], pred.probabilities, atol=1e-4)


def test_compare_outputs_accuracy_change():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    other = np.array([[0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    c = compare_outputs(ref, other, labels=np.array([0, 1, 1]))
    assert c["top1_agreement"] == pytest.approx(2 / 3) and c["max_abs_diff"] == pytest.approx(0.4)
    assert c["accuracy_keras"] == pytest.approx(2 / 3) and c["accuracy_change"] == pytest.approx(-1 / 3)


# -- slow: a model trained on real CROHME symbols, held-out real images ---------------------------


needs_bench = pytest.mark.shared_data("crohme_bench.zip")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = H.trained_run(tmp_path_factory.mktemp("trained"), train_per_class=60, epochs=5)
    images, labels, names, raw = H.bench_images(50, offset=7)  # other files than the training ones
    return run_dir, images, labels, raw


@pytest.fixture(scope="module")
def keras_reference(trained):
    run_dir, images, _, _ = trained
    return keras_probs(run_dir, images), (run_dir / "best.keras").stat().st_size


@needs_bench
@pytest.mark.slow
@pytest.mark.parametrize("fmt,quantize", list(TOLERANCE))
def test_real_images_agree_with_keras(trained, keras_reference, tmp_path, fmt, quantize):
    run_dir, images, labels, _ = trained
    reference, keras_size = keras_reference
    result = export(run_dir, fmt, quantize, tmp_path / "export", check=images, check_labels=labels)
    probs = reload_probs(result, images)
    c = compare_outputs(reference, probs, labels)
    tol, agree = TOLERANCE[(fmt, quantize)]
    print(f"\n[export] {fmt:11s} {str(quantize):8s} size {result.size_bytes:>9,d} B "
          f"({result.size_bytes / keras_size:.2f}x .keras {keras_size:,d} B)  max|dp| {c['max_abs_diff']:.2e}  "
          f"top-1 agreement {c['top1_agreement']:.2%}  accuracy {c['accuracy_keras']:.2%} -> "
          f"{c['accuracy_export']:.2%} ({c['accuracy_change'] * 100:+.2f} pt) on {c['images']} held-out images")
    assert c["max_abs_diff"] <= tol and c["top1_agreement"] >= agree
    assert c["accuracy_change"] >= -0.03
    assert result.check["top1_agreement"] == pytest.approx(c["top1_agreement"])
    assert c["accuracy_keras"] > 0.5  # the model did learn something, so agreement means something


@needs_bench
@pytest.mark.slow
def test_trained_run_predicts_real_files_like_the_export(trained, keras_reference, tmp_path):
    run_dir, images, labels, raw = trained
    folder = tmp_path / "files"
    for i, (name, data) in enumerate(raw[::5]):
        sub = folder / name.split("/")[-2].replace("+", "plus")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}_{Path(name).name}").write_bytes(data)
    clf = load_classifier(run_dir)
    preds = clf.predict(folder, top_k=3)
    assert len(preds) == len(raw[::5]) and all(p.ok for p in preds)
    result = export(run_dir, "tflite", None, tmp_path / "tfl")
    exported = load_classifier(result.path).predict(folder, top_k=3)
    assert [p.labels[0] for p in preds] == [p.labels[0] for p in exported]
    accuracy = np.mean([p.label == Path(p.source).parent.name.replace("plus", "+") for p in preds])
    assert accuracy > 0.5


def zoo_architectures() -> list[str]:
    from mathsym_zoo.plugins import PluginSet

    return [c.name for c in PluginSet().list("architecture")]


@needs_bench
@pytest.mark.slow
@pytest.mark.parametrize("arch", zoo_architectures())
def test_every_zoo_architecture_exports(arch, tmp_path):
    """Each registered architecture (untrained), wrapped as training saves it, converts to
    SavedModel, float32 TFLite and ONNX and matches Keras on real images."""
    from mathsym_zoo.plugins import PluginSet

    comp = PluginSet().get("architecture", arch)
    model = H.wrap(comp.factory(comp.params(), H.INPUT_SHAPE, len(H.BENCH_CLASSES)), H.INPUT_SHAPE)
    run_dir = H.write_run(tmp_path / "run", model, sorted(H.BENCH_CLASSES))
    images = H.bench_images(8, offset=2)[0]
    reference = keras_probs(run_dir, images)
    for fmt in ("saved_model", "tflite", "onnx"):
        result = export(run_dir, fmt, None, tmp_path / fmt)
        tol, _ = TOLERANCE[(fmt, None)]
        np.testing.assert_allclose(reload_probs(result, images), reference, atol=tol, err_msg=f"{arch} {fmt}")


@needs_bench
@pytest.mark.slow
def test_image_bytes_signature_on_real_images(trained, tmp_path):
    """Real CROHME images in every VARIANTS size, mode and format: the SavedModel's in-graph
    preprocessing equals the cache's pixels and its top-1 equals ``predict`` on the same files."""
    run_dir, _, _, raw = trained
    bases = [np.asarray(Image.open(io.BytesIO(data)).convert("L")) for _, data in raw[::15]]
    paths = write_variants(tmp_path / "files", bases, seed=1)
    result = export(run_dir, "saved_model", None, tmp_path / "sm", check=[str(tmp_path / "files")])
    out, pixels = bytes_signatures(result.model_path, paths)
    diff = np.abs(pixels.astype(int) - cache_pixels(paths).astype(int))
    preds = load_classifier(run_dir).predict(paths, top_k=1)
    agreement = np.mean([p.label == lab[0].decode() for p, lab in zip(preds, out["top_k_labels"])])
    print(f"\n[image bytes] {len(paths)} files ({len(bases)} real images x {len(VARIANTS)} sizes/modes): "
          f"pixels max diff {diff.max()}, differing pixels {np.count_nonzero(diff)}, top-1 agreement {agreement:.2%}")
    assert diff.max() <= 1 and agreement == 1.0
    assert result.check["image_bytes"]["top1_agreement"] == 1.0
