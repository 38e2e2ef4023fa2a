"""``train.ensemble = N``: one ``train`` call trains N seeds of a model and averages them.

The ensemble's run folder holds its members under ``members/seed-<k>``. Member ``k``
is an ordinary run with ``train.seed = seed * N + k`` and ``train.ensemble = 1``, so
the seeds of two ensembles (``compare --seeds``) never overlap, and ``seed = 0`` trains
exactly the runs of ``compare --seeds N``. The folder's ``run.json`` says "running"
from the start (so ``runs`` lists it and ``train --resume`` finds it); once every
member has finished, :func:`mathsym_zoo.ensemble.finish_ensemble` writes the averaged
model, its record and card, and the scores on the validation and test sides.

Resuming keeps finished members, continues an interrupted one from its last epoch and
trains the missing ones; ``--set train.epochs=N`` extends every member, then rebuilds
the average. With ``train.ensemble = 1`` every call goes straight to :mod:`.loop`.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..ensemble import COMBINE, build_model, ensemble_name, finish_ensemble
from ..errors import ConfigError
from ..registry import Job
from ..runs import Run, new_run_path
from . import loop
from .loop import RunResult

MEMBERS_DIR = "members"


def member_job(job: Job, k: int) -> Job:
    """Member ``k``'s job: one model (``ensemble = 1``) with seed ``seed * N + k``."""
    n = job.train.ensemble
    return dataclasses.replace(job, train=job.train.model_copy(update={"seed": job.train.seed * n + k,
                                                                       "ensemble": 1}))


def member_dir(run_dir: Path, k: int) -> Path:
    return Path(run_dir) / MEMBERS_DIR / f"seed-{k}"


def train_model(job: Job, model_name: str, *, run_dir: str | Path | None = None, resume: bool = False,
                init_from: str | Path | Run | None = None, dataset=None, callbacks: Sequence = (),
                log: Callable[[str], None] | None = None) -> RunResult:
    """Train ``model_name`` into a run folder: one model, or ``train.ensemble`` seeds averaged."""
    if job.train.ensemble == 1:
        return loop.train_model(job, model_name, run_dir=run_dir, resume=resume, init_from=init_from,
                                dataset=dataset, callbacks=callbacks, log=log)
    say = log or (lambda line: None)
    dataset, split = loop.training_data(job, dataset)
    run = _open(job, model_name, run_dir, resume)
    try:
        members = [_member(job, model_name, run, k, init_from, dataset, callbacks, say)
                   for k in range(job.train.ensemble)]
        return _finish(job, run, members, dataset, split, say)
    except BaseException as exc:
        if not resume and not (run.path / MEMBERS_DIR).exists():  # failed in set-up: leave no empty run behind
            shutil.rmtree(run.path, ignore_errors=True)
            raise
        status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
        run.set_status(status, None if status == "interrupted" else " ".join(str(exc).split())[:500])
        raise


def resume_run(run_dir: str | Path, *, overrides: Sequence[str] = (), job: Job | None = None, plugins=None,
               dataset=None, callbacks: Sequence = (), log: Callable[[str], None] | None = None) -> RunResult:
    """Continue or extend a run (see :func:`.loop.resume_run`); an ensemble continues its members."""
    run = Run.open(run_dir)
    if "ensemble" not in run.info:
        return loop.resume_run(run_dir, overrides=overrides, job=job, plugins=plugins, dataset=dataset,
                               callbacks=callbacks, log=log)
    loop.check_overrides(overrides)
    if int(((run.info.get("job") or {}).get("train") or {}).get("ensemble", 1)) == 1:
        raise ConfigError(f"{run.path} was built by `mathsym-zoo ensemble` from other runs; resume or extend those "
                          "runs, then build the ensemble again")
    job = job or run.job(plugins=plugins, overrides=overrides)
    return train_model(job, _base_model(run), run_dir=run.path, resume=True, dataset=dataset, callbacks=callbacks,
                       log=log)


def _base_model(run: Run) -> str:
    """The registry model an ensemble run averages (recorded at the start, and per member at the end)."""
    info = run.info["ensemble"]
    return str(info.get("model") or info["members"][0]["model"])


def _open(job: Job, model_name: str, run_dir, resume: bool) -> Run:
    entry = job.model(model_name)
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run folder: --resume RUN_DIR")
        run = Run.open(run_dir)
        loop.check_extension(run.info.get("job") or {}, job)
        run.update_info(status="running", job=job.to_dict())
        return run
    path = Path(run_dir) if run_dir is not None else new_run_path(job.runs_dir, entry.name)
    return Run.create(path, {"model": entry.to_dict(), "job": job.to_dict(), "status": "running",
                             "ensemble": {"combine": COMBINE, "model": entry.name, "planned": job.train.ensemble}})


def _member(job: Job, model_name: str, run: Run, k: int, init_from, dataset, callbacks: Sequence,
            say: Callable[[str], None]) -> Run:
    """Member ``k``: kept when finished with the planned epochs, else trained or continued."""
    folder, mjob = member_dir(run.path, k), member_job(job, k)
    n = job.train.ensemble
    if Run.is_run(folder):
        done = Run.open(folder)
        planned = ((done.info.get("job") or {}).get("train") or {}).get("epochs")
        if done.finished and planned == mjob.train.epochs:
            say(f"member {k + 1}/{n} (seed {mjob.train.seed}): finished earlier, kept")
            return done
    again = Run.is_run(folder)
    say(f"member {k + 1}/{n} (seed {mjob.train.seed}): {'continuing' if again else 'training'} in {folder}")
    result = loop.train_model(mjob, model_name, run_dir=folder, resume=again, init_from=None if again else init_from,
                              dataset=dataset, callbacks=callbacks, log=say)
    say(result.summary_line())
    return result.run


def _finish(job: Job, run: Run, members: list[Run], dataset, split, say: Callable[[str], None]) -> RunResult:
    name = ensemble_name(members)
    model = build_model([m.load_model() for m in members], name=name.replace("-", "_"))
    scores: dict[str, Any] = {side: _score(model, dataset, split.indices[side]) for side in ("val", "test")
                              if len(split.indices[side])}
    scores["epochs"] = max(int(m.metrics().get("epochs") or 0) for m in members)
    finish_ensemble(run, members, name=name, job=job.to_dict(), model=model, scores=scores, log=say)
    return RunResult(run=run, status="completed", epochs=scores["epochs"], best_epoch=None, metrics=run.metrics(),
                     history=[], split_hash=split.hash, model=model,
                     notes=[f"{len(members)} members averaged: {COMBINE}"])


def _score(model, dataset, indices: Sequence[int]) -> dict[str, Any]:
    """Loss and top-1 of the averaged probabilities on one side of the split."""
    idx = np.asarray(indices, dtype=np.int64)
    images = np.asarray(dataset.images[idx], dtype="float32")
    labels = np.asarray(dataset.labels)[idx]
    # Direct calls on slices: model.predict would build a tf.data pipeline for one pass.
    probs = np.concatenate([np.asarray(model(images[i:i + 256], training=False), dtype=np.float64)
                            for i in range(0, len(idx), 256)] or [np.zeros((0, model.output_shape[-1]))])
    picked = np.clip(probs[np.arange(len(idx)), labels], 1e-12, 1.0)
    return {"loss": float(-np.mean(np.log(picked))), "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
            "images": int(len(idx))}
