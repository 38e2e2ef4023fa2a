"""Split and training commands: ``split``, ``train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ConfigError, ZooError
from .app import (JsonOpt, PluginsDirOpt, ProgressOpt, RecipeOpt, RegistryOpt, SetOpt, SourceOpt, StrictOpt, app, console,
                  escape, load_job, load_plugins, progress_enabled)
from .tables import Column, print_table


@app.command()
def split(
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    progress: ProgressOpt = True,
    classes: Annotated[bool, typer.Option("--classes/--no-classes", help="Show the per-class table.")] = True,
    json_out: JsonOpt = False,
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
    side_rows = [{"side": s, "images": f"{len(sp.indices[s]):,}", "share": f"{len(sp.indices[s]) / total:.1%}",
                  "classes": str(int((counts[s] > 0).sum()))} for s in SIDES]
    print_table(console, [Column("side", "side", no_wrap=True), Column("images", "images", right=True),
                          Column("share", "share", right=True), Column("classes present", "classes", right=True)],
                side_rows, title=f"split {sp.hash[:12]} of {job.source.name} ({total} images)")
    if classes:
        class_rows = [{"class": name, **{s: f"{int(counts[s][i]):,}" for s in SIDES}}
                      for i, name in enumerate(dataset.class_names)]
        print_table(console, [Column("class", "class", no_wrap=True)] + [Column(s, s, right=True) for s in SIDES],
                    class_rows, title="per class")
    for note in sp.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"hash   {sp.hash}\nfile   {sp.path}", highlight=False, soft_wrap=True)


def _display(job, live: bool) -> list:
    from .progress import training_display

    return training_display(console, live=live, batch_size=job.train.batch_size, epochs=job.train.epochs)


def _log(line: str) -> None:
    console.print(escape(line), highlight=False, soft_wrap=True)


@app.command()
def train(
    model: Annotated[Optional[str], typer.Argument(metavar="MODEL", show_default=False, help=(
        "A model entry of the registry ([models.NAME]), or an architecture name."))] = None,
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    recipe: RecipeOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    resume: Annotated[Optional[Path], typer.Option("--resume", metavar="RUN", help=(
        "Continue a run from its last completed epoch; with --set train.epochs=N, extend a finished one."))] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", metavar="RUN", help=(
        "Start from another run's weights (fine-tuning; a new classifier layer when the classes differ)."))] = None,
    progress: ProgressOpt = True,
):
    """Train one model on the job's split and write a run folder (or resume or extend one)."""
    live = progress_enabled(progress)
    if resume is not None:
        if model or source or recipe or init_from:
            raise ConfigError("--resume continues a run with its recorded model, data and settings; drop MODEL, "
                              "--source, --recipe and --init-from (use --set train.epochs=N to extend it)")
        result = _resume(resume, set_, plugins_dir, strict, registry, live)
    else:
        if not model:
            raise ConfigError("name the model to train, e.g. `mathsym-zoo train notebook-cnn` "
                              "(`mathsym-zoo models` lists them), or pass --resume RUN")
        job = load_job(registry, source, set_, plugins_dir, strict, recipe=recipe)
        job.model(model)  # fail fast on an unknown name, before TensorFlow loads
        from ..data.cache import load_dataset
        from ..training import train_model

        dataset = load_dataset(job, progress=live)
        result = train_model(job, model, init_from=init_from, dataset=dataset, callbacks=_display(job, live), log=_log)
    console.print(escape(result.summary_line()), highlight=False, soft_wrap=True)
    console.print(f"run folder: {escape(str(result.run_dir))}", highlight=False, soft_wrap=True)


def _resume(run_dir: Path, sets, plugins_dir, strict, registry, live: bool):
    from ..runs import Run
    from ..training import resume_run

    run = Run.open(run_dir)
    plugins = load_plugins(plugins_dir, strict, registry) if plugins_dir else None
    probe = run.job(plugins=plugins, overrides=sets or ())
    return resume_run(run.path, overrides=sets or (), job=probe, callbacks=_display(probe, live), log=_log)


@app.command()
def runs(
    folders: Annotated[Optional[list[Path]], typer.Argument(metavar="DIR", show_default=False, help=(
        "Runs or comparison folders to search (default: the registry's runs and comparisons folders)."))] = None,
    registry: RegistryOpt = None,
    json_out: JsonOpt = False,
):
    """List runs: model, source, split hash, status, epochs, best validation top-1, created."""
    from ..runs import find_runs

    roots = list(folders or ())
    if not roots:
        try:
            job = load_job(registry, check_plugins=False)
            roots = [job.runs_dir, job.comparisons_dir]
        except ZooError:
            roots = [Path("runs"), Path("comparisons")]
    rows = [r.summary() for r in find_runs(roots)]
    if json_out:
        console.print_json(json.dumps(rows))
        return
    if not rows:
        console.print(f"no runs under {', '.join(str(r) for r in roots)}; `mathsym-zoo train MODEL` makes one",
                      highlight=False, soft_wrap=True)
        return
    console.print(_runs_table(rows, console.width, console.is_terminal))
    for r in rows:
        if ":" in r["status"]:  # a failure reason: under the table, whole
            console.print(f"{escape(_short_path(r['run']))}: {escape(r['status'])}", highlight=False, soft_wrap=True)


def _short_path(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _runs_table(rows: list[dict], width: int, terminal: bool):
    from rich import box
    from rich.table import Table

    cols = [("run", "run"), ("model", "model"), ("source", "source"), ("split", "split_hash"),
            ("status", "status"), ("epochs", "epochs"), ("best val", "best_val_top1"), ("created", "created")]
    if width < 110:  # fold: drop the columns a narrow terminal can least afford
        cols = [c for c in cols if c[0] not in ("created", "split")]
    table = Table(box=box.SIMPLE if terminal else None, show_edge=False, pad_edge=False)
    for title, key in cols:
        table.add_column(title, justify="right" if key in ("epochs", "best_val_top1") else "left",
                         overflow="fold")
    for r in rows:
        cells = {**r, "run": _short_path(r["run"]), "status": r["status"].split(":")[0],
                 "split_hash": (r.get("split_hash") or "-")[:12],
                 "best_val_top1": f"{r['best_val_top1']:.3f}" if r.get("best_val_top1") is not None else "-",
                 "created": (r.get("created") or "-")[:16], "source": r.get("source") or "-"}
        table.add_row(*(escape(str(cells.get(key, "-"))) for _, key in cols))
    return table
