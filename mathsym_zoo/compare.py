"""Compare zoo models on one cache and one persisted split.

Every model trains with the same ``[train]`` settings on the same split, each
in its own run folder of one comparison folder::

    <comparisons_dir>/<source>-<YYYYmmdd-HHMMSS>/
      comparison.json     what is compared: source identity, dataset key, split hash, models, job
      runs/<model>/       a run folder (mathsym_zoo.runs), its test evaluation inside it
                          (--seeds N: runs/<model>/seed-<k>/, train.seed + k)
      results.json        leaderboard rows, best model, McNemar tests, hardware (several seeds: spread
                          rows, see mathsym_zoo.seeds, and every seed's rows in seed_rows)
      results.csv         one row per model, every leaderboard column + split hash + source identity
                          (several seeds: mean, sd, min, max of each score)
      results-seeds.csv   several seeds only: one row per model and seed
                          (and results.json's seed_ensembles: each model's seeds averaged)
      report.html         the self-contained report

Because all models see the same test images, each is compared with the best by
McNemar's paired test (see :mod:`mathsym_zoo.metrics`). Resuming skips models
whose run finished and was evaluated, and resumes one that was interrupted.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import metrics as M
from .errors import ConfigError, DataError
from .evaluate import Evaluation, evaluate_model, load_model
from .fileio import atomic_write_json, atomic_write_text, read_json
from .machine import hardware
from .model_card import write_model_card
from .registry import TrainConfig
from .runs import COMPARISON_FILE, Run
from .seeds import SPREAD_CSV_COLUMNS, seed_ensemble_scores, seed_run_dir, seeded, spread_rows

FORMAT = 1
MANIFEST = COMPARISON_FILE
ALPHA = 0.05

#: results.csv columns, in order.
CSV_COLUMNS = (
    "rank", "model", "architecture", "top1", "top1_ci95_low", "top1_ci95_high", "top5", "macro_f1",
    "balanced_accuracy", "nll", "ece", "num_classes", "n_test", "correct", "is_best", "mcnemar_b", "mcnemar_c",
    "mcnemar_statistic", "mcnemar_p", "mcnemar_method", "significant_vs_best", "params", "macs", "flops",
    "train_time_s", "train_images_per_s",
    "epochs", "best_epoch", "latency_ms_p50", "latency_ms_p95", "batch_images_per_s", "missing_images",
    "split_hash", "dataset_key", "source", "source_type", "source_fingerprint", "run_dir",
)


@dataclasses.dataclass
class ComparisonResult:
    """What :func:`compare` produced."""

    path: Path
    rows: list[dict[str, Any]]  # leaderboard, best first
    evaluations: dict[str, Evaluation]
    best: str | None
    skipped: list[str]  # finished models that were not trained again
    wall_time_s: float
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset: Any = dataclasses.field(default=None, repr=False)
    seeds: int = 1  # several: ``rows`` are spreads over seeds (mathsym_zoo.seeds), ``evaluations`` seed 0's
    seed_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # every seed's leaderboard rows
    ensembles: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # model -> its seeds' mean

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    @property
    def results_json(self) -> Path:
        return self.path / "results.json"

    @property
    def results_csv(self) -> Path:
        return self.path / "results.csv"

    @property
    def seeds_csv(self) -> Path:
        """One row per model and seed (multi-seed comparisons only)."""
        return self.path / "results-seeds.csv"


# -- comparison folders --------------------------------------------------------


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def latest_comparison(job) -> Path | None:
    """The newest comparison folder of ``job``'s source (by name), or None."""
    root = job.comparisons_dir
    if not root.is_dir():
        return None
    found = sorted(p for p in root.glob(f"{job.source.name}-*") if (p / MANIFEST).is_file())
    return found[-1] if found else None


