"""The model card: written when a run finishes, refreshed by evaluate, fields and recipe checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mathsym_zoo import model_card as MC
from mathsym_zoo.registry import recipe_diff
from mathsym_zoo.runs import Run
from test_train import make_job, tiny_dataset

FIELDS = {"format", "written", "run", "status", "created", "finished", "model", "data", "classes", "training", "scores", "test", "speed",
          "hardware", "intended_use", "limits"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run with three [train] settings off their defaults (and runs_dir, which is not recipe)."""
    from mathsym_zoo.training import train_model

    root = tmp_path_factory.mktemp("card")
    ds = tiny_dataset(root / "data")
    result = train_model(make_job(root, epochs=2, batch_size=16, learning_rate=0.003), "tiny-test", dataset=ds)
    return result, ds


def test_training_writes_the_card(trained):
    result, ds = trained
    run = result.run
    card = json.loads((run.path / "model_card.json").read_text())
    assert set(card) == FIELDS and card == run.model_card()
    assert card["status"] == "completed" and card["run"] == str(run.path)
    m = card["model"]
    assert m["architecture"] == "tiny-test" and m["hyperparameters"] == {"width": 4, "dropout": 0.0}
    assert m["parameters"] == result.model.count_params() and m["macs"] > 0 and m["num_classes"] == 4
    assert card["data"]["split_hash"] == run.split_hash and card["data"]["dataset_key"] == ds.key
    # Class list with counts per side, adding up to the split's sizes.
    sizes = run.info["split"]["sizes"]
    assert [c["name"] for c in card["classes"]] == list(ds.class_names)
    for side in ("train", "val", "test"):
        assert sum(c[side] for c in card["classes"]) == sizes[side]
    # Before any evaluation: train's own test score, with an interval, and no calibration yet.
    assert card["test"]["from"] == "training" and card["test"]["n"] == sizes["test"]
    lo, hi = card["test"]["top1_ci95"]
    assert lo <= card["test"]["top1"] <= hi
    assert card["speed"] is None and card["hardware"]["training_machine"]["cpu"]
    assert card["hardware"]["versions"]["keras"]
    # What an export copies: the card of the run, also when the run is opened by its best.keras.
    names = [p.name for p in Run.open(run.best_path).model_card_files()]
    assert names == ["MODEL_CARD.md", "model_card.json"] == [p.name for p in run.model_card_files()]


def test_recipe_lists_exactly_the_settings_off_their_defaults(trained):
    result, _ = trained
    card = result.run.model_card()
    assert card["training"]["recipe_differs"] == {"epochs": {"value": 2, "default": 10},
                                                  "batch_size": {"value": 16, "default": 64},
                                                  "learning_rate": {"value": 0.003, "default": 0.001}}
    text = result.run.model_card_path.read_text()
    assert "| `train.learning_rate` | 0.003 | 0.001 |" in text and "train.runs_dir" not in text
    assert recipe_diff({"epochs": 10, "optimizer": "sgd", "runs_dir": "elsewhere"}) == {
        "optimizer": {"value": "sgd", "default": "adam"}}


def test_evaluate_refreshes_the_card_with_calibration_and_speed(trained, monkeypatch):
    import mathsym_zoo.data.cache as cache
    from mathsym_zoo import api

    result, ds = trained
    monkeypatch.setattr(cache, "load_dataset", lambda job, progress=False: ds)
    evaluation, _ = api.evaluate(result.run, side="test", report=False)
    card = result.run.model_card()
    test = card["test"]
    assert test["from"] == "evaluate" and test["n"] == evaluation.metrics["n"]
    assert test["ece"] == pytest.approx(evaluation.metrics["ece"]) and test["nll"] == pytest.approx(evaluation.metrics["nll"])
    assert card["speed"]["latency_ms_p50"] == evaluation.timing["latency_ms_p50"] and card["speed"]["measured_on"]
    # Kept from the card written at the end of training.
    assert card["classes"] and card["hardware"]["training_machine"]
    assert [s["from"] for s in card["scores"]] == ["evaluate"]
    text = result.run.model_card_path.read_text()
    for heading in ("## Model", "## Data", "## Training recipe", "## Scores", "## Calibration", "## Speed",
                    "## Hardware and versions", "## Intended use", "## Known limits", "## Classes"):
        assert heading in text
    assert f"expected calibration error **{100 * test['ece']:.1f}%**" in text
    assert "photos or scans of paper need other preprocessing" in text


def test_markdown_cells_keep_pipes_and_names_from_breaking_tables():
    from mathsym_zoo.templating import markdown_cell

    assert markdown_cell("ascii|124") == "ascii\\|124" and markdown_cell(None) == "-"
    assert markdown_cell("two\nlines") == "two lines"


def test_class_counts_per_side():
    class Split:
        indices = {"train": np.array([0, 1, 2, 3]), "val": np.array([4]), "test": np.array([5, 6])}

    counts = MC.class_counts(["a", "b|c"], np.array([0, 0, 1, 1, 1, 0, 1]), Split())
    assert counts == [{"name": "a", "latex": "a", "train": 2, "val": 0, "test": 1},
                      {"name": "b|c", "latex": "b|c", "train": 2, "val": 1, "test": 1}]


def test_a_card_that_cannot_be_built_never_fails_training(trained, monkeypatch):
    result, _ = trained

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(MC, "build_card", broken)
    lines = []
    assert MC.write_model_card(result.run, log=lines.append) is None
    assert lines and "model card not written (KeyError" in lines[0]
    with pytest.warns(UserWarning, match="model card not written"):
        MC.write_model_card(result.run)
    # A bare .keras file has no run folder to hold a card.
    assert MC.write_model_card(Run.open(result.run.best_path)) is None


def test_an_export_carries_the_card(trained, tmp_path):
    from mathsym_zoo.export import export

    result, _ = trained
    out = tmp_path / "exported"
    export(result.run_dir, "tflite", None, out)
    card = (out / "MODEL_CARD.md").read_text()
    assert card == (result.run_dir / "MODEL_CARD.md").read_text() and (out / "model_card.json").is_file()
