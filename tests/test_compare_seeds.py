"""compare --seeds: each model trained with several seeds on one split, scores as mean ± sd and min-max,
McNemar per seed summarised; files, report and terminal table. Tiny data, tiny model, 2 seeds."""

from __future__ import annotations

import csv
import json
import statistics

import numpy as np
import pytest

from mathsym_zoo import compare as C
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.seeds import SPREAD_CSV_COLUMNS, spread
from test_compare import make_dataset, make_job  # the tiny comparison set-up (bars, two widths)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    job, ds = make_job(tmp), make_dataset(tmp / "ds")
    result = C.compare(job, dataset=ds, seeds=2, latency_repeats=3)
    from mathsym_zoo.report import write_comparison_report

    write_comparison_report(result)
    return job, ds, result


def test_each_model_trains_once_per_seed_on_the_same_split(two_seeds):
    job, ds, result = two_seeds
    assert result.seeds == 2
    for model in ("tiny-2", "tiny-6"):
        infos = [json.loads((result.path / "runs" / model / f"seed-{k}" / "run.json").read_text()) for k in (0, 1)]
        assert [i["job"]["train"]["seed"] for i in infos] == [0, 1]
        assert infos[0]["split"]["hash"] == infos[1]["split"]["hash"] == result.manifest["split_hash"]
        probs = [np.load(result.path / "runs" / model / f"seed-{k}" / "evaluations" / "demo-test" / "predictions.npz")
                 ["probs"] for k in (0, 1)]
        assert not np.allclose(probs[0], probs[1])  # another seed, another model


def test_results_hold_the_spread_and_per_seed_mcnemar(two_seeds):
    job, ds, result = two_seeds
    data = json.loads(result.results_json.read_text())
    assert data["seeds"] == 2 and len(data["rows"]) == 2 and len(data["seed_rows"]) == 4
    assert {r["seed"] for r in data["seed_rows"]} == {0, 1}
    for row in data["rows"]:
        per_seed = [r for r in data["seed_rows"] if r["model"] == row["model"]]
        for key in ("top1", "macro_f1", "balanced_accuracy", "top5", "train_time_s"):
            values = [r[key] for r in per_seed]
            assert row[key] == pytest.approx(statistics.fmean(values))
            assert row[f"{key}_sd"] == pytest.approx(statistics.stdev(values))
            assert (row[f"{key}_min"], row[f"{key}_max"]) == (min(values), max(values))
    best, other = data["rows"]
    assert best["is_best"] and best["vs_best_seeds"] == "best" and best["top1"] >= other["top1"]
    assert len(other["mcnemar_p_values"]) == 2 and all(0 <= p <= 1 for p in other["mcnemar_p_values"])
    worse = other["seeds_significantly_worse"]
    assert other["vs_best_seeds"].startswith(f"{worse}/2 seeds worse, p<0.05")

    with open(result.results_csv, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == SPREAD_CSV_COLUMNS
        assert [r["model"] for r in reader] == [best["model"], other["model"]]
    with open(result.seeds_csv, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4


def test_report_and_terminal_show_the_spread(two_seeds):
    from rich.console import Console

    from mathsym_zoo.report import spread_table

    job, ds, result = two_seeds
    page = result.report_path.read_text()
    assert "McNemar per seed" in page and " ± " in page and "seeds worse" in page and "2 seeds" in page
    row = result.rows[0]  # the range sits on its own line under mean ± sd (one line needed a scroll)
    assert f'<br><small class="range">{100 * row["top1_min"]:.2f}-{100 * row["top1_max"]:.2f}</small>' in page
    console = Console(width=200, record=True)
    console.print(spread_table(result.rows))
    text = console.export_text()
    assert "seeds worse" in text and " ± " in text and result.rows[0]["model"] in text
    assert f"({100 * result.rows[0]['top1_min']:.2f}-" in text  # min-max when wide

    narrow = Console(width=80, record=True)
    narrow.print(spread_table(result.rows, width=80))
    text = narrow.export_text()
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text  # nothing cut at 80 columns
    for row in result.rows:
        assert row["model"] in text and f"{100 * row['top1']:.2f} ± " in text


def test_resume_keeps_the_seed_count(two_seeds, monkeypatch):
    job, ds, result = two_seeds
    import mathsym_zoo.training as T

    calls = []
    monkeypatch.setattr(T, "train_model", lambda *a, **k: calls.append(a))
    again = C.compare(job, dataset=ds, resume=result.path, latency_repeats=3)
    assert calls == [] and again.seeds == 2 and len(again.skipped) == 4
    with pytest.raises(ConfigError, match="started with 2"):
        C.compare(job, dataset=ds, resume=result.path, seeds=3)


def test_spread_of_values():
    assert spread([0.5, 0.7, None]) == pytest.approx({"": 0.6, "_sd": 0.1414213, "_min": 0.5, "_max": 0.7})
    assert spread([0.5])["_sd"] == 0.0 and spread([])[""] is None
    with pytest.raises(ConfigError, match="--seeds 0"):
        C._seed_count(0, None)


def test_a_comparison_from_before_the_recipe_settings_resumes(two_seeds, monkeypatch, tmp_path):
    """Its comparison.json lacks [train] keys added since (ema, ...): they had their defaults then."""
    import shutil

    job, ds, result = two_seeds
    folder = tmp_path / "old"
    shutil.copytree(result.path, folder)
    manifest = json.loads((folder / C.MANIFEST).read_text())
    for key in ("ema", "warmup_epochs", "class_weight_power"):
        del manifest["train"][key]
    (folder / C.MANIFEST).write_text(json.dumps(manifest))
    import mathsym_zoo.training as T

    monkeypatch.setattr(T, "train_model", lambda *a, **k: None)
    assert C.compare(job, dataset=ds, resume=folder, latency_repeats=3).seeds == 2


def test_spread_rows_feed_the_one_seed_readers(two_seeds):
    """The verdict and the CI figure read a spread row: its interval is the seeds' envelope."""
    from mathsym_zoo.report import verdict

    job, ds, result = two_seeds
    data = json.loads(result.results_json.read_text())
    for row in data["rows"]:
        seeds = [r for r in data["seed_rows"] if r["model"] == row["model"]]
        assert row["top1_ci95_low"] == min(r["top1_ci95_low"] for r in seeds)
        assert row["top1_ci95_high"] == max(r["top1_ci95_high"] for r in seeds)
    other = data["rows"][1]
    assert other["significant_vs_best"] == (other["seeds_significantly_worse"] == 2)
    assert verdict(data["rows"][:1]).leader == data["rows"][0]["model"]
    v = verdict(data["rows"])
    assert v.clear == other["significant_vs_best"]
