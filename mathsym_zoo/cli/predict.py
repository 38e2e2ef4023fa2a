"""``predict`` and ``export``: use a trained model on new images, ship it."""

from __future__ import annotations

import csv
import io
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import (JsonOpt, PluginsDirOpt, ProgressOpt, RegistryOpt, StrictOpt, TtaOpt, app, console, err_console, escape,
                  load_plugins, progress_enabled)

#: Up to this many images get one table each; more get one summary table (a row per image).
PER_IMAGE_TABLES = 20

ModelRunArg = Annotated[str, typer.Argument(
    metavar="RUN", show_default=False,
    help="A run folder, a .keras file with run.json beside it, or an export folder.")]


class ExportFormat(str, Enum):
    saved_model = "saved_model"
    tflite = "tflite"
    onnx = "onnx"


class Quantization(str, Enum):
    dynamic = "dynamic"
    float16 = "float16"


def _write_output(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically; ``-`` is stdout."""
    if path == "-":
        typer.echo(text, nl=False)
        return
    from ..fileio import atomic_write_text

    atomic_write_text(Path(path), text)


def predictions_json(preds, model: str, top_k: int) -> str:
    from ..fileio import finite_json

    ok = [p.to_dict() for p in preds if p.ok]
    errors = [p.to_dict() for p in preds if not p.ok]
    data = {"model": model, "top_k": top_k, "count": len(preds), "failed": len(errors),
            "predictions": ok, "errors": errors}
    return json.dumps(finite_json(data), indent=2, allow_nan=False) + "\n"  # NaN is not JSON: null


def predictions_csv(preds, top_k: int) -> str:
    """One row per input: path, label_1, probability_1, ..., error."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["path"]
    for i in range(1, top_k + 1):
        header += [f"label_{i}", f"probability_{i}"]
    writer.writerow(header + ["error"])
    for p in preds:
        row = [p.source]
        for i in range(top_k):
            row += [p.labels[i], f"{p.probabilities[i]:.6f}"] if i < len(p.labels) else ["", ""]
        writer.writerow(row + [p.error or ""])
    return buf.getvalue()


def _per_image_table(p):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ..labels import latex_for

    table = Table(show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("LaTeX")
    table.add_column("probability", justify="right")
    for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), 1):
        table.add_row(str(rank), escape(label), escape(latex_for(label)), f"{prob:.4f}")
    # The path above the table, not as its title: a title wraps at the table's width.
    return Group(Text(p.source, style="italic", no_wrap=True, overflow="ignore"), table)


def _summary_table(preds):
    from rich.table import Table

    table = Table(title=f"{len(preds)} images")
    table.add_column("image", overflow="fold")
    table.add_column("top-1")
    table.add_column("p", justify="right")
    table.add_column("next", overflow="fold")
    for p in preds:
        rest = ", ".join(f"{escape(lab)} {prob:.3f}" for lab, prob in zip(p.labels[1:], p.probabilities[1:]))
        table.add_row(escape(p.source), escape(p.label), f"{p.probability:.4f}", rest)
    return table


def _run_predictions(clf, items, top_k: int, batch_size: int, show_progress: bool):
    gen = clf.iter_predict(items, top_k=top_k, batch_size=batch_size)
    if not show_progress:
        return list(gen)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    preds = []
    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("predict", total=len(items))
        for p in gen:
            preds.append(p)
            progress.advance(task)
    return preds


@app.command()
def predict(
    model: ModelRunArg,
    inputs: Annotated[list[str], typer.Argument(metavar="IMAGE_OR_DIR", show_default=False,
                                                help="Image files and folders (searched recursively).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", metavar="K", min=1, help="Labels to show per image.")] = 5,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV on stdout instead of tables.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", show_default=False, help=(
        "Write the JSON or CSV here instead of stdout (the format follows --json/--csv, else the "
        ".json/.csv ending)."))] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", metavar="N", min=1, help="Images per model call.")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No tables; errors and files only.")] = False,
    tta: TtaOpt = 1,
    progress: ProgressOpt = True,
    registry: RegistryOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
):
    """Top-k labels for images, with the model's own preprocessing.

    Exit code 0 when every input was predicted, 1 when some files failed
    (each gets one error line on stderr).
    """
    fmt = _output_format(json_out, csv_out, out)
    from ..predict import expand_inputs, load_classifier

    # Local plugins (registry plugin_paths, --plugins-dir) may provide the run's preprocessing steps.
    clf = load_classifier(model, warm_batch=batch_size, plugins=load_plugins(plugins_dir, strict, registry), tta=tta)
    items, skipped = expand_inputs(inputs)
    if not items:
        err_console.print(f"[bold red]error:[/] no image files in {escape(', '.join(inputs))}"
                          + (f" ({skipped} other files skipped)" if skipped else ""), highlight=False)
        raise typer.Exit(1)
    show_progress = progress_enabled(progress) and len(items) > batch_size
    preds = _run_predictions(clf, items, top_k, batch_size, show_progress)
    ok = [p for p in preds if p.ok]
    failed = [p for p in preds if not p.ok]

    to_stdout = fmt is not None and out is None
    if not quiet and not to_stdout and ok:
        if len(ok) <= PER_IMAGE_TABLES:
            for p in ok:
                console.print(_per_image_table(p))
        else:
            console.print(_summary_table(ok))
    k = min(top_k, clf.num_classes)
    if fmt is not None:
        text = predictions_json(preds, model, k) if fmt == "json" else predictions_csv(preds, k)
        _write_output(str(out) if out is not None else "-", text)
    for p in failed:
        err_console.print(f"[bold red]error:[/] {escape(p.source)}: {escape(p.error)}", highlight=False, soft_wrap=True)
    if not to_stdout:
        note = f"{len(ok)} predicted, {len(failed)} failed"
        if skipped:
            note += f", {skipped} non-image files in folders skipped"
        if out is not None:
            note += f"; results in {out}"
        err_console.print(note, highlight=False, markup=False)
    if failed:
        raise typer.Exit(1)


