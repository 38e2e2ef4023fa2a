"""Training jobs: run folders, resume (in-process and after SIGKILL), device plans, multi-worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mathsym_zoo.data.dataset import Dataset
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.registry import TrainConfig, resolve
from mathsym_zoo.runs import Run
from mathsym_zoo.training import DeviceInfo, plan_devices

TESTS = Path(__file__).resolve().parent
PLUGIN = TESTS / "tiny_arch_plugin.py"


def tiny_dataset(path, n=160, size=12, classes=4, seed=0) -> Dataset:
    """Learnable generated images: brightness encodes the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = (rng.random((n, size, size)) * 40 + labels[:, None, None] * 50).astype(np.uint8)
    return Dataset.from_arrays(images, labels, [f"s{c}" for c in range(classes)], path=path, key=f"tiny-{n}-{size}",
                               source={"name": "tiny"}, preprocessing=[{"type": "grayscale"}])


def write_registry(root: Path, **train) -> Path:
    settings = {"epochs": 3, "batch_size": 16, "runs_dir": str(root / "runs"), **train}
    lines = [f'plugin_paths = ["{PLUGIN}"]', "[data]", 'source = "demo"', f'cache_dir = "{root / "cache"}"',
             "[train]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    root.mkdir(parents=True, exist_ok=True)
    path = root / "registry.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_job(root: Path, *overrides: str, **train):
    return resolve(write_registry(root, **train), overrides=overrides)


# -- device plans (detection mocked) -------------------------------------------


@pytest.mark.parametrize("gpus, settings, expected", [
    (0, {}, ("default", ("/cpu:0",), False, False)),
    (1, {}, ("default", ("/gpu:0",), True, True)),
    (2, {}, ("mirrored", ("/gpu:0", "/gpu:1"), True, True)),
    (2, {"device": "cpu"}, ("one-device", ("/cpu:0",), False, False)),
    (2, {"strategy": "one-device"}, ("one-device", ("/gpu:0",), True, True)),
    (1, {"mixed_precision": "off", "xla": "off"}, ("default", ("/gpu:0",), False, False)),
    (0, {"mixed_precision": "on", "xla": "on"}, ("default", ("/cpu:0",), True, True)),
    (0, {"strategy": "mirrored"}, ("mirrored", ("/cpu:0",), False, False)),
])
def test_plan_devices(gpus, settings, expected):
    info = DeviceInfo(gpus=tuple(f"/physical_device:GPU:{i}" for i in range(gpus)), cpus=16)
    plan = plan_devices(TrainConfig(**settings), info)
    assert (plan.strategy, plan.devices, plan.mixed_precision, plan.jit_compile) == expected


def test_plan_devices_errors():
    with pytest.raises(ConfigError, match="no GPU"):
        plan_devices(TrainConfig(device="gpu"), DeviceInfo())
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        plan_devices(TrainConfig(strategy="multi-worker"), DeviceInfo())
    tf_config = json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}})
    assert plan_devices(TrainConfig(strategy="multi-worker"), DeviceInfo(), tf_config).strategy == "multi-worker"


