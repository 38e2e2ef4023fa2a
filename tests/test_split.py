"""The persisted split: stratified, duplicate- and group-aware, deterministic, hashed."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mathsym_zoo.data.dataset import Dataset
from mathsym_zoo.data.split import SIDES, SmallClassWarning, build_split, load_split, split_path
from mathsym_zoo.errors import DataError
from mathsym_zoo.registry import SplitConfig


def make_dataset(sizes=(50, 30, 20), *, groups_of: int = 0, duplicates: int = 0, path=".", order=None):
    """A generated dataset with no RNG: class c has sizes[c] images named c<c>/img<i>.png.

    ``groups_of`` > 0 gives every run of that many images of one class a shared
    group id; ``duplicates`` gives that many pairs (across classes 0's images) equal hashes.
    """
    labels, paths, groups, hashes = [], [], [], []
    for c, n in enumerate(sizes):
        for i in range(n):
            labels.append(c)
            paths.append(f"c{c}/img{i:04d}.png")
            groups.append(f"c{c}-g{i // groups_of}" if groups_of else "")
            hashes.append(f"h-{c}-{i}")
    for k in range(duplicates):
        hashes[2 * k + 1] = hashes[2 * k]
    n = len(labels)
    if order is not None:
        idx = np.asarray(order)
    else:
        idx = np.arange(n)
    images = np.zeros((n, 2, 2, 1), np.uint8)
    return Dataset.from_arrays(images, np.array(labels)[idx], [f"k{c}" for c in range(len(sizes))],
                               paths=np.array(paths)[idx], groups=np.array(groups)[idx],
                               hashes=np.array(hashes)[idx], path=path, key="fixture")


def side_of(split, n):
    out = np.empty(n, dtype=object)
    for s in SIDES:
        out[split.indices[s]] = s
    return out


def test_sides_partition_and_stratify():
    ds = make_dataset((50, 30, 20, 10))
    sp = build_split(ds, SplitConfig())
    all_idx = np.concatenate([sp.indices[s] for s in SIDES])
    assert sorted(all_idx.tolist()) == list(range(len(ds)))  # a partition
    counts = sp.counts(ds.labels, ds.num_classes)
    for c, n in enumerate((50, 30, 20, 10)):
        assert abs(counts["train"][c] - 0.8 * n) <= 1
        assert abs(counts["val"][c] - 0.1 * n) <= 1
        assert abs(counts["test"][c] - 0.1 * n) <= 1


def test_custom_fractions_and_empty_test_side():
    ds = make_dataset((40, 40))
    sp = build_split(ds, SplitConfig(train=0.5, val=0.5, test=0.0))
    assert sp.sizes() == {"train": 40, "val": 40, "test": 0}


def test_duplicates_stay_on_one_side():
    ds = make_dataset((60, 40), duplicates=25)
    sp = build_split(ds, SplitConfig(seed=3))
    sides = side_of(sp, len(ds))
    for h in set(ds.hashes.tolist()):
        members = np.flatnonzero(ds.hashes == h)
        assert len({sides[i] for i in members}) == 1


def test_groups_never_straddle_sides():
    ds = make_dataset((60, 45, 30), groups_of=3)
    sp = build_split(ds, SplitConfig())
    sides = side_of(sp, len(ds))
    for g in set(ds.groups.tolist()):
        assert len({sides[i] for i in np.flatnonzero(ds.groups == g)}) == 1
    # Whole groups still approximately follow the fractions.
    sizes = sp.sizes()
    assert abs(sizes["train"] / len(ds) - 0.8) < 0.05


def test_groups_spanning_classes_and_group_aware_off():
    ds = make_dataset((30, 30))
    # Pair image i of class 0 with image i of class 1 in one group: groups span classes.
    groups = np.array([f"expr{i}" for i in range(30)] * 2)
    ds = Dataset.from_arrays(ds.images, ds.labels, ds.class_names, paths=ds.paths, groups=groups,
                             hashes=ds.hashes, key="fixture")
    sp = build_split(ds, SplitConfig())
    sides = side_of(sp, len(ds))
    assert all(sides[i] == sides[i + 30] for i in range(30))
    assert any("several classes" in note for note in sp.notes)
    loose = build_split(ds, SplitConfig(group_aware=False))
    loose_sides = side_of(loose, len(ds))
    assert any(loose_sides[i] != loose_sides[i + 30] for i in range(30))


def test_small_classes_go_to_train_with_a_warning():
    ds = make_dataset((40, 2, 30))
    with pytest.warns(SmallClassWarning, match="k1"):
        sp = build_split(ds, SplitConfig(min_per_class=3))
    assert sp.small_classes == ("k1",)
    counts = sp.counts(ds.labels, ds.num_classes)
    assert counts["train"][1] == 2 and counts["val"][1] == 0 and counts["test"][1] == 0
    assert counts["val"][0] > 0  # other classes are split normally


def test_small_class_counted_in_groups():
    # 12 images but only 2 groups: too few independent units to split.
    ds = make_dataset((40, 12), groups_of=6)
    with pytest.warns(SmallClassWarning):
        sp = build_split(ds, SplitConfig(min_per_class=3))
    assert sp.small_classes == ("k1",)


def test_deterministic_seeded_and_order_independent():
    ds = make_dataset((50, 30, 20), groups_of=2, duplicates=5)
    a = build_split(ds, SplitConfig(seed=1))
    b = build_split(ds, SplitConfig(seed=1))
    c = build_split(ds, SplitConfig(seed=2))
    assert a.hash == b.hash
    assert all(np.array_equal(a.indices[s], b.indices[s]) for s in SIDES)
    assert a.hash != c.hash
    # The same images in another array order give the same split (and hash).
    perm = np.arange(len(ds))[::-1].copy()
    shuffled = make_dataset((50, 30, 20), groups_of=2, duplicates=5, order=perm)
    d = build_split(shuffled, SplitConfig(seed=1))
    assert d.hash == a.hash


# Pinned: the same config gives this hash on any machine (no floats or RNG streams in it).
PINNED = "db891787cecc2c00fced9200099136598ac5a09c288e136cae8e269e2e97850f"


def test_pinned_hash():
    ds = make_dataset((37, 23, 11, 5), groups_of=2, duplicates=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sp = build_split(ds, SplitConfig(seed=7))
    assert sp.hash == PINNED


def test_load_split_persists_atomically_and_reuses_the_file(tmp_path):
    ds = make_dataset((30, 20), path=tmp_path)
    cfg = SplitConfig()
    sp = load_split(ds, cfg)
    assert sp.path == split_path(ds, cfg)
    assert sp.path.parent == tmp_path / "splits" and sp.path.name.startswith("split-")
    assert [p.name for p in sp.path.parent.iterdir()] == [sp.path.name]  # no temp file left
    data = json.loads(sp.path.read_text())
    assert data["hash"] == sp.hash and data["sizes"] == sp.sizes()
    assert data["class_counts"]["train"]["k0"] == int(sp.counts(ds.labels, 2)["train"][0])
    mtime = sp.path.stat().st_mtime_ns
    again = load_split(ds, cfg)
    assert again.hash == sp.hash and sp.path.stat().st_mtime_ns == mtime
    # Another config: another file.
    other = load_split(ds, SplitConfig(seed=5))
    assert other.path != sp.path


def test_tampered_or_foreign_split_file_is_rejected(tmp_path):
    ds = make_dataset((30, 20), path=tmp_path)
    sp = load_split(ds, SplitConfig())
    data = json.loads(sp.path.read_text())
    data["indices"]["train"], data["indices"]["val"] = data["indices"]["val"], data["indices"]["train"]
    sp.path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="does not match its hash"):
        load_split(ds, SplitConfig())
    bigger = make_dataset((31, 20), path=tmp_path)
    with pytest.raises(DataError, match="another dataset"):
        load_split(bigger, SplitConfig())


def test_split_module_does_not_import_tensorflow():
    code = "import sys, mathsym_zoo.data.split, mathsym_zoo.cli.training; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_split_command(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import mathsym_zoo.data.cache as cache
    from mathsym_zoo.cli import app

    ds = make_dataset((30, 20, 2), path=tmp_path)
    monkeypatch.setattr(cache, "load_dataset", lambda job, progress=True: ds)
    result = CliRunner().invoke(app, ["split", "--source", "demo", "--no-progress"])
    assert result.exit_code == 0, result.output
    sp = load_split(ds, SplitConfig())
    assert sp.hash in result.output
    assert "k2" in result.output and "entirely to train" in result.output
