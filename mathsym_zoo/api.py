"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from typing import Any

from .plugins import PluginSet
from .registry import Job, resolve

__all__ = ["PluginSet", "Job", "resolve", "list_plugins", "list_components", "attach_model_metadata",
           "load_dataset", "load_split", "train", "resume", "open_run", "runs", "compare", "evaluate",
           "model_info", "load_classifier", "export_model", "write_croissant", "refresh_model_card"]


def list_plugins(*, include_builtin: bool = True, hook: str | None = None, plugins: PluginSet | None = None) -> list[dict[str, Any]]:
    """Plugins with version, origin, hooks and registered components."""
    plugins = plugins or PluginSet()
    out = []
    for info in plugins.plugins(include_builtin=include_builtin):
        if hook and hook not in info.hooks:
            continue
        out.append({"name": info.name, "version": info.version, "origin": info.origin, "builtin": info.builtin,
                    "hooks": info.hooks, "components": [list(c) for c in info.components]})
    return out


def list_components(kind: str, pattern: str | None = None, *, plugins: PluginSet | None = None) -> list[dict[str, Any]]:
    """Components of one kind (source, preprocessor, architecture) matching an fnmatch pattern."""
    plugins = plugins or PluginSet()
    return [{"name": c.name, "plugin": c.plugin, "summary": c.summary, "defaults": c.defaults()}
            for c in plugins.list(kind, pattern)]


def attach_model_metadata(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add generated ``params`` / ``MACs`` / ``size`` columns (and the full ``info`` dict) to
    architecture rows, read from the model-info cache at the default input (45x45x1, 82
    classes); TensorFlow-free. Missing entries say to run ``mathsym-zoo models --compute``.
    """
    from .modelinfo import attach_columns

    return attach_columns(rows)


def load_classifier(path, **kwargs):
    """A run folder, ``.keras`` file or export folder, ready for new images:
    ``load_classifier(run).predict(images, top_k=5)`` (see :mod:`mathsym_zoo.predict`)."""
    from .predict import load_classifier as _load

    return _load(path, **kwargs)


def export_model(path, fmt: str = "saved_model", quantize: str | None = None, out=None, **kwargs):
    """SavedModel, TFLite or ONNX export with labels.txt and model_info.json (see :mod:`mathsym_zoo.export`)."""
    from .export import export

    return export(path, fmt, quantize, out, **kwargs)


# -- the main job, mirroring the CLI (each imports what it needs on first use) --


def load_dataset(job: Job, *, progress: bool = False, rebuild: bool = False):
    """The decoded, cached dataset of ``job.source`` (``mathsym-zoo info``)."""
    from .data.cache import load_dataset as _load

    return _load(job, progress=progress, rebuild=rebuild)


def load_split(job: Job, dataset=None):
    """The persisted split of the job's data (``mathsym-zoo split``)."""
    from .data.split import load_split as _split

    return _split(dataset if dataset is not None else load_dataset(job), job.split)


def _progress(progress: bool, epochs: int) -> tuple[list, Any]:
    """Plain progress lines on stdout for API users who ask for them."""
    if not progress:
        return [], None
    from .training.callbacks import EpochLog

    return [EpochLog(epochs=epochs)], print


def train(job: Job, model: str, *, run_dir=None, resume: bool = False, init_from=None, progress: bool = False):
    """Train one model into a run folder (``mathsym-zoo train``); ``init_from`` fine-tunes from another run."""
    from .training import train_model

    callbacks, log = _progress(progress, job.train.epochs)
    return train_model(job, model, run_dir=run_dir, resume=resume, init_from=init_from, callbacks=callbacks, log=log)


def resume(run_dir, *, overrides=(), progress: bool = False):
    """Continue a run, or extend a finished one (``overrides=["train.epochs=20"]``) (``train --resume``)."""
    from .training import resume_run

    callbacks, log = _progress(progress, 0)
    return resume_run(run_dir, overrides=overrides, callbacks=callbacks, log=log)


def open_run(path):
    """A run folder (or ``.keras`` file) as a :class:`mathsym_zoo.runs.Run`."""
    from .runs import Run

    return Run.open(path, require_record=False)


def runs(*roots) -> list[dict[str, Any]]:
    """One summary per run under ``roots`` (default: ./runs and ./comparisons), newest first (``mathsym-zoo runs``)."""
    from pathlib import Path

    from .runs import find_runs

    return [r.summary() for r in find_runs([Path(p) for p in roots] or [Path("runs"), Path("comparisons")])]


def compare(job: Job, models=None, *, out_dir=None, resume: bool = False, progress: bool = False, report: bool = True):
    """Train and compare models on one split, then write the report (``mathsym-zoo compare``)."""
    from .compare import compare as _compare

    callbacks, log = _progress(progress, job.train.epochs)
    result = _compare(job, models, out_dir=out_dir, resume=resume, log=log,
                      callbacks=(lambda: list(callbacks)) if callbacks else None)
    if report:
        from .report import write_comparison_report

        write_comparison_report(result)
    return result


def evaluate(run, *, job: Job | None = None, side: str = "test", out_dir=None, report: bool = True):
    """Evaluate a run on its own test side (``job=None``) or on another source (``mathsym-zoo evaluate``)."""
    from .evaluate import evaluate as _evaluate

    evaluation, folder = _evaluate(run, job=job, side=side, out_dir=out_dir)
    refresh_model_card(run, evaluation)
    if report:
        from .report import write_evaluation_report
        from .runs import Run

        write_evaluation_report(folder, evaluation, evaluation.dataset,
                                run=run if isinstance(run, Run) else Run.open(run, require_record=False))
    return evaluation, folder


def refresh_model_card(run, evaluation) -> None:
    """Rewrite the run's model card with a new evaluation's scores (``evaluate`` does this)."""
    from .model_card import write_model_card
    from .runs import Run

    run = run if isinstance(run, Run) else Run.open(run, require_record=False)
    dataset = evaluation.dataset if evaluation.training_source else None  # its class counts, when it is the run's data
    write_model_card(run, evaluation=evaluation, dataset=dataset)


def model_info(name: str, params=None, **kwargs):
    """Parameters, MACs and size of an architecture (``mathsym-zoo models``)."""
    from .modelinfo import model_info as _info

    return _info(name, params, **kwargs)


def write_croissant(job: Job, out_dir, *, overwrite: bool = False, verify: bool = False):
    """Croissant 1.0 JSON-LD, records.csv and PNGs of the job's decoded cache and split
    (``mathsym-zoo croissant``); ``verify`` reads the records back through mlcroissant.
    See :func:`mathsym_zoo.croissant.publish`."""
    from .croissant import publish

    return publish(job, out_dir, overwrite=overwrite, verify=verify)
