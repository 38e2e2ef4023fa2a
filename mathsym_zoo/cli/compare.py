"""``compare``, ``ensemble`` and ``evaluate``: zoo models on one split, their seeds averaged, saved models on any source."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ZooError
from ..fileio import finite_json
from .app import (JsonOpt, PluginsDirOpt, ProgressOpt, RecipeOpt, RegistryOpt, RunArg, SetOpt, Side, SourceOpt, StrictOpt, TtaOpt,
                  ZooCommand, app, console, escape, load_job, load_plugins, progress_enabled)

#: What a bare ``--resume`` stands for: the newest comparison of the source (or --out).
RESUME_LATEST = ":latest:"


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).expanduser().is_dir()


class _ResumeCommand(ZooCommand):
    """Lets ``--resume`` stand alone or take a folder.

    Typer options always take a value, so a bare ``--resume`` (last, before
    another option, or before a model name) gets :data:`RESUME_LATEST` inserted;
    ``--resume DIR`` keeps DIR when it looks like a path (has a slash or exists).
    """

    def parse_args(self, ctx, args):
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--resume":
                nxt = args[i + 1] if i + 1 < len(args) else None
                if nxt is None or nxt.startswith("-") or not _looks_like_path(nxt):
                    args.insert(i + 1, RESUME_LATEST)
                break
        return super().parse_args(ctx, args)


ModelsArg = Annotated[Optional[list[str]], typer.Argument(
    metavar="MODEL", help="Model entries of the registry, or architecture names (default: every model in the registry).",
    show_default=False)]
ResumeOpt = Annotated[Optional[str], typer.Option(
    "--resume", metavar="[DIR]", show_default=False,
    help="Continue a comparison: finished models are skipped, an interrupted one resumes. Alone: the --out folder, "
         "else the newest comparison of the source; with a folder: that one.")]
SeedsOpt = Annotated[Optional[int], typer.Option(
    "--seeds", min=1, show_default=False,
    help="Train each model with N seeds (train.seed + 0..N-1) on the same split; report mean ± sd and min-max of "
         "every score and McNemar per seed (default 1; a resumed comparison keeps its own).")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Comparison folder (default: <comparisons_dir>/<source>-<time>/).", show_default=False)]


@app.command(cls=_ResumeCommand)
def compare(
    models: ModelsArg = None,
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    recipe: RecipeOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    resume: ResumeOpt = None,
    out: OutOpt = None,
    seeds: SeedsOpt = None,
    progress: ProgressOpt = True,
):
    """Train models on the same cache and split, evaluate each on test, print a leaderboard and write a report."""
    import time

    from ..compare import compare as run_compare
    from ..data.cache import load_dataset
    from ..report import leaderboard_table, spread_table, write_comparison_report
    from .progress import training_display

    started = time.perf_counter()
    live = progress_enabled(progress)
    job = load_job(registry, source, set_, plugins_dir, strict, recipe=recipe)
    if resume is None:
        resume_arg: bool | Path = False
    elif resume == RESUME_LATEST:
        resume_arg = True
    else:
        resume_arg = Path(resume)
    dataset = load_dataset(job, progress=live)
    result = run_compare(job, models or None, out_dir=out, resume=resume_arg, dataset=dataset,
                         log=lambda line: console.print(escape(line), highlight=False, soft_wrap=True),
                         callbacks=lambda: training_display(console, live=live, batch_size=job.train.batch_size,
                                                            epochs=job.train.epochs), seeds=seeds)
    write_comparison_report(result)
    n = result.rows[0]["n_test"] if result.rows else 0
    title = f"{job.source.name}: {len(result.rows)} models on the same {n} test images"
    if result.seeds > 1:
        console.print(spread_table(result.rows, title=f"{title}, {result.seeds} seeds each", width=console.width))
    else:
        console.print(leaderboard_table(result.rows, title=title, width=console.width))
    for name, scores in result.ensembles.items():
        console.print(f"{escape(name)}, its {scores['members']} seeds averaged: top-1 {scores['top1']:.2%}, macro "
                      f"recall {scores['balanced_accuracy']:.2%}, macro-F1 {scores['macro_f1']:.2%} "
                      f"(one model: mathsym-zoo ensemble {escape(str(result.path))}"
                      f"{' --model ' + escape(name) if len(result.ensembles) > 1 else ''})",
                      highlight=False, soft_wrap=True)
    if result.skipped:
        console.print(f"finished earlier, not trained again: {', '.join(result.skipped)}", highlight=False)
    wall = time.perf_counter() - started
    if result.seeds > 1:
        console.print(f"per seed {result.seeds_csv}", highlight=False, soft_wrap=True)
    console.print(f"report   {result.report_path}\nresults  {result.results_json}\n         {result.results_csv}\n"
                  f"time     {wall:.0f}s", highlight=False, soft_wrap=True)


@app.command()
def ensemble(
    members: Annotated[list[Path], typer.Argument(metavar="RUN", show_default=False, help=(
        "Finished run folders on one split (an ensemble run: its members), or a comparison folder "
        "(`compare --seeds N`): its seed runs."))],
    model: Annotated[Optional[str], typer.Option("--model", "-m", show_default=False, help=(
        "With a comparison folder of several models: which model's seeds."))] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", show_default=False, help=(
        "Run folder to write (default: <runs_dir>/<model>-ensemble<N>-<time>/)."))] = None,
    registry: RegistryOpt = None,
):
    """Average finished runs (e.g. the seeds of a comparison) into one model, saved as a run folder.

    The new run's model takes each image once and returns the mean of the members'
    probabilities; evaluate, predict, export and serve use it like any run.
    """
    from ..ensemble import build_ensemble, ensemble_name, member_runs
    from ..runs import new_run_path

    runs_ = member_runs(members, model=model)
    if out is None:
        try:
            runs_dir = load_job(registry, check_plugins=False).runs_dir
        except ZooError:
            runs_dir = Path("runs")
        out = new_run_path(runs_dir, ensemble_name(runs_))
    console.print(f"averaging {len(runs_)} runs: " + ", ".join(escape(str(r.path)) for r in runs_),
                  highlight=False, soft_wrap=True)
    run = build_ensemble(runs_, out, log=lambda line: console.print(escape(line), highlight=False))
    console.print(f"run folder: {escape(str(run.path))}\nscore it   mathsym-zoo evaluate {escape(str(run.path))}",
                  highlight=False, soft_wrap=True)


@app.command()
def evaluate(
    run: RunArg,
    source: Annotated[Optional[str], typer.Option("--source", "-s", metavar="SOURCE", show_default=False, help=(
        "Evaluate on another source: an entry of the registry, a source plugin, or a path (default: the run's "
        "own recorded source and split)."))] = None,
    side: Annotated[Side, typer.Option("--side", help="Which images: test or val of the split, or all.")] = Side.test,
    tta: TtaOpt = 1,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", show_default=False, help=(
        "Output folder (default: <run>/evaluations/<source>-<side>/)."))] = None,
    registry: RegistryOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
):
    """Evaluate a run: scores, speed and an HTML report.

    Without --source, on the run's own source and split (the split hash is
    checked, so "test" holds no training image). With --source, on another
    source; the output says so. Labels the model doesn't know are reported
    and left out of the scores.
    """
    from ..api import refresh_model_card
    from ..evaluate import evaluate as run_evaluate
    from ..report import leaderboard_table, write_evaluation_report
    from ..runs import Run

    side = Side(side).value
    the_run = Run.open(run, require_record=False)
    if source or not the_run.info.get("job"):
        job = load_job(registry, source, set_, plugins_dir, strict)
    else:  # the run's own job; --set may change e.g. data.cache_dir, the recorded split is still checked
        job = the_run.job(plugins=load_plugins(plugins_dir, strict, registry), overrides=set_ or ()) if set_ else None
    evaluation, folder = run_evaluate(the_run, job=job, side=side, out_dir=out, progress=progress_enabled(progress),
                                      tta=tta)
    refresh_model_card(the_run, evaluation)
    report = write_evaluation_report(folder, evaluation, evaluation.dataset, run=the_run)
    where = job.source.name if job is not None else f"{the_run.source_name} (its training source)"
    if json_out:
        console.print_json(json.dumps(finite_json({
            "run": str(the_run.path), "source": job.source.name if job is not None else the_run.source_name,
            "training_source": evaluation.training_source, "side": side, "split_hash": evaluation.split_hash,
            "scores": evaluation.summary(), "notes": evaluation.notes, "report": str(report), "folder": str(folder)})))
        return
    row = {"rank": 1, "model": evaluation.model_name, "is_best": True, **evaluation.model_stats,
           **evaluation.summary()}
    console.print(leaderboard_table([row], title=f"{evaluation.model_name} on {where}, {side} side, "
                                                 f"{evaluation.metrics['n']} images", width=console.width))
    if evaluation.split_hash:
        console.print(f"split    {evaluation.split_hash[:12]}", highlight=False)
    for note in evaluation.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"report   {escape(str(report))}\nresults  {escape(str(folder / 'evaluation.json'))}",
                  highlight=False, soft_wrap=True)
