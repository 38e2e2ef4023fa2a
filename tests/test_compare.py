"""compare(): results files, resume, McNemar in the leaderboard; evaluate with mismatched labels.

Tiny data (Dataset.from_arrays) and a tiny architecture registered in-process.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from markupsafe import escape

from mathsym_zoo import hookimpl
from mathsym_zoo import compare as C
from mathsym_zoo.components import Params
from mathsym_zoo.data.dataset import Dataset
from mathsym_zoo.evaluate import Evaluation, evaluate_model, load_model, map_labels
from mathsym_zoo.plugins import PluginSet
from mathsym_zoo.registry import resolve
from mathsym_zoo.runs import Run
from mathsym_zoo import metrics as M


class _WideParams(Params):
    width: int = 4


def _build(params, input_shape, num_classes):
    import keras

    return keras.Sequential([keras.Input(shape=tuple(input_shape)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(params.width, 3, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(num_classes, activation="softmax")], name="cmp_tiny")


class TinyPlugin:
    @hookimpl
    def register_architectures(self, register):
        register("cmp-tiny", summary="test-only tiny CNN", params=_WideParams, factory=_build)


CLASSES = ["a", "b", "c"]


def _images(labels, rng, size=12):
    """Class k: a bright vertical bar at column block k, plus noise."""
    imgs = (rng.random((len(labels), size, size, 1)) * 60).astype(np.uint8)
    for i, lab in enumerate(labels):
        imgs[i, :, 4 * lab:4 * lab + 3] = 230
    return imgs


def make_dataset(path, classes=CLASSES, per_class=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(classes)), per_class)
    return Dataset.from_arrays(_images(labels, rng), labels, classes, path=path, key=f"test-{seed}",
                               source={"describe": "synthetic bars", "fingerprint": "f" * 64})


def make_job(tmp_path):
    plugins = PluginSet(entry_points=True)
    plugins.register(TinyPlugin(), name="cmp-tiny-plugin")
    raw = {"data": {"source": "demo", "cache_dir": str(tmp_path / "cache")}, "preprocessing": [],
           "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0},
           "models": {"tiny-2": {"type": "cmp-tiny", "width": 2}, "tiny-6": {"type": "cmp-tiny", "width": 6}},
           "train": {"epochs": 2, "batch_size": 16, "learning_rate": 0.01, "early_stopping_patience": 0,
                     "runs_dir": str(tmp_path / "runs"), "comparisons_dir": str(tmp_path / "comparisons")}}
    return resolve(tmp_path / "registry.toml", raw=raw, plugins=plugins)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    job = make_job(tmp)
    ds = make_dataset(tmp / "ds")
    result = C.compare(job, dataset=ds, latency_repeats=3)
    from mathsym_zoo.report import write_comparison_report

    write_comparison_report(result)
    return job, ds, result


def test_results_files_schema(compared):
    job, ds, result = compared
    assert result.path.parent == job.comparisons_dir and result.path.name.startswith("demo-")
    data = json.loads(result.results_json.read_text())
    manifest = json.loads((result.path / C.MANIFEST).read_text())
    assert data["status"] == "finished" and data["split_hash"] == manifest["split_hash"]
    assert data["models"] == ["tiny-2", "tiny-6"] and data["best"] in data["models"]
    rows = data["rows"]
    assert [r["rank"] for r in rows] == [1, 2] and sum(r["is_best"] for r in rows) == 1
    for r in rows:
        for key in ("top1", "top5", "macro_f1", "balanced_accuracy", "top1_ci95_low", "top1_ci95_high", "params",
                    "train_time_s", "train_images_per_s", "latency_ms_p50", "latency_ms_p95",
                    "batch_images_per_s", "split_hash", "source", "source_fingerprint", "nll", "ece", "num_classes"):
            assert r.get(key) is not None, key
        assert r["top1_ci95_low"] <= r["top1"] <= r["top1_ci95_high"]
        saved = json.loads((result.path / "runs" / r["model"] / "evaluations" / "demo-test" / "evaluation.json").read_text())
        assert r["n_test"] == saved["metrics"]["n"] == 12  # 20% of 60
    other = next(r for r in rows if not r["is_best"])
    assert other["mcnemar_method"] in ("exact", "chi2-cc") and 0 <= other["mcnemar_p"] <= 1
    assert isinstance(other["significant_vs_best"], bool)

    with open(result.results_csv, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == C.CSV_COLUMNS
        csv_rows = list(reader)
    assert [r["model"] for r in csv_rows] == [r["model"] for r in rows]
    assert {r["split_hash"] for r in csv_rows} == {manifest["split_hash"]}
    assert {r["source"] for r in csv_rows} == {"demo (describe=synthetic bars)"}
    report = result.report_path.read_text()
    assert '<table id="leaderboard-table">' in report and str(escape(data["verdict"])) in report
    assert isinstance(data["clear_best"], bool)
    for name in ("tiny-2", "tiny-6"):
        run = result.path / "runs" / name
        assert C.run_status(run) == "finished" and (run / "evaluations" / "demo-test" / "predictions.npz").is_file()
        # The model card carries the comparison's test evaluation.
        card = Run(run).model_card()
        assert card["test"]["from"] == "evaluate" and card["test"]["n"] == 12 and card["test"]["ece"] is not None


def test_resume_skips_finished_models(compared, monkeypatch):
    job, ds, result = compared
    calls = []
    import mathsym_zoo.training as T

    monkeypatch.setattr(T, "train_model", lambda *a, **k: calls.append((a, k)))
    again = C.compare(job, dataset=ds, resume=result.path, latency_repeats=3)
    assert calls == [] and again.skipped == ["tiny-2", "tiny-6"]
    assert [r["model"] for r in again.rows] == [r["model"] for r in result.rows]


def test_resume_continues_an_interrupted_model(compared, monkeypatch, tmp_path):
    job, ds, result = compared
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(result.path, folder)
    run_json = folder / "runs" / "tiny-6" / "run.json"
    info = json.loads(run_json.read_text())
    info["status"] = "interrupted"
    run_json.write_text(json.dumps(info))
    calls = []

    def fake_train(job_, name, *, run_dir, resume, **kw):
        calls.append((name, resume))
        info["status"] = "completed"
        run_json.write_text(json.dumps(info))
        return type("Result", (), {"summary_line": lambda self: f"{name}: completed"})()

    import mathsym_zoo.training as T

    monkeypatch.setattr(T, "train_model", fake_train)
    again = C.compare(job, dataset=ds, resume=folder, latency_repeats=3)
    assert calls == [("tiny-6", True)]
    assert again.skipped == ["tiny-2"] and len(again.rows) == 2


def test_resume_refuses_other_split(compared, tmp_path):
    job, ds, result = compared
    other = make_dataset(tmp_path / "other", seed=1)
    with pytest.raises(Exception, match="cannot resume"):
        C.compare(job, dataset=other, resume=result.path)


def test_resume_refuses_other_training_settings(compared, tmp_path):
    import dataclasses

    job, ds, result = compared
    changed = dataclasses.replace(job, train=job.train.model_copy(update={"epochs": 5}))
    with pytest.raises(Exception, match="train.epochs"):
        C.compare(changed, dataset=ds, resume=result.path)


def test_resume_without_a_comparison_says_so(tmp_path):
    job = make_job(tmp_path)
    with pytest.raises(Exception, match="no comparison to resume"):
        C.compare(job, dataset=make_dataset(tmp_path / "ds"), resume=True)


def test_new_comparison_refuses_existing_folder(compared):
    job, ds, result = compared
    with pytest.raises(Exception, match="already holds a comparison"):
        C.compare(job, dataset=ds, out_dir=result.path)


def test_evaluate_with_mismatched_labels(compared, tmp_path):
    """Model classes a, b, c; dataset classes a, b, zeta: zeta is reported and left out."""
    job, ds, result = compared
    loaded = load_model(result.path / "runs" / "tiny-6")
    assert loaded.class_names == ("a", "b", "c") and loaded.name == "tiny-6"
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 10)  # 0=a, 1=b, 2=zeta
    images = _images(np.array([0] * 10 + [1] * 10 + [2] * 10), rng)
    other = Dataset.from_arrays(images, labels, ["a", "b", "zeta"], path=tmp_path)
    ev = evaluate_model(loaded, other, np.arange(30), side="all", latency_repeats=2)
    assert ev.missing == {"zeta": 10}
    assert ev.metrics["n"] == 20 and len(ev.indices) == 20 and set(ev.y_true.tolist()) == {0, 1}
    assert ev.class_names == ("a", "b", "c") and any("zeta" in n for n in ev.notes)
    ev.save(tmp_path / "ev")
    back = Evaluation.load(tmp_path / "ev")
    assert back.missing == {"zeta": 10} and np.array_equal(back.probs, ev.probs)


def test_map_labels():
    mapped, known, missing = map_labels(["x", "a", "b"], ["a", "b", "c"], np.array([0, 1, 2, 0, 2]))
    assert mapped.tolist() == [-1, 0, 1, -1, 1] and known.tolist() == [False, True, True, False, True]
    assert missing == {"x": 2}


def _fake_eval(name, correct, n_classes=2):
    y = np.zeros(len(correct), dtype=np.int64)
    probs = np.zeros((len(correct), n_classes), np.float32)
    probs[np.arange(len(correct)), np.where(correct, 0, 1)] = 1
    return Evaluation(name, "test", ("p", "q"), np.arange(len(correct)), y, probs, {}, M.summarize(y, probs, ["p", "q"]),
                      {"batch_images_per_s": 1.0, "latency_ms_p50": 1.0, "latency_ms_p95": 2.0})


def test_leaderboard_mcnemar_against_best():
    n = 100
    best = np.ones(n, bool)
    best[:5] = False  # 95 right
    close = best.copy()
    close[5:8] = False  # 92 right: b=3, c=0 -> exact p=0.25
    far = best.copy()
    far[5:40] = False  # 60 right: b=35, c=0 -> chi2
    rows = C.leaderboard({"far": _fake_eval("far", far), "best": _fake_eval("best", best),
                          "close": _fake_eval("close", close)}, {})
    assert [r["model"] for r in rows] == ["best", "close", "far"]
    assert rows[0]["is_best"] and rows[0]["significant_vs_best"] is None
    assert rows[1]["mcnemar_method"] == "exact" and rows[1]["mcnemar_p"] == pytest.approx(0.25)
    assert rows[1]["significant_vs_best"] is False
    assert rows[2]["mcnemar_method"] == "chi2-cc" and rows[2]["significant_vs_best"] is True


# -- command line --------------------------------------------------------------


@pytest.mark.parametrize("argv, models, resume", [
    (["a", "b"], ["a", "b"], None),
    (["a", "--resume"], ["a"], "latest"),
    (["--resume", "a", "b"], ["a", "b"], "latest"),  # a model name is not a folder
    (["--resume", "--no-progress"], None, "latest"),
    (["--resume", "/some/where", "a"], ["a"], "/some/where"),
    (["a", "--resume=/some/where"], ["a"], "/some/where"),
])
def test_compare_resume_option(argv, models, resume):
    from typer.main import get_command

    from mathsym_zoo.cli import app
    from mathsym_zoo.cli.compare import RESUME_LATEST

    cmd = get_command(app).commands["compare"]
    ctx = cmd.make_context("compare", list(argv))
    assert (ctx.params["models"] or None) == models
    assert ctx.params["resume"] == (RESUME_LATEST if resume == "latest" else resume)


PLUGIN_FILE = '''
from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params


class P(Params):
    width: int = 4


def build(params, input_shape, num_classes):
    import keras

    return keras.Sequential([keras.Input(shape=tuple(input_shape)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(params.width, 3, strides=2, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(num_classes, activation="softmax")])


@hookimpl
def register_architectures(register):
    register("cli-tiny", summary="test-only", params=P, factory=build)
'''


@pytest.mark.slow
def test_compare_and_evaluate_commands_end_to_end(tmp_path, capsys):
    """`mathsym-zoo compare` on a small demo source, then `--resume`, then `evaluate`."""
    from mathsym_zoo.cli import run

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "cli_tiny.py").write_text(PLUGIN_FILE)
    (tmp_path / "registry.toml").write_text('''
plugin_paths = ["plugins"]
[data]
source = "demo"
cache_dir = "cache"
workers = 1
[sources.demo]
type = "demo"
images_per_class = 6
[[preprocessing]]
type = "grayscale"
[[preprocessing]]
type = "resize_pad"
size = [24, 24]
[split]
train = 0.6
val = 0.2
test = 0.2
[models.small]
type = "cli-tiny"
[models.wide]
type = "cli-tiny"
width = 8
[train]
epochs = 1
batch_size = 32
''')
    reg = str(tmp_path / "registry.toml")
    out = tmp_path / "cmp"
    assert run(["compare", "--registry", reg, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "small" in printed and "wide" in printed and str(out / "report.html") in printed.replace("\n", "")
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(r["model"] for r in rows) == ["small", "wide"]

    assert run(["compare", "--registry", reg, "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "not trained again: small, wide" in capsys.readouterr().out

    assert run(["evaluate", str(out / "runs" / "small"), "--registry", reg, "--side", "all", "--no-progress"]) == 0
    folder = out / "runs" / "small" / "evaluations" / "demo-all"
    assert (folder / "report.html").is_file() and (folder / "evaluation.json").is_file()
    assert "the scores are optimistic" in capsys.readouterr().out
    # evaluate refreshed the run's model card: the comparison's test score and this one.
    card = Run(out / "runs" / "small").model_card()
    assert sorted((s["source"], s["side"], s["from"]) for s in card["scores"]) == [
        ("demo", "all", "evaluate"), ("demo", "test", "evaluate")]
    assert card["test"]["side"] == "test" and card["classes"]