def test_gpu_plan_trains_with_mixed_precision_and_xla(tmp_path, monkeypatch):
    """The GPU path (float16 compute, float32 output, jit_compile) end to end, on the CPU."""
    import keras

    import mathsym_zoo.training.loop as train

    monkeypatch.setattr(train, "detect_devices", lambda: DeviceInfo(gpus=("/physical_device:GPU:0",), cpus=2))
    job = make_job(tmp_path, epochs=1)
    result = train.train_model(job, "tiny-test", dataset=tiny_dataset(tmp_path / "data"))
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["devices"]["mixed_precision"] and info["devices"]["jit_compile"] and info["devices"]["use_gpu"]
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    model = keras.saving.load_model(result.run_dir / "best.keras", safe_mode=True, compile=False)
    assert model.layers[-1].name == "output_float32"
    assert keras.backend.standardize_dtype(model.layers[-1].dtype_policy.compute_dtype) == "float32"
    # Resume restores the loss-scale optimizer's state too.
    resumed = train.resume_run(result.run_dir, job=make_job(tmp_path, epochs=2), dataset=tiny_dataset(tmp_path / "data"))
    assert [r["epoch"] for r in Run(result.run_dir).history()] == [1, 2] and resumed.status == "completed"
    assert type(resumed.model.optimizer).__name__ == "LossScaleOptimizer"
    steps = -(-json.loads((result.run_dir / "run.json").read_text())["split"]["sizes"]["train"] // 16)
    assert int(resumed.model.optimizer.iterations.numpy()) == 2 * steps  # continued, not restarted


# -- run folder and resume -----------------------------------------------------


def test_run_folder_is_complete(tmp_path):
    import keras

    from mathsym_zoo.training import train_model

    ds = tiny_dataset(tmp_path / "data")
    job = make_job(tmp_path, epochs=2, lr_schedule="cosine", class_weights=True, label_smoothing=0.1)
    result = train_model(job, "tiny-test", dataset=ds)
    run = result.run_dir
    assert run.parent == tmp_path / "runs" and run.name.startswith("tiny-test-")
    for name in ("run.json", "history.csv", "best.keras", "last.keras", "metrics.json", "tb", "state/state.json"):
        assert (run / name).exists(), name
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["model"]["type"] == "tiny-test" and info["job"]["train"]["epochs"] == 2
    assert info["split"]["hash"] == result.split_hash and Path(info["split"]["path"]).is_file()
    assert info["class_names"] == list(ds.class_names) and info["input_shape"] == [12, 12, 1]
    assert info["source"] == {"name": "tiny"} and info["preprocessing"] == [{"type": "grayscale"}]
    assert "keras" in info["versions"] and "git_revision" in info
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("val", "test"):
        assert set(metrics[key]) >= {"loss", "accuracy"}
    assert metrics["epochs"] == 2 and metrics["train_seconds"] > 0 and metrics["train_images_per_second"] > 0
    assert [r["epoch"] for r in Run(run).history()] == [1, 2]
    assert list((run / "tb").glob("*/events.out.tfevents.*"))
    # Saved models take raw 0-255 images.
    model = keras.saving.load_model(run / "best.keras", safe_mode=True)
    probs = model.predict(ds.images[:3].astype("float32"), verbose=0)
    assert probs.shape == (3, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_resume_continues_like_an_uninterrupted_run(tmp_path):
    from mathsym_zoo.training import resume_run, train_model

    ds = tiny_dataset(tmp_path / "data")
    full = train_model(make_job(tmp_path / "a", epochs=4, early_stopping_patience=0), "tiny-test", dataset=ds)
    first = train_model(make_job(tmp_path / "b", epochs=2, early_stopping_patience=0), "tiny-test", dataset=ds)
    resumed = resume_run(first.run_dir, job=make_job(tmp_path / "b", epochs=4, early_stopping_patience=0),
                         dataset=ds)
    assert resumed.run_dir == first.run_dir
    assert [r["epoch"] for r in Run(first.run_dir).history()] == [1, 2, 3, 4]
    assert json.loads((first.run_dir / "run.json").read_text())["resumed"] == 1
    # Same split, weights, optimizer state and shuffle order: the same losses.
    a = [r["loss"] for r in full.history]
    b = [r["loss"] for r in resumed.history]
    assert np.allclose(a, b, rtol=1e-4), (a, b)
    for wa, wb in zip(full.model.get_weights(), resumed.model.get_weights()):
        assert np.allclose(wa, wb, rtol=1e-4, atol=1e-6)


def test_errors_name_the_fix(tmp_path):
    from mathsym_zoo.training import train_model

    ds = tiny_dataset(tmp_path / "data")
    with pytest.raises(ConfigError, match="not found; pass a run folder"):
        train_model(make_job(tmp_path), "tiny-test", run_dir=tmp_path / "nowhere", resume=True, dataset=ds)
    with pytest.raises(ConfigError, match="unknown architecture"):
        train_model(make_job(tmp_path), "tiny-tset", dataset=ds)


def test_rich_progress_on_a_terminal_and_plain_lines_otherwise(tmp_path, capsys):
    import io

    from rich.console import Console

    from mathsym_zoo.training import train_model

    ds = tiny_dataset(tmp_path / "data")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    from mathsym_zoo.cli.progress import training_display

    job = make_job(tmp_path / "live", epochs=2)
    train_model(job, "tiny-test", dataset=ds, callbacks=training_display(console, live=True, batch_size=16, epochs=2))
    text = buf.getvalue()
    assert "img/s" in text and "val_accuracy" in text  # the live bar, then one line per epoch
    plain = io.StringIO()
    quiet = Console(file=plain, force_terminal=False)
    train_model(make_job(tmp_path / "plain", epochs=2), "tiny-test", dataset=ds,
                callbacks=training_display(quiet, live=False, batch_size=16, epochs=2))
    lines = [line for line in plain.getvalue().splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "\x1b[" not in plain.getvalue()


def test_train_command_and_resume_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import mathsym_zoo.data.cache as cache
    from mathsym_zoo.cli import app

    ds = tiny_dataset(tmp_path / "data")
    monkeypatch.setattr(cache, "load_dataset", lambda job, progress=True: ds)
    registry = write_registry(tmp_path, epochs=1)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "tiny-test", "--registry", str(registry), "--set", "train.batch_size=32",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["job"]["train"]["batch_size"] == 32
    # Resuming a finished run re-resolves its recorded job and only re-evaluates.
    again = runner.invoke(app, ["train", "--resume", str(run_dir), "--no-progress"])
    assert again.exit_code == 0, again.output
    assert "already finished" in again.output
    assert [r["epoch"] for r in Run(run_dir).history()] == [1]
    bad = runner.invoke(app, ["train", "--resume", str(run_dir), "tiny-test"])
    assert bad.exit_code != 0