def _comparison_dir(job, out_dir, resume) -> tuple[Path, bool]:
    """(folder, resuming)."""
    if resume not in (None, False, True):  # a path
        folder = Path(resume).expanduser()
        if not (folder / MANIFEST).is_file():
            raise ConfigError(f"--resume {str(folder)!r}: not a comparison folder (no {MANIFEST}); pass a folder "
                              f"under {job.comparisons_dir} or --resume without a value for the latest")
        return folder, True
    if resume:
        folder = Path(out_dir).expanduser() if out_dir else latest_comparison(job)
        if folder is None or not (folder / MANIFEST).is_file():
            where = str(folder) if folder else f"{job.comparisons_dir}/{job.source.name}-*"
            raise ConfigError(f"--resume: no comparison to resume at {where}; run `mathsym-zoo compare` without "
                              "--resume to start one")
        return folder, True
    folder = Path(out_dir).expanduser() if out_dir else job.comparisons_dir / f"{job.source.name}-{_timestamp()}"
    if (folder / MANIFEST).is_file():
        raise ConfigError(f"{folder} already holds a comparison; pass --resume {folder} to continue it, "
                          "or another --out folder")
    return folder, False


def _manifest(job, dataset, split, names: Sequence[str], seeds: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "seeds": seeds,
        "created": datetime.now().isoformat(timespec="seconds"),
        "source_entry": job.source.to_dict(),
        "source": dict(dataset.source or {}),
        "dataset_key": dataset.key,
        "split_hash": split.hash,
        "split_file": str(split.path) if split.path else None,
        "models": list(names),
        "train": job.train.model_dump(mode="json"),
        "job": job.to_dict(),
    }


def _check_resumable(old: dict[str, Any], new: dict[str, Any], folder: Path) -> None:
    """A resumed comparison must use the same data, split and training settings."""
    for key, what in (("dataset_key", "decoded dataset"), ("split_hash", "split")):
        if old.get(key) != new.get(key):
            raise DataError(f"{folder}: cannot resume: the {what} changed ({key} {str(old.get(key))[:12]} -> "
                            f"{str(new.get(key))[:12]}), so the models would not be compared on the same images; "
                            "start a new comparison")
    if old.get("seeds", 1) != new["seeds"]:
        raise ConfigError(f"{folder}: cannot resume with --seeds {new['seeds']}: the comparison was started with "
                          f"{old.get('seeds', 1)}; resume without --seeds, or start a new comparison")
    keep = {"runs_dir", "comparisons_dir", "device", "strategy"}  # where and on what, not how
    # Settings newer than the comparison had their defaults then.
    old_train = {**TrainConfig().model_dump(mode="json"), **old.get("train", {})}
    diff = sorted(k for k in set(old_train) | set(new["train"])
                  if k not in keep and old_train.get(k) != new["train"].get(k))
    if diff:
        raise ConfigError(f"{folder}: cannot resume with different training settings ({', '.join(f'train.{k}' for k in diff)}"
                          "); a comparison trains every model the same way. Resume with the --set overrides and "
                          "--recipe it was started with, or start a new comparison")


# -- runs ----------------------------------------------------------------------


def run_status(run_dir: Path) -> str:
    """``new`` (nothing there), ``finished`` (its record says so and a checkpoint exists) or ``partial``."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return "new"
    if not Run.is_run(run_dir):
        return "partial"
    try:
        return "finished" if Run(run_dir).finished else "partial"
    except DataError:
        return "partial"


def _train_info(run: Run) -> dict[str, Any]:
    """Training time, images/s and epochs from the run's final metrics."""
    try:
        data = run.metrics()
    except DataError:
        return {}
    out = {"train_time_s": data.get("train_seconds"), "train_images_per_s": data.get("train_images_per_second"),
           "epochs": data.get("epochs"), "best_epoch": data.get("best_epoch")}
    return {k: v for k, v in out.items() if v is not None}


# -- leaderboard ---------------------------------------------------------------


