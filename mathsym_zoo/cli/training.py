"""Split and training commands: ``split``, ``train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import ConfigError
from .app import (PluginsDirOpt, ProgressOpt, RegistryOpt, SetOpt, SourceOpt, StrictOpt, app, console, load_job,
                  progress_enabled)


@app.command()
def split(
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    progress: ProgressOpt = True,
    classes: Annotated[bool, typer.Option("--classes/--no-classes", help="Show the per-class table.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
):
    """Build (or read) the persisted split and show its hash and counts per side and class."""
    import warnings

    from ..data.cache import load_dataset
    from ..data.split import SIDES, SmallClassWarning, load_split

    job = load_job(registry, source, set_, plugins_dir, strict)
    dataset = load_dataset(job, progress=progress_enabled(progress))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallClassWarning)  # shown below, from the split's notes
        sp = load_split(dataset, job.split)
    counts = sp.counts(dataset.labels, dataset.num_classes)
    if json_out:
        console.print_json(json.dumps({
            "hash": sp.hash, "path": str(sp.path), "sizes": sp.sizes(), "notes": list(sp.notes),
            "small_classes": list(sp.small_classes),
            "class_counts": {s: {n: int(counts[s][i]) for i, n in enumerate(dataset.class_names)} for s in SIDES},
        }))
        return
    total = len(dataset)
    sides = Table(title=f"split {sp.hash[:12]} of {job.source.name} ({total} images)")
    for col in ("side", "images", "share", "classes present"):
        sides.add_column(col, justify="right" if col != "side" else "left")
    for s in SIDES:
        n = int(len(sp.indices[s]))
        sides.add_row(s, f"{n:,}", f"{n / total:.1%}", str(int((counts[s] > 0).sum())))
    console.print(sides)
    if classes:
        table = Table(title="per class")
        table.add_column("class")
        for s in SIDES:
            table.add_column(s, justify="right")
        for i, name in enumerate(dataset.class_names):
            table.add_row(name, *(f"{int(counts[s][i]):,}" for s in SIDES))
        console.print(table)
    for note in sp.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"hash   {sp.hash}\nfile   {sp.path}", highlight=False, soft_wrap=True)


@app.command()
def train(
    model: Annotated[Optional[str], typer.Argument(help="A [models.X] entry of the registry, or an architecture name.")] = None,
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue an interrupted run folder from its last completed epoch.")] = None,
    progress: ProgressOpt = True,
):
    """Train one model on the job's split and write a run folder (or resume one)."""
    live = progress_enabled(progress)
    if resume is not None:
        if model or source or set_:
            raise ConfigError("--resume continues a run with its recorded settings; drop MODEL, --source and --set")
        from ..train import job_from_run, resume_run
        from .app import load_plugins

        plugins = load_plugins(plugins_dir, strict, registry) if plugins_dir else None
        job = job_from_run(resume, plugins=plugins)
        result = resume_run(resume, job=job, progress=live, console=console)
    else:
        if not model:
            raise ConfigError("name the model to train, e.g. `mathsym-zoo train notebook-cnn` "
                              "(`mathsym-zoo models` lists them), or pass --resume RUN_DIR")
        job = load_job(registry, source, set_, plugins_dir, strict)
        job.model(model)  # fail fast on an unknown name, before TensorFlow loads
        from ..train import train_model

        result = train_model(job, model, progress=live, console=console)
    console.print(f"run folder: {result.run_dir}", highlight=False, soft_wrap=True)
