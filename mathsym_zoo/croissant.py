"""Dataset metadata from Croissant JSON-LD files (read with ``mlcroissant``).

mlcroissant takes most of a second to import and logs validation warnings
(for example a missing ``citeAs``) through absl; both stay out of the way:
the import happens on first use and the warnings are silenced while reading.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from .errors import DataError

FIELDS = ("name", "date_published", "license", "url", "citation", "description", "version", "creators")


@contextlib.contextmanager
def _quiet():
    loggers = [logging.getLogger(n) for n in ("absl", "mlcroissant")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _text(value: Any) -> str | None:
    """A plain string from mlcroissant's values (str, datetime, CreativeWork, lists)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [t for t in (_text(v) for v in value) if t]
        return "; ".join(parts) or None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat(sep=" ") if isinstance(value, _dt.datetime) else value.isoformat()
    if isinstance(value, str):
        return value.strip() or None
    name, url = getattr(value, "name", None), getattr(value, "url", None)
    if name or url:
        return f"{name} ({url})" if name and url else (name or url)
    return str(value)


def read_croissant(path: str | Path) -> dict[str, Any]:
    """Name, publication date, licence, URL, citation, description, version and
    creators of the dataset described by the Croissant file at ``path``
    (``None`` for fields the file lacks)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Croissant metadata file {str(path)!r} not found; fix the source's `croissant` path "
                        "or remove it")
    with _quiet():
        try:
            import mlcroissant as mlc

            meta = mlc.Dataset(jsonld=str(path)).metadata
        except Exception as exc:  # mlcroissant raises ValidationError, ValueError, JSON errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"Croissant metadata file {str(path)!r} could not be read: {first}; "
                            "check that it is Croissant JSON-LD (e.g. from the dataset page's Croissant export)") from None
    return {
        "name": _text(getattr(meta, "name", None)),
        "date_published": _text(getattr(meta, "date_published", None)),
        "license": _text(getattr(meta, "license", None)),
        "url": _text(getattr(meta, "url", None)),
        "citation": _text(getattr(meta, "cite_as", None)),
        "description": _text(getattr(meta, "description", None)),
        "version": _text(getattr(meta, "version", None)),
        "creators": _text(getattr(meta, "creators", None)),
        "file": str(path),
    }


# -- writing: the decoded cache and its split as a Croissant 1.0 dataset -------------------------

CROISSANT_FILE = "croissant.json"
RECORDS_FILE = "records.csv"
IMAGES_DIR = "images"
SIDES = ("train", "val", "test")

_CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField",
    "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}
#: Dataset-level keys copied as they are from the source's own Croissant file, when it has one.
_CARRIED = ("license", "creator", "publisher", "citeAs", "url", "datePublished", "dateModified", "keywords",
            "sameAs", "isAccessibleForFree")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_images(dataset, split, folder: Path) -> list[dict[str, str]]:
    """One PNG per image of the split (the cache's uint8 pixels, lossless), and a row per image."""
    from PIL import Image

    rows = []
    for side in SIDES:
        (folder / IMAGES_DIR / side).mkdir(parents=True, exist_ok=True)
        for index in split.indices[side]:
            name = f"{IMAGES_DIR}/{side}/{int(index):06d}.png"
            pixels = dataset.images[index]
            Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(folder / name)
            rows.append({"file": name, "label": dataset.class_names[dataset.labels[index]],
                         "label_index": str(int(dataset.labels[index])), "group": str(dataset.groups[index]),
                         "side": side, "source_path": str(dataset.paths[index]),
                         "pixels_sha1": str(dataset.hashes[index]), "png_sha256": _sha256(folder / name)})
    return rows


def _write_records(rows: list[dict[str, str]], path: Path) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["file"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _field(record_set: str, name: str, data_type: str, description: str, source: dict | None = None,
           **extra) -> dict[str, Any]:
    out = {"@type": "cr:Field", "@id": f"{record_set}/{name}", "name": name, "description": description,
           "dataType": data_type}
    if source is not None:
        out["source"] = source
    out.update(extra)
    return out


def _csv_column(column: str) -> dict[str, Any]:
    return {"fileObject": {"@id": RECORDS_FILE}, "extract": {"column": column}}


def _record_sets(dataset, split, shape) -> list[dict[str, Any]]:
    h, w, c = shape
    image_desc = f"{w}x{h} {'grey' if c == 1 else 'RGB'} PNG: the decoded cache's uint8 pixels after the offline preprocessing"
    images = {"@type": "cr:RecordSet", "@id": "images", "name": "images", "key": {"@id": "images/file"},
              "description": "The image files, by path.",
              "field": [
                  _field("images", "file", "sc:Text", "path of the PNG inside this folder",
                         {"fileSet": {"@id": "png-files"}, "extract": {"fileProperty": "fullpath"},
                          "transform": {"regex": f"^(?:.*/)?({IMAGES_DIR}/[^/]+/[^/]+)$"}}),
                  _field("images", "image", "sc:ImageObject", image_desc,
                         {"fileSet": {"@id": "png-files"}, "extract": {"fileProperty": "content"}})]}
    splits = {"@type": "cr:RecordSet", "@id": "splits", "name": "splits", "dataType": "cr:Split",
              "key": {"@id": "splits/name"},
              "description": f"The sides of split {split.hash[:12]} (full hash and settings in the dataset description).",
              "field": [_field("splits", "name", "sc:Text", "train, val or test")],
              "data": [{"splits/name": side} for side in SIDES]}
    classes = {"@type": "cr:RecordSet", "@id": "classes", "name": "classes", "key": {"@id": "classes/index"},
               "description": "Class names in the order of the models' outputs.",
               "field": [_field("classes", "index", "sc:Integer", "output index"),
                         _field("classes", "name", "sc:Text", "class name")],
               "data": [{"classes/index": i, "classes/name": name} for i, name in enumerate(dataset.class_names)]}
    col = _csv_column
    samples = {"@type": "cr:RecordSet", "@id": "samples", "name": "samples",
               "description": "One record per image: pixels, label, group and side of the split.",
               "field": [
                   _field("samples", "file", "sc:Text", "path of the PNG", col("file"),
                          references={"field": {"@id": "images/file"}}),
                   _field("samples", "image", "sc:ImageObject", image_desc, {"field": {"@id": "images/image"}}),
                   _field("samples", "label", "sc:Text", "class name", col("label")),
                   _field("samples", "label_index", "sc:Integer", "index into the classes record set",
                          col("label_index")),
                   _field("samples", "group", "sc:Text",
                          "group id (e.g. the source expression); images of one group are on one side; empty when none",
                          col("group")),
                   _field("samples", "side", "sc:Text", "train, val or test", col("side"),
                          references={"field": {"@id": "splits/name"}}),
                   _field("samples", "source_path", "sc:Text", "the member path in the original source",
                          col("source_path")),
                   _field("samples", "pixels_sha1", "sc:Text", "sha1 of the decoded pixels (the cache's hash)",
                          col("pixels_sha1")),
                   _field("samples", "png_sha256", "sc:Text", "sha256 of the PNG file", col("png_sha256"))]}
    return [images, splits, classes, samples]


def _dataset_fields(dataset, split, metadata: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """Name, description, licence, citation... from the source's metadata; the split in the description."""
    import datetime as dt
    import json

    meta = metadata or {}
    out: dict[str, Any] = {}
    raw_file = meta.get("file")
    if raw_file and Path(raw_file).is_file():  # the source's own Croissant: carry its fields verbatim
        raw = json.loads(Path(raw_file).read_text(encoding="utf-8"))
        out.update({k: raw[k] for k in _CARRIED if k in raw})
    for key, croissant_key in (("license", "license"), ("url", "url"), ("citation", "citeAs"),
                               ("date_published", "datePublished")):
        if meta.get(key) and croissant_key not in out:
            out[croissant_key] = meta[key]
    cfg = split.config
    counts = {side: int(len(split.indices[side])) for side in SIDES}
    settings = ", ".join(f"{k}={v}" for k, v in cfg.items())
    source_text = meta.get("description") or f"Images of the source {name!r}."
    out["name"] = f"{meta.get('name') or name} (decoded, split {split.hash[:12]})"
    out["description"] = (
        f"{source_text}\n\nDecoded by mathsym-zoo into {dataset.input_shape[1]}x{dataset.input_shape[0]} "
        f"uint8 images (offline preprocessing: {', '.join(p['type'] for p in dataset.preprocessing) or 'none'}), "
        f"dataset key {dataset.key}. Split hash {split.hash} ({settings}): "
        + ", ".join(f"{side} {n}" for side, n in counts.items())
        + f". Source identity: {json.dumps(dataset.source, sort_keys=True, default=str)}.")
    out["version"] = str(meta.get("version") or "1.0.0")
    out.setdefault("datePublished", dt.date.today().isoformat())
    return out


def croissant_document(dataset, split, metadata: dict[str, Any] | None, name: str,
                       records_sha256: str) -> dict[str, Any]:
    """The Croissant 1.0 JSON-LD of a folder written by :func:`write_croissant`."""
    return {
        "@context": _CONTEXT, "@type": "sc:Dataset", "conformsTo": "http://mlcommons.org/croissant/1.0",
        **_dataset_fields(dataset, split, metadata, name),
        "distribution": [
            {"@type": "cr:FileObject", "@id": RECORDS_FILE, "name": RECORDS_FILE, "contentUrl": RECORDS_FILE,
             "encodingFormat": "text/csv", "sha256": records_sha256,
             "description": "one row per image: file, label, group, side, source path, checksums"},
            {"@type": "cr:FileSet", "@id": "png-files", "name": "png-files", "encodingFormat": "image/png",
             "includes": f"{IMAGES_DIR}/*/*.png",
             "description": "the decoded images; each file's sha256 is in records.csv"},
        ],
        "recordSet": _record_sets(dataset, split, dataset.input_shape),
    }


def write_croissant(dataset, split, out_dir: str | Path, *, metadata: dict[str, Any] | None = None,
                    name: str = "dataset", overwrite: bool = False) -> Path:
    """Write ``out_dir`` with ``croissant.json``, ``records.csv`` and ``images/<side>/*.png``.

    ``metadata``: the source's :meth:`metadata` (licence, citation... are carried over; with a
    ``file`` key, the fields of that Croissant file verbatim). The folder is written to a
    temporary sibling and renamed into place. Returns the path of ``croissant.json``.
    """
    import json
    import shutil
    import tempfile

    from .errors import ConfigError
    from .fileio import json_default

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ConfigError(f"{str(out)!r} already exists; choose another --out or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        rows = _write_images(dataset, split, tmp)
        _write_records(rows, tmp / RECORDS_FILE)
        doc = croissant_document(dataset, split, metadata, name, _sha256(tmp / RECORDS_FILE))
        (tmp / CROISSANT_FILE).write_text(json.dumps(doc, indent=2, default=json_default) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / CROISSANT_FILE


def load_records(jsonld: str | Path, record_set: str = "samples") -> tuple[list[dict[str, Any]], list[str]]:
    """Records of ``record_set`` read back through mlcroissant, and its validation warnings."""
    import mlcroissant as mlc

    with _quiet():
        dataset = mlc.Dataset(jsonld=str(jsonld))
        warnings_ = [str(w) for w in dataset.metadata.ctx.issues.warnings]
        records = list(dataset.records(record_set=record_set))
    return records, warnings_


def validate(jsonld: str | Path) -> list[str]:
    """mlcroissant's validation warnings for a Croissant file (errors raise DataError)."""
    import mlcroissant as mlc

    with _quiet():
        try:
            dataset = mlc.Dataset(jsonld=str(jsonld))
        except Exception as exc:  # mlcroissant raises ValidationError and others
            raise DataError(f"{str(jsonld)!r} is not valid Croissant: {str(exc).strip()[:500]}") from None
        return [str(w) for w in dataset.metadata.ctx.issues.warnings]


def side_counts(records: list[dict[str, Any]], record_set: str = "samples") -> dict[str, int]:
    counts = {side: 0 for side in SIDES}
    for record in records:
        side = record[f"{record_set}/side"]
        counts[side.decode() if isinstance(side, bytes) else str(side)] += 1
    return counts


def publish(job, out_dir: str | Path, *, overwrite: bool = False, verify: bool = False,
            progress: bool = False) -> dict[str, Any]:
    """The job's decoded cache and persisted split as a Croissant folder (``mathsym-zoo croissant``).

    Returns ``{"path", "counts" (per side), "warnings" (mlcroissant's), "metadata_note"}`` and,
    with ``verify``, ``"loaded"``: the per-side counts of the records read back through mlcroissant.
    """
    from .data.cache import load_dataset
    from .data.split import load_split

    dataset = load_dataset(job, progress=progress)
    split = load_split(dataset, job.split)
    note = None
    try:
        metadata = job.build_source().metadata()
    except DataError as exc:  # a broken metadata file must not block sharing the data
        metadata, note = None, f"source metadata not used: {exc}"
    if metadata is None and note is None:
        note = "the source has no metadata (licence, citation): add them to the JSON-LD before sharing"
    path = write_croissant(dataset, split, out_dir, metadata=metadata, name=job.source.name, overwrite=overwrite)
    out = {"path": path, "counts": {side: int(len(split.indices[side])) for side in SIDES},
           "split_hash": split.hash, "warnings": validate(path), "metadata_note": note}
    if verify:
        records, _ = load_records(path)
        out["loaded"] = side_counts(records)
    return out