def _correct_on(evaluation: Evaluation, common: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(evaluation.indices, common) if np.all(np.diff(evaluation.indices) >= 0) else None
    if pos is None:
        order = np.argsort(evaluation.indices)
        pos = order[np.searchsorted(evaluation.indices[order], common)]
    return evaluation.correct[pos]


def leaderboard(evaluations: dict[str, Evaluation], train_info: dict[str, dict[str, Any]],
                extra: dict[str, Any] | None = None, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Leaderboard rows, best first: scores, speed, size, and McNemar against the best.

    The best model has the highest top-1 (ties: macro-F1, then name). McNemar
    uses the test images every model was scored on.
    """
    if not evaluations:
        return []
    names = sorted(evaluations, key=lambda n: (-evaluations[n].metrics["top1"],
                                               -evaluations[n].metrics["macro_f1"], n))
    best = names[0]
    common = evaluations[best].indices
    for e in evaluations.values():
        common = np.intersect1d(common, e.indices)
    best_correct = _correct_on(evaluations[best], common)
    rows = []
    for rank, name in enumerate(names, 1):
        e = evaluations[name]
        s = e.summary()
        row: dict[str, Any] = {"rank": rank, "model": name, "is_best": name == best, **(extra or {}).get(name, {}),
                               "n_test": s["n"], "correct": e.metrics["correct"], **s, **e.model_stats,
                               **train_info.get(name, {})}
        row.pop("n", None)
        if name == best:
            row.update(mcnemar_b=0, mcnemar_c=0, mcnemar_statistic=None, mcnemar_p=None, mcnemar_method=None,
                       significant_vs_best=None)
        else:
            t = M.mcnemar(best_correct, _correct_on(e, common))
            row.update(mcnemar_b=t.b, mcnemar_c=t.c, mcnemar_statistic=t.statistic, mcnemar_p=t.p_value,
                       mcnemar_method=t.method, significant_vs_best=t.significant(alpha))
        rows.append(row)
    return rows


def _csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str] = CSV_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


def write_results(folder: Path, manifest: dict[str, Any], rows: list[dict[str, Any]], *, status: str,
                  wall_time_s: float | None = None, seed_rows: list[dict[str, Any]] | None = None,
                  ensembles: dict[str, dict[str, Any]] | None = None) -> None:
    """``results.json`` and ``results.csv``, atomically; with ``seed_rows`` (several seeds) ``rows`` are
    spreads, ``results-seeds.csv`` holds one row per model and seed, and ``ensembles`` the scores of
    each model's seeds averaged (:func:`mathsym_zoo.seeds.seed_ensemble_scores`)."""
    src = manifest.get("source") or {}
    # The source's describe() fields in one cell; the fingerprint has its own column.
    details = ", ".join(f"{k}={v}" for k, v in src.items() if k != "fingerprint" and not isinstance(v, (dict, list)))
    source_text = manifest["source_entry"]["name"] + (f" ({details})" if details else "")
    common = {"split_hash": manifest["split_hash"], "dataset_key": manifest["dataset_key"], "source": source_text,
              "source_type": manifest["source_entry"]["type"], "source_fingerprint": src.get("fingerprint")}
    rows = [{**r, **common} for r in rows]
    seed_rows = [{**r, **common} for r in seed_rows or []]
    best = next((r["model"] for r in rows if r.get("is_best")), None)
    from .report import verdict

    said = verdict(rows)  # the sentence the leaderboard and the report print
    atomic_write_json(folder / "results.json", {
        "format": FORMAT, "status": status, "comparison": str(folder), "source_entry": manifest["source_entry"],
        "source": src, "dataset_key": manifest["dataset_key"], "split_hash": manifest["split_hash"],
        "split_file": manifest.get("split_file"), "models": manifest["models"], "best": best,
        "verdict": said.text, "clear_best": said.clear, "alpha": ALPHA,
        "significance": (f"McNemar's test of each model against the best on the same test images: exact binomial "
                         f"when b + c < {M.MCNEMAR_EXACT_BELOW}, else chi-square with continuity correction; "
                         f"significant when p < {ALPHA:g}"),
        "ci": "Wilson score interval, 95%", "train": manifest.get("train"), "hardware": hardware(),
        "wall_time_s": wall_time_s, "seeds": manifest.get("seeds", 1), "rows": rows,
        **({"seed_rows": seed_rows} if seed_rows else {}),
        **({"seed_ensembles": ensembles} if ensembles else {}),
    })
    atomic_write_text(folder / "results.csv", _csv_text(rows, SPREAD_CSV_COLUMNS if seed_rows else CSV_COLUMNS))
    if seed_rows:
        atomic_write_text(folder / "results-seeds.csv", _csv_text(seed_rows, ("seed",) + CSV_COLUMNS))


# -- the comparison ------------------------------------------------------------


def compare(job, model_names: Sequence[str] | None = None, *, out_dir: str | Path | None = None,
            resume: bool | str | Path = False, dataset=None, log: Callable[[str], None] | None = None,
            callbacks: Callable[[], list] | None = None, latency_repeats: int = 50,
            seeds: int | None = None) -> ComparisonResult:
    """Train and evaluate ``model_names`` (default: every model of the job) on one split.

    ``seeds``: train each model that many times (``train.seed`` + 0, 1, ...) on the
    same split and report the spread of every score (:mod:`mathsym_zoo.seeds`);
    default 1, or what the resumed comparison was started with.

    ``resume``: True continues ``out_dir`` (or the newest comparison of this
    source), a path continues that folder. Finished models are not trained
    again; an interrupted one resumes from its state. ``dataset`` skips
    :func:`mathsym_zoo.data.cache.load_dataset`. ``log`` gets progress lines,
    ``callbacks()`` the Keras callbacks that draw each model's training.
    The report is written by :func:`mathsym_zoo.report.write_comparison_report`.
    """
    from .data.split import load_split

    started = time.perf_counter()
    say = log or (lambda line: None)
    folder, resuming = _comparison_dir(job, out_dir, resume)
    old = read_json(folder / MANIFEST) if resuming else None
    names = _model_names(job, model_names, old)
    seeds = _seed_count(seeds, old)
    job = job.with_models(names)  # unknown names fail here, with the registered ones listed
    if dataset is None:
        from .data.cache import load_dataset

        dataset = load_dataset(job, progress=False)
    split = load_split(dataset, job.split)
    if len(split.indices["test"]) == 0:
        raise DataError(f"the split of {job.source.name!r} has no test images (split.test = {job.split.test:g}); "
                        "set e.g. --set split.test=0.1")
    manifest = _manifest(job, dataset, split, names, seeds)
    if old is not None:
        _check_resumable(old, manifest, folder)
        manifest["created"] = old.get("created", manifest["created"])
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / MANIFEST, manifest)
    say(f"comparison folder: {folder}")

    per_seed: list[dict[str, Evaluation]] = [{} for _ in range(seeds)]  # seed k -> model -> test evaluation
    train_info: list[dict[str, dict[str, Any]]] = [{} for _ in range(seeds)]
    extra: list[dict[str, dict[str, Any]]] = [{} for _ in range(seeds)]
    skipped: list[str] = []
    test = np.asarray(split.indices["test"], dtype=np.int64)
    for i, name in enumerate(names, 1):
        for k in range(seeds):
            run_dir = seed_run_dir(folder, name, k, seeds)
            step = f"[{i}/{len(names)}] {name}" + (f" seed {k + 1}/{seeds}" if seeds > 1 else "")
            extra[k][name] = {"architecture": job.model(name).type, "run_dir": str(run_dir)}
            if not _train_one(seeded(job, k), name, run_dir, dataset, say, step, callbacks):
                skipped.append(name if seeds == 1 else f"{name} (seed {job.train.seed + k})")
            per_seed[k][name] = _test_evaluation(Run(run_dir), job, dataset, test, split.hash, say, step,
                                                 latency_repeats)
            train_info[k][name] = _train_info(Run(run_dir))
            rows, seed_rows = _rows(job, per_seed, train_info, extra)
            write_results(folder, manifest, rows, status="running", seed_rows=seed_rows)

    ensembles = {name: seed_ensemble_scores([evals[name] for evals in per_seed]) for name in names} if seeds > 1 else {}
    wall = time.perf_counter() - started
    write_results(folder, manifest, rows, status="finished", wall_time_s=wall, seed_rows=seed_rows,
                  ensembles=ensembles)
    return ComparisonResult(folder, rows, per_seed[0], rows[0]["model"] if rows else None, skipped, wall, manifest,
                            dataset, seeds, seed_rows or [], ensembles)


def _seed_count(seeds: int | None, old: dict[str, Any] | None) -> int:
    if seeds is None:
        return int(old.get("seeds", 1)) if old else 1
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds {seeds!r}: expected a whole number >= 1 (models trained per architecture)")
    return seeds


def _rows(job, per_seed, train_info, extra) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """``(leaderboard rows, None)`` for one seed; ``(spread rows, every seed's rows)`` for several."""
    if len(per_seed) == 1:
        return leaderboard(per_seed[0], train_info[0], extra[0]), None
    boards = [leaderboard(evals, info, ext) for evals, info, ext in zip(per_seed, train_info, extra) if evals]
    by_model = {name: [evals[name] for evals in per_seed if name in evals] for name in per_seed[0]}
    seed_rows = [{**r, "seed": job.train.seed + k} for k, rows in enumerate(boards) for r in rows]
    return spread_rows(boards, by_model, alpha=ALPHA), seed_rows


def _model_names(job, model_names, old) -> list[str]:
    names = list(model_names) if model_names else (list(old["models"]) if old else [m.name for m in job.models])
    if not names:
        raise ConfigError("no models to compare: name some (`mathsym-zoo compare notebook-cnn resnet-lite`) "
                          "or add [models.<name>] tables to the registry")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"model {dupes[0]!r} is named twice; each model trains once per comparison")
    return names