def _output_format(json_out: bool, csv_out: bool, out: Path | None) -> str | None:
    """"json", "csv" or None (tables) from --json, --csv and the --out file name."""
    if json_out and csv_out:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--json/--csv")
    if json_out or csv_out:
        return "json" if json_out else "csv"
    if out is None:
        return None
    if out.suffix.lower() in (".json", ".csv"):
        return out.suffix.lower()[1:]
    raise typer.BadParameter(f"{str(out)!r}: say --json or --csv, or use a name ending in .json or .csv",
                             param_hint="--out")


@app.command()
def export(
    model: ModelRunArg,
    out: Annotated[Path, typer.Option("--out", "-o", show_default=False, help="Export folder to create.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="What to export.")] = ExportFormat.saved_model,
    quantize: Annotated[Optional[Quantization], typer.Option(
        "--quantize", show_default=False, help="TFLite only: weight quantization.")] = None,
    check: Annotated[Optional[list[str]], typer.Option(
        "--check", metavar="PATH", help="Images or folders to compare the export with the Keras model on. Repeatable.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
    registry: RegistryOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
):
    """Export a run as a TensorFlow SavedModel, TFLite or ONNX file, with labels and metadata.

    The SavedModel's default signature takes encoded image files (any size and
    mode) and runs the run's offline preprocessing inside the graph; every
    format also takes the preprocessed uint8 image (model_info.json says
    which). The export is reloaded and compared with the Keras model on the
    --check images (for a SavedModel also through the image-bytes signature on
    the files themselves), or on synthetic inputs when none are given.
    """
    from rich.table import Table

    from ..export import export as do_export, synthetic_inputs
    from ..modelinfo import format_size

    fmt = ExportFormat(fmt).value
    quantize = Quantization(quantize).value if quantize is not None else None

    # Without real images, a deterministic batch of random strokes still checks the numerics.
    result = do_export(model, fmt, quantize, out, overwrite=force, check=check or synthetic_inputs,
                       plugins=load_plugins(plugins_dir, strict, registry))
    c = result.check
    table = Table(title=f"export: {escape(str(result.path))}", show_header=False, title_justify="left")
    table.add_row("format", fmt + (f" ({quantize})" if quantize else ""))
    table.add_row("model", escape(str(result.model_path)))
    change = result.size_bytes / result.keras_size_bytes if result.keras_size_bytes else float("nan")
    table.add_row("size", f"{format_size(result.size_bytes)} ({change:.2f}x the .keras file, "
                          f"{format_size(result.keras_size_bytes)})")
    where = f"{c['images']} {'given' if check else 'synthetic'} images"
    table.add_row("top-1 agreement", f"{c['top1_agreement']:.2%} on {where}")
    table.add_row("max |Δp|", f"{c['max_abs_diff']:.2e}")
    if "image_bytes" in c:
        b = c["image_bytes"]
        table.add_row("image bytes → top-1", f"{b['top1_agreement']:.2%} on {b['images']} files "
                      f"(max |Δp| {b['max_abs_diff']:.2e}, pixels within {b['pixels_max_diff']} grey levels of predict's)")
    elif not result.info.get("image_bytes_signature", {}).get("available", fmt != "saved_model"):
        reason = result.info.get("image_bytes_signature", {}).get("reason", "")
        table.add_row("image bytes", escape(f"no image-bytes signature: {reason}"))
    table.add_row("labels", escape(str(result.path / 'labels.txt')))
    console.print(table)
