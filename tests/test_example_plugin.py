"""The documented example runs as written: examples/plugins/tiny_mlp.py with
examples/registry-tiny.toml (docs/plugins.md, "Registering a new architecture")."""

from __future__ import annotations

import json
from pathlib import Path

from mathsym_zoo.cli import run
from mathsym_zoo.registry import resolve

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "examples" / "registry-tiny.toml"


def test_example_registry_resolves_to_the_local_plugin():
    job = resolve(REGISTRY)
    tiny = job.model("tiny")
    assert tiny.type == "tiny-mlp" and tiny.params.units == 32
    assert tiny.component.plugin == "tiny_mlp"
    assert job.source.type == "demo"
    assert not job.plugins.problems


def test_example_architecture_builds(tmp_path):
    job = resolve(REGISTRY)
    tiny = job.model("tiny")
    model = tiny.component.factory(tiny.params, (45, 45, 1), 82)
    assert model.count_params() == (45 * 45 * 32 + 32) + (32 * 82 + 82)


def test_models_command_lists_the_example(capsys):
    assert run(["models", "--registry", str(REGISTRY), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny-mlp"]["plugin"] == "tiny_mlp" and rows["tiny-mlp"]["defaults"] == {"units": 64}
    assert {"notebook-cnn", "resnet-lite", "mobilenet-head"} <= set(rows)


def test_example_trains_with_the_documented_command(tmp_path, capsys):
    """`mathsym-zoo train tiny --registry examples/registry-tiny.toml`, one epoch on a small demo set."""
    code = run(["train", "tiny", "--registry", str(REGISTRY), "--no-progress",
                "--set", "train.epochs=1", "--set", "sources.demo.images_per_class=6",
                "--set", f"data.cache_dir={json.dumps(str(tmp_path / 'cache'))}",
                "--set", f"train.runs_dir={json.dumps(str(tmp_path / 'runs'))}"])
    assert code == 0, capsys.readouterr()
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "best.keras").is_file()
    info = json.loads((runs[0] / "run.json").read_text())
    assert "tiny-mlp" in json.dumps(info)