def _train_one(job, name: str, run_dir: Path, dataset, say, step: str, callbacks) -> bool:
    """Train (or resume) one model unless its run finished earlier; True when it trained."""
    from .training import train_model

    status = run_status(run_dir)
    if status == "finished":
        return False
    say(f"{step}: {'resuming' if status == 'partial' else 'training'} in {run_dir}")
    # A folder without a run record never got past set-up: start it afresh.
    again = status == "partial" and Run.is_run(run_dir)
    result = train_model(job, name, run_dir=run_dir, resume=again, dataset=dataset,
                         callbacks=callbacks() if callbacks else (), log=say)
    if run_status(run_dir) != "finished":
        raise DataError(f"{run_dir}: training returned but the run is not marked finished; resume with "
                        f"`mathsym-zoo compare --resume {run_dir.parent.parent}`")
    say(result.summary_line())
    return True


def _test_evaluation(run: Run, job, dataset, test: np.ndarray, split_hash: str, say, step: str,
                     latency_repeats: int) -> Evaluation:
    """The run's evaluation on the comparison's test side (kept in the run; reused on resume)."""
    folder = run.evaluation_dir(job.source.name, "test")
    if Evaluation.exists(folder):
        loaded = Evaluation.load(folder)
        if loaded.split_hash == split_hash:
            say(f"{step}: evaluated earlier, reused")
            return loaded
    say(f"{step}: evaluating on {len(test)} test images")
    evaluation = evaluate_model(load_model(run), dataset, test, side="test", name=run.model_name,
                                latency_repeats=latency_repeats)
    evaluation.split_hash, evaluation.training_source = split_hash, True
    evaluation.save(folder)
    write_model_card(run, evaluation=evaluation, dataset=dataset, log=say)  # with its test scores
    return evaluation
