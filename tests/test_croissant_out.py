"""`mathsym-zoo croissant`: the decoded cache and its split as Croissant 1.0 that mlcroissant
validates and loads back, record by record, with the split's counts per side."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mathsym_zoo.api import load_dataset, load_split, write_croissant
from mathsym_zoo.cli import run
from mathsym_zoo.croissant import load_records, side_counts
from mathsym_zoo.registry import resolve

REPO = Path(__file__).resolve().parents[1]
KAGGLE_CROISSANT = REPO / "plugins" / "kaggle-croissant.json"


def demo_job(tmp_path, per_class: int = 10):
    raw = {"data": {"source": "demo", "cache_dir": str(tmp_path / "cache")},
           "sources": {"demo": {"type": "demo", "images_per_class": per_class}},
           "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [45, 45]}]}
    return resolve(tmp_path / "registry.toml", raw=raw)


def folder_job(tmp_path, croissant: Path | None = None):
    """An archive source over a folder of generated PNGs, 3 classes, no groups."""
    rng = np.random.default_rng(0)
    for label in ("alpha", "beta", "sum"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
    source = {"type": "archive", "path": str(tmp_path / "imgs")}
    if croissant:
        source["croissant"] = str(croissant)
    raw = {"data": {"source": "folder", "cache_dir": str(tmp_path / "cache")}, "sources": {"folder": source},
           "preprocessing": [{"type": "grayscale"}, {"type": "resize_pad", "size": [16, 16]}]}
    return resolve(tmp_path / "registry.toml", raw=raw)


def test_demo_croissant_loads_back_with_the_split(tmp_path):
    job = demo_job(tmp_path)
    result = write_croissant(job, tmp_path / "out", verify=True)
    dataset = load_dataset(job)
    split = load_split(job, dataset)
    expected = {side: len(split.indices[side]) for side in ("train", "val", "test")}
    assert result["counts"] == expected and min(expected.values()) > 0
    assert result["loaded"] == expected  # every record read back through mlcroissant
    assert result["warnings"] == [] and result["metadata_note"] is None
    doc = json.loads(result["path"].read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert doc["license"].startswith("CC0-1.0") and "Hershey" in doc["citeAs"]  # carried from the source
    assert split.hash in doc["description"] and "seed=0" in doc["description"]
    classes = next(rs for rs in doc["recordSet"] if rs["@id"] == "classes")["data"]
    assert [c["classes/name"] for c in classes] == list(dataset.class_names)
    # Records carry the cache's exact pixels, label, group and side.
    records, _ = load_records(result["path"])
    by_file = {r["samples/file"].decode(): r for r in records}
    for side in ("train", "test"):
        for index in split.indices[side][:5]:
            record = by_file[f"images/{side}/{int(index):06d}.png"]
            assert np.array_equal(np.asarray(record["samples/image"].convert("L")), dataset.images[index][..., 0])
            assert record["samples/label"].decode() == dataset.class_names[dataset.labels[index]]
            assert record["samples/group"].decode() == dataset.groups[index]
            assert record["samples/side"].decode() == side
            assert record["samples/source_path"].decode() == dataset.paths[index]


def test_source_without_metadata_still_gets_valid_croissant(tmp_path):
    job = folder_job(tmp_path)
    result = write_croissant(job, tmp_path / "out", verify=True)
    assert result["loaded"] == result["counts"] and sum(result["counts"].values()) == 36
    assert "no metadata" in result["metadata_note"]
    doc = json.loads(result["path"].read_text())
    assert "license" not in doc and doc["name"].startswith("folder")
    # Valid; mlcroissant only recommends what the source could not give.
    assert sorted(w.split("Property ")[1].split(" is")[0] for w in result["warnings"]) == [
        '"http://mlcommons.org/croissant/citeAs"', '"https://schema.org/license"']
    records, _ = load_records(result["path"])
    assert {r["samples/label"].decode() for r in records} == {"alpha", "beta", "sum"}


def test_licence_and_creator_carried_from_the_source_croissant(tmp_path):
    job = folder_job(tmp_path, croissant=KAGGLE_CROISSANT)
    result = write_croissant(job, tmp_path / "out")
    doc = json.loads(result["path"].read_text())
    source = json.loads(KAGGLE_CROISSANT.read_text())
    assert doc["license"] == source["license"] and doc["creator"] == source["creator"]
    assert doc["datePublished"] == source["datePublished"]
    # The Kaggle file has no citation; that recommendation is the only warning left.
    assert len(result["warnings"]) == 1 and "citeAs" in result["warnings"][0]


def test_records_csv_checksums_match_the_files(tmp_path):
    import csv
    import hashlib

    result = write_croissant(folder_job(tmp_path), tmp_path / "out")
    folder = result["path"].parent
    doc = json.loads(result["path"].read_text())
    records_entry = next(d for d in doc["distribution"] if d["@id"] == "records.csv")
    assert records_entry["sha256"] == hashlib.sha256((folder / "records.csv").read_bytes()).hexdigest()
    with open(folder / "records.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 36
    for row in rows:
        assert hashlib.sha256((folder / row["file"]).read_bytes()).hexdigest() == row["png_sha256"]


def test_cli_croissant_writes_verifies_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = ["--set", "sources.demo.images_per_class=8", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    args = ["croissant", "--source", "demo", "--out", str(tmp_path / "c"), *sets]
    assert run(args + ["--verify", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "croissant.json" in out and "equal to the split" in out
    assert run(args + ["--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert run(args + ["--force", "--no-progress"]) == 0
