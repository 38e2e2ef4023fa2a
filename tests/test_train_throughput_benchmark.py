"""benchmarks/train_throughput.py: it times the network `train` builds, with the shipped optimizer,
leaves the global dtype policy as it found it, and prints its headline last as `name: value`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark_helpers import load_benchmark

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "train_throughput.py"


def test_mixed_model_keeps_a_float32_output_and_the_policy_is_restored():
    import keras

    from mathsym_zoo.registry import resolve

    bench = load_benchmark("train_throughput")
    job = resolve(source="demo")
    model = bench.build(job, "notebook-cnn", "mixed_float16", False, steps=10)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert keras.backend.standardize_dtype(model.output.dtype) == "float32"
    assert model.get_layer("class_prior") is not None  # the layer train adds with undo_class_weights
    assert model.input_shape == (None, 45, 45, 1) and model.output_shape == (None, 82)
    # Mixed precision wraps the shipped [train] optimizer in loss scaling, as `train` does on a GPU.
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert type(model.optimizer.inner_optimizer).__name__ == "AdamW"


def test_jax_skips_configurations_without_xla():
    bench = load_benchmark("train_throughput")
    assert bench.runnable("float32", "jax") and bench.runnable("mixed", "jax")
    assert bench.runnable("float32+xla", "jax") is None
    assert all(bench.runnable(c, "tensorflow") is None for c in bench.CONFIGS)


def test_prints_a_row_per_configuration_and_the_headline_last():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, str(SCRIPT), "--models", "notebook-cnn", "--steps", "2", "--rounds", "1"],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout.splitlines()
    rows = [line for line in out if line.startswith("notebook-cnn ") and "x" in line.split()[-1]]
    assert [r.split()[2] for r in rows] == ["float32", "float32+xla"]
    headline = out[-3:]
    names = [line.rsplit(": ", 1)[0] for line in headline]
    assert names[0].startswith("notebook-cnn images/s (") and names[2] == "notebook-cnn seconds per crohme epoch"
    values = [float(line.rsplit(": ", 1)[1]) for line in headline]
    assert values[0] > 0 and values[1] >= 1.0 and values[2] == pytest.approx(38589 / values[0], rel=0.01)
