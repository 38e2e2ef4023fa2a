"""Training and run guards: misbehaving architecture plugins, data that cannot train a classifier,
a loss that becomes NaN, bad run folders, checkpoints and model files. Each gives one clear
error and a non-zero exit, never a traceback, and leaves no empty run folder behind."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mathsym_zoo.cli.app import run as cli
from mathsym_zoo.runs import Run

TESTS = Path(__file__).resolve().parent

BAD_ARCHS = textwrap.dedent('''
    from mathsym_zoo import hookimpl
    from mathsym_zoo.components import Params


    class P(Params):
        pass


    def _inputs(shape):
        import keras
        return keras.Input(shape=tuple(shape))


    def raises(params, shape, n):
        raise RuntimeError("weights server unreachable")


    def too_many(params, shape, n):
        import keras
        i = _inputs(shape)
        return keras.Model(i, keras.layers.Dense(n + 7, activation="softmax")(keras.layers.Flatten()(i)))


    def four_d(params, shape, n):
        import keras
        i = _inputs(shape)
        return keras.Model(i, keras.layers.Conv2D(n, 1, activation="softmax")(i))


    def a_string(params, shape, n):
        return "model"


    def logits(params, shape, n):
        import keras
        i = _inputs(shape)
        return keras.Model(i, keras.layers.Dense(n)(keras.layers.Flatten()(i)))


    @hookimpl
    def register_architectures(register):
        for name, f in [("raises", raises), ("too-many", too_many), ("four-d", four_d), ("a-string", a_string),
                        ("logits", logits)]:
            register(name, summary="test-only broken architecture", params=P, factory=f)
''')


def _registry(root: Path, extra: str = "", **train) -> Path:
    settings = {"epochs": 2, "batch_size": 16, "runs_dir": str(root / "runs"), **train}
    root.mkdir(parents=True, exist_ok=True)
    (root / "bad_archs.py").write_text(BAD_ARCHS)
    text = textwrap.dedent(f"""
        plugin_paths = ["bad_archs.py", "{TESTS / 'tiny_arch_plugin.py'}"]
        [data]
        source = "demo"
        cache_dir = "{root / 'cache'}"
        workers = 1
        [sources.demo]
        type = "demo"
        images_per_class = 10
        [[preprocessing]]
        type = "grayscale"
        [[preprocessing]]
        type = "resize_pad"
        size = [16, 16]
    """) + extra + "\n[train]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) + "\n"
    path = root / "registry.toml"
    path.write_text(text)
    return path


def _cli(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = cli([*args, "--no-progress"] if args[0] in ("train", "evaluate") else list(args))
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert "Traceback" not in text
    return code, text


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("guards")


@pytest.mark.parametrize("arch, message", [
    ("raises", "architecture 'raises' of plugin 'bad_archs' failed in its factory: RuntimeError: weights server"),
    ("too-many", "its output has shape (None, 89), expected (None, 82)"),
    ("four-d", "its output has shape (None, 16, 16, 82), expected (None, 82)"),
    ("a-string", "its factory returned str, not a keras.Model"),
    ("logits", "the zoo's loss expects a softmax, not logits"),
])
def test_broken_architectures_are_refused_before_training(root, capsys, arch, message):
    reg = _registry(root)
    code, text = _cli(capsys, "train", arch, "--registry", str(reg))
    assert code == 1 and message in text, text
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())  # no empty run folder left


def _one_class_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for i in range(12):
            buf = io.BytesIO()
            Image.fromarray((np.random.default_rng(i).random((20, 20)) * 255).astype(np.uint8)).save(buf, "PNG")
            z.writestr(f"extracted_images/alpha/a{i}.png", buf.getvalue())
    return path


def test_one_class_is_refused(root, capsys):
    data = _one_class_zip(root / "one.zip")
    reg = _registry(root, extra=f'[sources.one]\ntype = "archive"\npath = "{data}"\n')
    code, text = _cli(capsys, "train", "tiny-test", "--registry", str(reg), "--source", "one")
    assert code == 1 and "the train side holds 1 class (alpha); a classifier needs at least 2" in text


def test_nan_loss_fails_the_run_with_the_reason(root, capsys):
    reg = _registry(root / "nan", optimizer="sgd", learning_rate=1e30, epochs=3)
    code, text = _cli(capsys, "train", "tiny-test", "--registry", str(reg))
    assert code == 1 and "loss became" in text and "at epoch 1 step" in text, text
    (run_dir,) = list((root / "nan" / "runs").iterdir())
    run = Run.open(run_dir)
    assert run.status == "failed" and run.info["failure"].startswith("tiny-test: loss became")
    assert run.history() == []  # the failed epoch is not recorded
    code, text = _cli(capsys, "runs", str(root / "nan" / "runs"))
    assert ": failed: tiny-test: loss became NaN at epoch 1" in text or ": failed: tiny-test: loss became infinite at epoch 1" in text


def test_resume_of_a_folder_that_is_not_a_run(root, capsys):
    (root / "plain").mkdir(exist_ok=True)
    code, text = _cli(capsys, "train", "--resume", str(root / "plain"))
    assert code == 1 and "is not a run folder" in text


@pytest.fixture(scope="module")
def good_run(root):
    reg = _registry(root / "good", epochs=1)
    assert cli(["train", "tiny-test", "--registry", str(reg), "--no-progress"]) == 0
    (run_dir,) = list((root / "good" / "runs").iterdir())
    return reg, Run.open(run_dir)


def test_resume_with_a_junk_checkpoint(good_run, capsys, tmp_path):
    import shutil

    reg, run = good_run
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    Run(copy).checkpoint(Run(copy).read_state()).write_bytes(b"not a zip at all")
    code, text = _cli(capsys, "train", "--resume", str(copy), "--set", "train.epochs=2")
    assert code == 1 and "the resume checkpoint cannot be read" in text
    assert Run(copy).status == "failed"


def test_resume_with_a_missing_checkpoint(good_run, capsys, tmp_path):
    import shutil

    reg, run = good_run
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    for f in Run(copy).state_dir.glob("epoch-*.keras"):
        f.unlink()
    code, text = _cli(capsys, "train", "--resume", str(copy), "--set", "train.epochs=2")
    assert code == 1 and "which is missing; the run cannot resume exactly" in text


def test_random_bytes_as_a_keras_file(good_run, capsys, tmp_path):
    reg, run = good_run
    fake = tmp_path / "model.keras"
    fake.write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "model.json").write_text(json.dumps(run.info))
    img = tmp_path / "x.png"
    Image.new("L", (20, 20), 255).save(img)
    code, text = _cli(capsys, "predict", str(fake), str(img))
    assert code == 1 and "not a Keras model file" in text


def test_evaluate_on_labels_the_model_does_not_know(good_run, capsys, root):
    reg, run = good_run
    data = root / "unknown.zip"
    with zipfile.ZipFile(_one_class_zip(root / "alpha.zip")) as src, zipfile.ZipFile(data, "w") as dst:
        for i, name in enumerate(src.namelist()):
            dst.writestr(f"extracted_images/{'omega' if i % 2 else 'zeta_prime'}/{i}.png", src.read(name))
    reg.write_text(reg.read_text().replace("[train]", f'[sources.unknown]\ntype = "archive"\npath = "{data}"\n\n[train]'))
    code, text = _cli(capsys, "evaluate", str(run.path), "--registry", str(reg), "--source", "unknown", "--side", "all")
    assert code == 1 and "none of the 12 images has a label the model knows" in text and "omega" in text, text
