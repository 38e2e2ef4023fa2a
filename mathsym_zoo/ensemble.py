"""Seed ensembles: finished runs on one split, averaged into one model that is a run of its own.

``mathsym-zoo ensemble RUN RUN ...`` (or the folder of a ``compare --seeds N``) writes
an ensemble run: its ``best.keras`` takes each image once, runs every member and
returns the mean of their probabilities. Each member's output already carries its
own ``ClassPrior`` (``undo_class_weights``), so the mean is of what each member would
predict alone. Because the result is an ordinary run folder, ``evaluate`` (with its
split-hash check), ``predict``, ``export`` and ``serve`` use it like any other.

Members must agree on what makes their outputs comparable: the classes in the same
order, the split (so no member trained on the ensemble's test images) and the offline
preprocessing (so one input fits them all). :func:`mathsym_zoo.seeds.seed_ensemble_scores` is
the same mean computed from saved test predictions, which ``compare --seeds N`` reports
without building a model.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ConfigError
from .runs import COMPARISON_FILE, Run

#: How the members' outputs are combined (recorded in the run and its card).
COMBINE = "mean of the members' probabilities"
#: Keys of a member's record that describe its own training, not the ensemble.
_MEMBER_ONLY = ("pid", "failure", "finished", "parent", "resumed", "created", "status", "determinism")


# -- which runs --------------------------------------------------------------------


def member_runs(paths: Sequence[str | Path], *, model: str | None = None) -> list[Run]:
    """The runs named by ``paths``: run folders (an ensemble run: its members), or comparison
    folders (their seed runs of ``model``)."""
    runs: list[Run] = []
    for path in paths:
        path = Path(path).expanduser()
        runs += _comparison_runs(path, model) if _is_comparison(path) else members_of(Run.open(path))
    seen: set[Path] = set()
    for run in runs:
        key = run.path.resolve()
        if key in seen:
            raise ConfigError(f"{run.path} is named twice; each member counts once in the mean")
        seen.add(key)
    if len(runs) < 2:
        raise ConfigError(f"an ensemble needs at least 2 finished runs, got {len(runs)}; name several run folders "
                          "or a comparison trained with `compare --seeds N`")
    return runs


def members_of(run: Run) -> list[Run]:
    """An ensemble run's members (so two ensembles average as all their members, each counted
    once, not as a mean of means), else the run itself."""
    members = (run.info.get("ensemble") or {}).get("members")
    return [Run.open(m["path"]) for m in members] if members else [run]


def _is_comparison(path: Path) -> bool:
    return path.is_dir() and (path / COMPARISON_FILE).is_file() and not Run.is_run(path)


def _comparison_runs(folder: Path, model: str | None) -> list[Run]:
    models = sorted(p.name for p in (folder / "runs").iterdir() if p.is_dir()) if (folder / "runs").is_dir() else []
    if model is None and len(models) == 1:
        model = models[0]
    if model not in models:
        which = f"model {model!r} is not in it" if model else "it holds several models"
        raise ConfigError(f"{folder}: {which}; pick one with --model ({', '.join(models) or 'none trained yet'})")
    seeds = sorted((folder / "runs" / model).glob("seed-*"), key=lambda p: int(p.name.split("-")[1]))
    return [Run.open(p) for p in seeds] if seeds else [Run.open(folder / "runs" / model)]


# -- checks --------------------------------------------------------------------------


def check_members(runs: Sequence[Run]) -> None:
    """Finished, and the same classes, split, preprocessing and input shape as the first member."""
    for run in runs:
        if not run.finished:
            raise ConfigError(f"{run.path}: status {run.status!r}; only finished runs join an ensemble "
                              f"(finish it with `mathsym-zoo train --resume {run.path}`)")
    first = runs[0]
    if first.split_hash is None:
        raise ConfigError(f"{first.path}: its record names no split; an ensemble needs runs trained here")
    for run in runs[1:]:
        for what, get in (("classes", lambda r: r.class_names), ("split", lambda r: r.split_hash),
                          ("offline preprocessing", lambda r: r.preprocessing),
                          ("input shape", lambda r: r.input_shape)):
            if get(run) != get(first):
                raise ConfigError(f"{run.path}: its {what} differ from {first.path}'s; an ensemble's members must "
                                  "be trained on the same source, split and preprocessing (e.g. the seeds of one "
                                  "`compare --seeds N`)")


# -- the model and its run folder ------------------------------------------------------


def build_model(models: Sequence[Any], name: str = "ensemble"):
    """One Keras model: the image in once, every member on it, the mean of their probabilities out."""
    import keras

    first = models[0]
    image = keras.Input(shape=first.input_shape[1:], dtype=first.inputs[0].dtype, name="image")
    outputs = []
    for i, member in enumerate(models):
        member.name = f"member_{i}"  # nested models need distinct names to save
        outputs.append(member(image))
    mean = keras.layers.Average(name="mean_probabilities")(outputs)
    return keras.Model(image, mean, name=name)


def ensemble_name(runs: Sequence[Run]) -> str:
    names = sorted({r.model_name for r in runs})
    return f"{names[0] if len(names) == 1 else 'mixed'}-ensemble{len(runs)}"


def _record(runs: Sequence[Run], name: str) -> dict[str, Any]:
    first = runs[0]
    info = {k: v for k, v in first.info.items() if k not in _MEMBER_ONLY and k != "format"}
    archs = sorted({r.architecture or "unknown" for r in runs})
    info["model"] = {"name": name, "type": archs[0] if len(archs) == 1 else "ensemble",
                     "params": (first.info.get("model") or {}).get("params", {}) if len(archs) == 1 else {}}
    models = sorted({r.model_name for r in runs})
    info["fit_sides"] = fit_sides(runs)
    info["ensemble"] = {"combine": COMBINE, "model": models[0] if len(models) == 1 else None,
                        "members": [_member(r) for r in runs]}
    return info


def fit_sides(runs: Sequence[Run]) -> list[str]:
    """The sides any member was fitted on (val too if one trained with ``train_on_val``)."""
    fitted = {side for run in runs for side in run.fit_sides}
    return [side for side in ("train", "val") if side in fitted]


def _member(run: Run) -> dict[str, Any]:
    metrics = run.metrics()
    return {"path": str(run.path.resolve()), "model": run.model_name, "architecture": run.architecture,
            "seed": ((run.info.get("job") or {}).get("train") or {}).get("seed"),
            "val_top1": (metrics.get("val") or {}).get("accuracy"),
            "train_seconds": metrics.get("train_seconds")}


def _metrics(runs: Sequence[Run]) -> dict[str, Any]:
    seconds = [r.metrics().get("train_seconds") for r in runs]
    total = sum(float(s) for s in seconds if s is not None) if all(s is not None for s in seconds) else None
    return {"members": len(runs), "train_seconds": total, "split_hash": runs[0].split_hash,
            "fit_sides": fit_sides(runs)}


def build_ensemble(runs: Sequence[Run], out: Path, *, name: str | None = None,
                   log: Callable[[str], None] | None = None) -> Run:
    """Check ``runs``, then write the ensemble run to ``out`` (a new folder)."""
    check_members(runs)
    return finish_ensemble(Run.create(Path(out), {"status": "building"}), runs, name=name, log=log)


def finish_ensemble(run: Run, runs: Sequence[Run], *, name: str | None = None, job: dict[str, Any] | None = None,
                    model=None, scores: dict[str, Any] | None = None,
                    log: Callable[[str], None] | None = None) -> Run:
    """Write the ensemble of ``runs`` into the started run folder ``run`` (its record, model, metrics, card).

    ``job`` replaces the first member's recorded job (``train`` records the ensemble's own,
    ``train.ensemble = N``, so that ``train --resume`` continues it); ``model`` is the built
    ensemble model when the caller has it; ``scores`` (e.g. ``{"val": {...}, "test": {...}}``)
    join its metrics.
    """
    from .model_card import write_model_card
    from .training.loop import save_model_atomic

    check_members(runs)
    name = name or ensemble_name(runs)
    model = model or build_model([member.load_model() for member in runs], name=name.replace("-", "_"))
    kept = {k: run.info[k] for k in ("format", "created") if k in run.info}
    run.write_info({**kept, **_record(runs, name), **({"job": job} if job else {}), "status": "building"})
    save_model_atomic(model, run.best_path)
    run.write_metrics({**_metrics(runs), **(scores or {})})
    run.update_info(status="completed", finished=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    write_model_card(run, model=model, log=log)
    return run
