"""Data commands: ``info`` (metadata and statistics) and ``show`` (a contact sheet).

Both read the decoded cache (building it on first use) and never import TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import ConfigError, DataError
from .app import (JsonOpt, PluginsDirOpt, ProgressOpt, RegistryOpt, SetOpt, SourceOpt, StrictOpt, app, console,
                  err_console, escape, load_job, progress_enabled)
from .tables import Column, plain_table


def _dataset(source, registry, set_, plugins_dir, strict, progress):
    from ..data.cache import load_dataset

    job = load_job(registry, source, set_, plugins_dir, strict)
    dataset = load_dataset(job, progress=progress_enabled(progress), console=err_console)
    return job, dataset


# -- info ------------------------------------------------------------------------


def dataset_stats(dataset) -> dict[str, Any]:
    """Statistics of a decoded dataset, for ``info`` (JSON-able)."""
    import statistics

    import numpy as np

    report = dataset.report
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    order = np.argsort(counts, kind="stable")
    return {
        "images": len(dataset),
        "classes": dataset.num_classes,
        "per_class": {"min": int(counts.min()), "median": float(statistics.median(counts.tolist())),
                      "max": int(counts.max())},
        "smallest_classes": {dataset.class_names[i]: int(counts[i]) for i in order[:5]},
        "largest_classes": {dataset.class_names[i]: int(counts[i]) for i in order[::-1][:3]},
        "image_sizes": report.get("sizes", {}),
        "image_modes": report.get("modes", {}),
        "cached_shape": list(dataset.input_shape),
        "groups": int(len(set(dataset.groups.tolist()) - {""})),
        "duplicates": report.get("duplicates", {}),
        "under_two_labels": report.get("conflicts", {}),
        "skipped": report.get("skipped", {}),
        "warnings": report.get("warnings", []),
        "cache": str(dataset.path),
    }


def _top(counter: dict, n: int = 3) -> str:
    items = list(counter.items())
    text = ", ".join(f"{k} ({v:,})" for k, v in items[:n])
    return text + (f", +{len(items) - n} more" if len(items) > n else "") if items else "-"


@app.command()
def info(
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
):
    """Dataset metadata (Croissant) and statistics: images, classes, sizes, duplicates."""
    job, dataset = _dataset(source, registry, set_, plugins_dir, strict, progress)
    try:
        metadata = job.build_source().metadata()
    except DataError as exc:
        err_console.print(f"[yellow]warning:[/] no metadata: {escape(str(exc))}", highlight=False, soft_wrap=True)
        metadata = None
    stats = dataset_stats(dataset)
    if json_out:
        console.print_json(json.dumps({"source": job.source.name, "metadata": metadata, "stats": stats}, default=str))
        return
    meta_rows: list[tuple[str, str]] = []
    if metadata:
        for key, label in (("name", "name"), ("date_published", "published"), ("license", "licence"),
                           ("url", "url"), ("citation", "citation"), ("version", "version"),
                           ("creators", "creators")):
            if metadata.get(key):
                meta_rows.append((label, str(metadata[key])))
        if metadata.get("description"):
            lines = [ln for ln in str(metadata["description"]).splitlines() if ln.strip()]
            meta_rows.append(("description", "\n".join(lines[:4]) + ("\n..." if len(lines) > 4 else "")))
    else:
        meta_rows.append(("metadata", "- (no Croissant file; set the source's `croissant`)"))
    pc = stats["per_class"]
    dup, conf = stats["duplicates"], stats["under_two_labels"]
    rows = [
        ("images", f"{stats['images']:,}"),
        ("classes", f"{stats['classes']}"),
        ("per class", f"min {pc['min']:,} / median {pc['median']:,g} / max {pc['max']:,}"),
        ("smallest classes", ", ".join(f"{k} ({v:,})" for k, v in stats["smallest_classes"].items())),
        ("largest classes", ", ".join(f"{k} ({v:,})" for k, v in stats["largest_classes"].items())),
        ("image sizes", _top(stats["image_sizes"])),
        ("image modes", _top(stats["image_modes"])),
        ("cached as", "x".join(str(d) for d in stats["cached_shape"]) + " uint8"),
        ("groups", f"{stats['groups']:,}" if stats["groups"] else "- (no group_pattern)"),
        ("exact duplicates", f"{dup.get('sets', 0):,} sets, {dup.get('images', 0):,} images "
                             f"({dup.get('extra_copies', 0):,} extra copies)"),
        ("under two labels", f"{conf.get('sets', 0):,} sets, {conf.get('images', 0):,} images"),
        ("skipped", _top(stats["skipped"], 5) if stats["skipped"] else "none"),
        ("cache", stats["cache"]),
    ]
    title = f"source {job.source.name!r} ({job.source.type})"
    if console.is_terminal:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for label, value in meta_rows:
            table.add_row(label, Text(value))
        table.add_section()
        for label, value in rows:
            table.add_row(label, Text(value))
        console.print(table)
    else:  # a pipe or a log: plain "label  value" lines
        print(title, file=console.file)
        print(plain_table([Column("", "label"), Column("", "value")],
                          [{"label": k, "value": v} for k, v in meta_rows + rows], header=False), file=console.file)
    for ex in conf.get("examples", [])[:5]:
        console.print(f"  same image as {escape(' / '.join(ex['labels']))}: {escape(', '.join(ex['paths']))}",
                      highlight=False, soft_wrap=True)


# -- show ------------------------------------------------------------------------


def choose(dataset, label: str | None, n: int, seed: int | None):
    """``n`` random indices (all classes, or one label), sorted by label."""
    import difflib

    import numpy as np

    if label is not None:
        if label not in dataset.class_names:
            close = difflib.get_close_matches(label, dataset.class_names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"--label {label!r} is not a class of this dataset.{hint} Classes: "
                              f"{', '.join(dataset.class_names[:30])}{' ...' if dataset.num_classes > 30 else ''}")
        pool = np.flatnonzero(dataset.labels == dataset.class_names.index(label))
    else:
        pool = np.arange(len(dataset))
    rng = np.random.default_rng(seed)
    picked = rng.choice(pool, size=min(n, len(pool)), replace=False)
    return picked[np.argsort(dataset.labels[picked], kind="stable")]


def contact_sheet(dataset, indices, *, scale: int = 3):
    """A PIL image: a grid of the chosen images, each captioned with its label."""
    import math

    from PIL import Image, ImageDraw, ImageFont

    h, w, _ = dataset.input_shape
    tw, th = w * scale, h * scale
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    caption, pad = 18, 6
    cols = max(1, min(len(indices), math.ceil(math.sqrt(len(indices) * 1.5))))
    rows = math.ceil(len(indices) / cols)
    sheet = Image.new("RGB", (cols * (tw + pad) + pad, rows * (th + caption + pad) + pad), (235, 235, 235))
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(indices):
        x = pad + (k % cols) * (tw + pad)
        y = pad + (k // cols) * (th + caption + pad)
        tile = _pil(dataset.images[i]).convert("RGB").resize((tw, th), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y))
        text = dataset.class_names[dataset.labels[i]]
        while len(text) > 3 and draw.textlength(text, font=font) > tw:
            text = text[:-2] + "…"
        draw.text((x + tw / 2, y + th + 2), text, fill=(20, 20, 20), font=font, anchor="ma")
    return sheet


def _pil(array):
    import numpy as np
    from PIL import Image

    array = np.asarray(array)
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def terminal_preview(dataset, indices, width: int, tile: int = 22):
    """Rich renderables drawing the images with half-block characters (two pixel rows per line)."""
    import numpy as np
    from PIL import Image
    from rich.style import Style
    from rich.text import Text

    per_row = max(1, (width + 2) // (tile + 2))
    blocks = []
    for start in range(0, len(indices), per_row):
        row = indices[start:start + per_row]
        tiles = [np.asarray(_pil(dataset.images[i]).convert("RGB").resize((tile, tile), Image.Resampling.BOX))
                 for i in row]
        text = Text()
        for y in range(0, tile, 2):
            for t, pix in enumerate(tiles):
                for x in range(tile):
                    top = pix[y, x]
                    bottom = pix[y + 1, x] if y + 1 < tile else top
                    text.append("▀", Style(color=f"rgb({top[0]},{top[1]},{top[2]})",
                                           bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"))
                if t < len(tiles) - 1:
                    text.append("  ")
            text.append("\n")
        for t, i in enumerate(row):
            name = dataset.class_names[dataset.labels[i]][:tile]
            text.append(name.center(tile) + ("  " if t < len(row) - 1 else ""), style="bold")
        blocks.append(text)
    return blocks


@app.command()
def show(
    source: SourceOpt = None,
    label: Annotated[Optional[str], typer.Option("--label", "-l", metavar="LABEL", help="Only images of this class.")] = None,
    n: Annotated[int, typer.Option("-n", "--count", metavar="N", min=1, max=1000, help="Number of images.")] = 16,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write a PNG contact sheet here "
                                                                    "(default: preview in the terminal).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", metavar="N", help="Random seed for the choice (default: random).")] = None,
    registry: RegistryOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    progress: ProgressOpt = True,
):
    """Random images with their labels: a PNG contact sheet (--out) or a terminal preview."""
    job, dataset = _dataset(source, registry, set_, plugins_dir, strict, progress)
    indices = choose(dataset, label, n, seed)
    if out is not None:
        if out.suffix.lower() != ".png":
            raise ConfigError(f"--out {str(out)!r}: the contact sheet is a PNG; use a name ending in .png")
        if out.parent and not out.parent.exists():
            raise ConfigError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist; create it first")
        sheet = contact_sheet(dataset, indices)
        tmp = out.with_name(f".{out.name}.tmp")
        sheet.save(tmp, format="PNG")
        tmp.replace(out)
        console.print(f"wrote {escape(str(out))}: {len(indices)} images of {job.source.name!r}, "
                      f"{sheet.width}x{sheet.height} px", highlight=False)
        return
    for block in terminal_preview(dataset, indices, console.width):
        console.print(block, crop=False, no_wrap=True)
    console.print(f"{len(indices)} random images of {job.source.name!r}"
                  + (f" labelled {label!r}" if label else "") + "; --out sheet.png writes a PNG", highlight=False)


# -- croissant -------------------------------------------------------------------


@app.command()
def croissant(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", show_default=False,
                                      help="Folder to write (croissant.json, records.csv, images/).")] = ...,
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    set_: SetOpt = None,
    plugins_dir: PluginsDirOpt = None,
    strict: StrictOpt = False,
    progress: ProgressOpt = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Read every record back through mlcroissant and "
                                                          "compare the counts per side with the split.")] = False,
):
    """Share the decoded data and its split as Croissant 1.0 (JSON-LD + PNGs + records.csv).

    Another tool loads the same split with mlcroissant: record set "samples"
    (image, label, group, side, source path, checksums). Licence and citation
    come from the source's own metadata where it has them.
    """
    from ..croissant import publish

    job = load_job(registry, source, set_, plugins_dir, strict)
    result = publish(job, out, overwrite=force, verify=verify, progress=progress_enabled(progress))
    counts = result["counts"]
    console.print(f"wrote {escape(str(result['path']))}: " + ", ".join(f"{s} {n:,}" for s, n in counts.items())
                  + f" images, split {result['split_hash'][:12]}", highlight=False, soft_wrap=True)
    if result["metadata_note"]:
        err_console.print(f"[yellow]note:[/] {escape(result['metadata_note'])}", highlight=False, soft_wrap=True)
    for warning in result["warnings"]:
        err_console.print(f"[yellow]mlcroissant warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if verify:
        same = result["loaded"] == counts
        console.print("read back through mlcroissant: " + ", ".join(f"{s} {n:,}" for s, n in result["loaded"].items())
                      + (" (equal to the split)" if same else " [bold red](differs from the split)[/]"), highlight=False)
        if not same:
            raise typer.Exit(1)
