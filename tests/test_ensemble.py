"""Seed ensembles: `compare --seeds N` reports each model's seeds averaged, and `mathsym-zoo ensemble`
saves that mean as one model in a run folder; members that would not average cleanly are refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mathsym_zoo import compare as C
from mathsym_zoo.ensemble import build_ensemble, member_runs
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.evaluate import Evaluation, evaluate_model, load_model
from mathsym_zoo.runs import Run
from test_compare import make_dataset, make_job  # the tiny comparison set-up (bars, two widths)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble")
    job, ds = make_job(tmp), make_dataset(tmp / "ds")
    result = C.compare(job, dataset=ds, seeds=2, latency_repeats=3)
    return tmp, ds, result


def _member_evaluations(result, model):
    return [Evaluation.load(result.path / "runs" / model / f"seed-{k}" / "evaluations" / "demo-test") for k in (0, 1)]


def test_compare_reports_each_models_seeds_averaged(seeds):
    tmp, ds, result = seeds
    saved = json.loads(result.results_json.read_text())["seed_ensembles"]
    assert set(saved) == set(result.ensembles) == {"tiny-2", "tiny-6"}
    for model, scores in result.ensembles.items():
        evals = _member_evaluations(result, model)
        mean = np.mean([e.probs for e in evals], axis=0)  # same test rows, same order in every seed
        assert scores["members"] == 2 and scores["n_test"] == len(evals[0].indices)
        assert scores["top1"] == pytest.approx(float(np.mean(mean.argmax(1) == evals[0].y_true)))
        assert saved[model]["balanced_accuracy"] == pytest.approx(scores["balanced_accuracy"])
    from mathsym_zoo.report import write_comparison_report

    html = write_comparison_report(result).read_text()
    assert "tiny-6, its 2 seeds averaged" in html and f"ensemble {result.path}" in html


def test_the_ensemble_run_predicts_the_mean_of_its_members(seeds):
    tmp, ds, result = seeds
    run = build_ensemble(member_runs([result.path], model="tiny-6"), tmp / "ens-6")
    evals = _member_evaluations(result, "tiny-6")
    got = evaluate_model(load_model(run), ds, evals[0].indices, latency_repeats=2)
    np.testing.assert_allclose(got.probs, np.mean([e.probs for e in evals], axis=0), atol=1e-5)
    assert got.metrics["top1"] == pytest.approx(result.ensembles["tiny-6"]["top1"])
    assert got.model_name == "tiny-6-ensemble2"


def test_the_ensemble_run_records_its_members_and_split(seeds):
    tmp, ds, result = seeds
    members = member_runs([result.path / "runs" / "tiny-2" / "seed-1", result.path / "runs" / "tiny-2" / "seed-0"])
    run = Run.open(build_ensemble(members, tmp / "ens-2").path)
    assert run.finished and run.status == "completed"
    assert run.split_hash == members[0].split_hash == result.manifest["split_hash"]
    assert run.class_names == members[0].class_names and run.architecture == "cmp-tiny"
    recorded = run.info["ensemble"]["members"]
    assert [m["path"] for m in recorded] == [str(m.path.resolve()) for m in members]
    assert [m["seed"] for m in recorded] == [1, 0]
    assert run.metrics()["train_seconds"] == pytest.approx(sum(m.metrics()["train_seconds"] for m in members))
    assert (run.path / "MODEL_CARD.md").is_file()


def _copy_run(src, dst, **changes):
    shutil.copytree(src, dst)
    info = json.loads((dst / "run.json").read_text())
    for key, value in changes.items():
        info[key] = value(info) if callable(value) else value
    (dst / "run.json").write_text(json.dumps(info))
    return dst


def test_an_ensemble_with_a_member_trained_on_val_is_not_scored_on_val(seeds, tmp_path):
    """One member fitted the val side (train_on_val): so did the ensemble, whatever the others did
    (`evaluate --side val` refuses a run whose fit_sides hold val: tests/test_train_settings.py)."""
    tmp, ds, result = seeds
    runs = result.path / "runs" / "tiny-2"
    on_val = _copy_run(runs / "seed-1", tmp_path / "on-val", job=lambda i: {
        **i["job"], "train": {**i["job"]["train"], "train_on_val": True}})
    ens = Run.open(build_ensemble(member_runs([runs / "seed-0", on_val]), tmp_path / "ens").path)
    assert Run.open(runs / "seed-0").fit_sides == ("train",)
    assert ens.fit_sides == ("train", "val") and ens.metrics()["fit_sides"] == ["train", "val"]
    assert ens.summary()["best_val_top1"] is None


@pytest.mark.parametrize("change, says", [
    ({"split": lambda i: {**i["split"], "hash": "0" * 64}}, "split differ"),
    ({"class_names": lambda i: i["class_names"][::-1]}, "classes differ"),
    ({"input_shape": [24, 24, 1]}, "input shape differ"),
    ({"status": "running"}, "only finished runs"),
])
def test_members_that_would_not_average_cleanly_are_refused(seeds, tmp_path, change, says):
    tmp, ds, result = seeds
    runs = result.path / "runs" / "tiny-2"
    odd = _copy_run(runs / "seed-1", tmp_path / "odd", **change)
    with pytest.raises(ConfigError, match=says):
        build_ensemble(member_runs([runs / "seed-0", odd]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_which_runs_is_said_clearly(seeds):
    tmp, ds, result = seeds
    with pytest.raises(ConfigError, match="several models.*--model.*tiny-2, tiny-6"):
        member_runs([result.path])
    with pytest.raises(ConfigError, match="at least 2"):
        member_runs([result.path / "runs" / "tiny-2" / "seed-0"])
    with pytest.raises(ConfigError, match="named twice"):
        member_runs([result.path / "runs" / "tiny-2" / "seed-0"] * 2)


def test_an_ensemble_run_is_named_by_its_members(seeds, tmp_path):
    """Two ensembles average as all their members (each counted once), not as a mean of means."""
    tmp, ds, result = seeds
    runs = lambda model: [result.path / "runs" / model / f"seed-{k}" for k in (0, 1)]  # noqa: E731
    first = build_ensemble(member_runs(runs("tiny-2")), tmp_path / "ens-a")
    assert [r.path.resolve() for r in member_runs([first.path, runs("tiny-6")[0]])] == [
        p.resolve() for p in runs("tiny-2") + runs("tiny-6")[:1]]
    with pytest.raises(ConfigError, match="named twice"):
        member_runs([first.path, runs("tiny-2")[1]])


def test_ensemble_command(seeds, tmp_path, capsys):
    from mathsym_zoo.cli import run

    tmp, ds, result = seeds
    out = tmp_path / "cli-ens"
    assert run(["ensemble", str(result.path), "--model", "tiny-2", "--out", str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "averaging 2 runs" in said and f"mathsym-zoo evaluate {out}" in said
    assert Run.open(out).finished
    assert run(["ensemble", str(result.path)]) != 0  # two models, no --model
    assert "--model" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("fmt", ["saved_model", "tflite", "onnx"])
def test_the_ensemble_run_exports_like_any_run(seeds, tmp_path, fmt):
    from mathsym_zoo.export import export
    from test_export import reload_probs

    tmp, ds, result = seeds
    run = build_ensemble(member_runs([result.path], model="tiny-2"), tmp_path / "ens")
    batch = np.asarray(ds.images[:16])
    reference = load_model(run).model.predict(batch.astype(np.float32), verbose=0)
    exported = export(run.path, fmt, None, tmp_path / fmt, check=batch)
    np.testing.assert_allclose(reload_probs(exported, batch), reference, atol=1e-4)


# -- train.ensemble = N: `train` itself trains the seeds and averages them --------------------------


def _ensemble_job(tmp, n=2, **train):
    import dataclasses

    job = make_job(tmp)
    return dataclasses.replace(job, train=job.train.model_copy(update={"ensemble": n, **train}))


def test_members_get_seeds_that_never_overlap_between_ensembles(tmp_path):
    from mathsym_zoo.training.seed_ensemble import member_job

    seeds = {s: [member_job(_ensemble_job(tmp_path, 3, seed=s), k).train.seed for k in range(3)] for s in (0, 1, 2)}
    assert seeds == {0: [0, 1, 2], 1: [3, 4, 5], 2: [6, 7, 8]}
    assert member_job(_ensemble_job(tmp_path, 3), 1).train.ensemble == 1


@pytest.fixture(scope="module")
def trained_ensemble(seeds):
    from mathsym_zoo.training import train_model

    tmp, ds, result = seeds
    lines: list[str] = []
    out = train_model(_ensemble_job(tmp / "train-ens"), "tiny-6", run_dir=tmp / "train-ens" / "run", dataset=ds,
                      log=lines.append)
    return out, lines


def test_train_with_ensemble_averages_the_seeds_compare_trains(seeds, trained_ensemble):
    tmp, ds, result = seeds
    out, _ = trained_ensemble
    run = Run.open(out.run_dir)
    assert run.finished and run.model_name == "tiny-6-ensemble2" and out.status == "completed"
    assert [m["seed"] for m in run.info["ensemble"]["members"]] == [0, 1]
    assert run.info["job"]["train"]["ensemble"] == 2 and run.info["ensemble"]["model"] == "tiny-6"
    assert sorted(p.name for p in (run.path / "members").iterdir()) == ["seed-0", "seed-1"]
    # seed 0 with ensemble = 2 trains exactly the runs of `compare --seeds 2`: the same average
    evals = _member_evaluations(result, "tiny-6")
    got = evaluate_model(load_model(run), ds, evals[0].indices, latency_repeats=2)
    np.testing.assert_allclose(got.probs, np.mean([e.probs for e in evals], axis=0), atol=1e-5)
    assert out.metrics["test"]["accuracy"] == pytest.approx(got.metrics["top1"])
    assert out.metrics["val"]["images"] > 0 and out.epochs == 2
    assert out.metrics["train_seconds"] == pytest.approx(
        sum(Run.open(run.path / "members" / f"seed-{k}").metrics()["train_seconds"] for k in (0, 1)))


def test_an_interrupted_ensemble_resumes_its_missing_members(seeds, trained_ensemble, tmp_path):
    from mathsym_zoo.training import resume_run

    tmp, ds, _ = seeds
    out, _ = trained_ensemble
    folder = tmp_path / "resumed"
    shutil.copytree(out.run_dir, folder)
    shutil.rmtree(folder / "members" / "seed-1")
    (folder / "best.keras").unlink()
    info = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    lines: list[str] = []
    again = resume_run(folder, job=_ensemble_job(tmp / "train-ens"), dataset=ds, log=lines.append)
    assert any("member 1/2 (seed 0): finished earlier, kept" in line for line in lines)
    assert any("member 2/2 (seed 1): training" in line for line in lines)
    assert Run.open(folder).finished
    assert again.metrics["test"]["accuracy"] == pytest.approx(out.metrics["test"]["accuracy"])


def test_resume_refuses_an_ensemble_built_from_other_runs(seeds, tmp_path):
    from mathsym_zoo.training import resume_run

    tmp, ds, result = seeds
    run = build_ensemble(member_runs([result.path], model="tiny-2"), tmp_path / "built")
    with pytest.raises(ConfigError, match="built by `mathsym-zoo ensemble`"):
        resume_run(run.path, dataset=ds)


def test_ensemble_with_multi_worker_training_is_refused(tmp_path):
    from mathsym_zoo.registry import TrainConfig

    with pytest.raises(ValueError, match="one after another"):
        TrainConfig(ensemble=2, strategy="multi-worker")


def test_compare_trains_and_scores_ensembles_when_the_recipe_asks(tmp_path):
    job = _ensemble_job(tmp_path).with_models(["tiny-2"])
    ds = make_dataset(tmp_path / "ds")
    result = C.compare(job, dataset=ds, latency_repeats=2)
    run = Run.open(result.path / "runs" / "tiny-2")
    assert run.finished and run.model_name == "tiny-2-ensemble2"
    assert sorted(p.name for p in (run.path / "members").iterdir()) == ["seed-0", "seed-1"]
    row = json.loads(result.results_json.read_text())["rows"][0]
    assert row["top1"] == pytest.approx(run.metrics()["test"]["accuracy"])
