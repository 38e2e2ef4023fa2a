"""The ``combine`` source: classes aligned by name, groups kept per source, parts' caches reused."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mathsym_zoo.data.cache import load_dataset
from mathsym_zoo.data.split import build_split
from mathsym_zoo.errors import ConfigError, DataError
from mathsym_zoo.registry import SplitConfig, resolve


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (6, 6), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(path: Path, classes, per_class: int, seed: int) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for label in classes:
            for i in range(per_class):
                seed += 1
                zf.writestr(f"extracted_images/{label}/w{i % 3}_{i}.png", png(seed))
    return path


def registry(tmp_path: Path, *, steps=({"type": "grayscale"},), **combine) -> dict:
    a = make_zip(tmp_path / "a.zip", ("zeta", "alpha"), 9, seed=0)
    b = make_zip(tmp_path / "b.zip", ("alpha", "beta"), 6, seed=1000)
    group = r"/(w\d)_\d+\.png$"  # the same writer names in both archives: they must stay apart
    return {"data": {"source": "both", "cache_dir": str(tmp_path / "cache"), "workers": 1},
            "sources": {"a": {"type": "archive", "path": str(a), "group_pattern": group},
                        "b": {"type": "archive", "path": str(b), "group_pattern": group},
                        "both": {"type": "combine", "sources": ["a", "b"], **combine}},
            "preprocessing": list(steps)}


def test_classes_aligned_by_name_and_groups_kept_apart(tmp_path):
    raw = registry(tmp_path)
    both = load_dataset(resolve(raw=raw), progress=False)
    a = load_dataset(resolve(raw=raw, source="a"), progress=False)
    b = load_dataset(resolve(raw=raw, source="b"), progress=False)
    assert both.class_names == ("alpha", "beta", "zeta")  # the union, sorted
    assert len(both) == len(a) + len(b)
    for part in (a, b):
        name = "a" if part is a else "b"
        for i in range(len(part)):
            j = int(np.flatnonzero(both.paths == f"{name}/{part.paths[i]}")[0])
            assert both.class_names[both.labels[j]] == part.class_names[part.labels[i]]
            assert both.groups[j] == f"{name}:{part.groups[i]}"
            assert np.array_equal(both.images[j], part.images[i])
    assert len(set(both.groups.tolist())) == 6  # w0..w2 of each source, never merged
    assert both.report["notes"] == [f"combined from a 18 images in 2 classes (cache {a.path.name}), "
                                    f"b 12 images in 2 classes (cache {b.path.name})"]


def test_offline_steps_are_not_applied_twice(tmp_path):
    raw = registry(tmp_path, steps=({"type": "grayscale"}, {"type": "invert"}))
    both = load_dataset(resolve(raw=raw), progress=False)
    a = load_dataset(resolve(raw=raw, source="a"), progress=False)
    j = int(np.flatnonzero(both.paths == f"a/{a.paths[0]}")[0])
    assert np.array_equal(both.images[j], a.images[0])  # inverted once, as the part's cache holds it


def test_parts_cached_once_and_reused(tmp_path):
    raw = registry(tmp_path)
    a_alone = load_dataset(resolve(raw=raw, source="a"), progress=False)
    stamp = (a_alone.path / "manifest.json").stat().st_mtime_ns
    both = load_dataset(resolve(raw=raw), progress=False)
    assert [p["key"] for p in both.source["parts"]][0] == a_alone.key  # the same cache as used alone
    again = load_dataset(resolve(raw=raw), progress=False)
    assert again.path == both.path and (a_alone.path / "manifest.json").stat().st_mtime_ns == stamp
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir() if p.is_dir()) == ["a", "b", "both"]


def test_a_changed_part_rebuilds_the_combination(tmp_path):
    raw = registry(tmp_path)
    first = load_dataset(resolve(raw=raw), progress=False)
    make_zip(tmp_path / "b.zip", ("alpha", "beta", "gamma"), 6, seed=5)
    second = load_dataset(resolve(raw=raw), progress=False)
    assert first.key != second.key and "gamma" in second.class_names


def test_split_notes_which_sources_fed_each_side(tmp_path):
    both = load_dataset(resolve(raw=registry(tmp_path)), progress=False)
    sp = build_split(both, SplitConfig(train=0.6, val=0.2, test=0.2, min_per_class=1))
    note = next(n for n in sp.notes if n.startswith("sources per side: "))

    def fed(side, part):
        return sum(p.startswith(f"{part}/") for p in both.paths[sp.indices[side]].tolist())

    assert note == "sources per side: " + "; ".join(f"{s} a {fed(s, 'a')} + b {fed(s, 'b')}" for s in sp.indices)
    assert sum(fed(s, p) for s in sp.indices for p in "ab") == len(both)


@pytest.mark.parametrize("entry, message", [
    ({"sources": ["a"]}, "must list at least two"),
    ({"sources": ["a", "nope"]}, "unknown source 'nope'"),
    ({"sources": ["a", "both"]}, r"includes itself \(both -> both\)"),
])
def test_bad_combinations_are_named(tmp_path, entry, message):
    raw = registry(tmp_path)
    raw["sources"]["both"].update(entry)
    with pytest.raises(ConfigError, match=message):
        load_dataset(resolve(raw=raw), progress=False)


def test_a_source_listed_twice_is_a_registry_error(tmp_path):
    raw = registry(tmp_path, sources=["a", "a"])
    with pytest.raises(ConfigError, match=r"sources.both.sources: lists 'a' more than once"):
        resolve(raw=raw)


def test_a_run_on_a_combined_source_resolves_its_parts_again(tmp_path):
    from mathsym_zoo.runs import Run

    job = resolve(raw=registry(tmp_path))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps({"job": job.to_dict()}), encoding="utf-8")
    again = Run.open(tmp_path / "run").job()  # as evaluate RUN and train --resume rebuild it
    assert again.source.name == "both" and sorted(again.sources) == ["a", "b", "both"]
    assert load_dataset(again, progress=False).key == load_dataset(job, progress=False).key


def test_check_runs_each_parts_checks_without_ingesting(tmp_path):
    raw = registry(tmp_path)
    raw["sources"]["b"]["path"] = str(tmp_path / "missing.zip")
    with pytest.raises(DataError, match="missing.zip"):
        resolve(raw=raw).build_source().check()
    assert not (tmp_path / "cache").exists()
