"""Groups from a CSV file (writers): key matching, unlisted members, errors, writer-disjoint split."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from mathsym_zoo.data.cache import load_dataset
from mathsym_zoo.data.groups import UNLISTED, GroupFile
from mathsym_zoo.data.split import SIDES, build_split
from mathsym_zoo.errors import DataError
from mathsym_zoo.registry import SHIPPED_REGISTRY, SplitConfig, resolve
from mathsym_zoo.sources import Record

STEM = r"([^/]+)_\d+\.[A-Za-z]+$"  # the expression stem of extracted_images/<label>/<stem>_<n>.png


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(path: Path, writers: int = 12, expressions: int = 2, classes=("a", "b", "c")) -> Path:
    """Writer w wrote expressions e<w>x<k>; each expression has one symbol of every class."""
    with zipfile.ZipFile(path, "w") as zf:
        seed = 0
        for w in range(writers):
            for k in range(expressions):
                for n, label in enumerate(classes):
                    seed += 1
                    zf.writestr(f"extracted_images/{label}/e{w}x{k}_{n}.png", png(seed))
            # The same pixels from every writer (a straight stroke) must not chain the writers together.
            zf.writestr(f"extracted_images/a/e{w}x0_9.png", png(999))
    return path


def write_csv(path: Path, rows, header=("expression", "writer")) -> Path:
    path.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n", encoding="utf-8")
    return path


def writers_csv(path: Path, writers: int = 12, expressions: int = 2, skip=()) -> Path:
    rows = [(f"e{w}x{k}", f"writer{w}") for w in range(writers) for k in range(expressions) if (w, k) not in skip]
    return write_csv(path, rows)


def job_for(tmp_path: Path, archive: Path, **params):
    raw = {"data": {"source": "hw", "cache_dir": str(tmp_path / "cache"), "workers": 1},
           "sources": {"hw": {"type": "archive", "path": str(archive), **params}},
           "preprocessing": [{"type": "grayscale"}]}
    return resolve(tmp_path / "registry.toml", raw=raw)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=300)


def test_lookup_by_pattern_key_path_and_stem(tmp_path):
    table = GroupFile.read(write_csv(tmp_path / "g.csv", [("expr1", "w1"), ("dir/x/full.png", "w2"), ("stem3", "w3")]))
    assert table.lookup(Record("d/a/expr1_4.png", "a", group="expr1")) == "w1"  # group_pattern's match
    assert table.lookup(Record("dir/x/full.png", "a")) == "w2"  # the member path
    assert table.lookup(Record("d/b/stem3.jpg", "b")) == "w3"  # the file stem
    assert table.lookup(Record("d/b/other_1.jpg", "b", group="other")) is None


def test_columns_by_name_and_default(tmp_path):
    path = write_csv(tmp_path / "g.csv", [("w1", "e1", "x")], header=("writer", "expression", "note"))
    assert GroupFile.read(path).table == {"w1": "e1"}  # first column = key, second = group
    named = GroupFile.read(path, key_column="expression", group_column="writer")
    assert named.table == {"e1": "w1"} and (named.key_column, named.group_column) == ("expression", "writer")


@pytest.mark.parametrize("text, message", [
    ("expression\ne1\n", "at least two columns"),
    ("expression,writer\n", "no rows below the header"),
    ("expression,writer\ne1,w1\ne1,w2\n", "line 3: key 'e1' is listed twice"),
    ("expression,writer\ne1,\n", "line 2: missing key or group"),
])
def test_bad_group_files_are_named(tmp_path, text, message):
    path = tmp_path / "g.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        GroupFile.read(path)


def test_unknown_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "g.csv", [("e1", "w1")])
    with pytest.raises(DataError, match=r"no column 'author' \(columns: expression, writer\); set `group_column`"):
        GroupFile.read(path, group_column="author")


def test_ingest_sets_writer_groups_relative_to_the_registry(tmp_path):
    archive = make_zip(tmp_path / "hw.zip")
    writers_csv(tmp_path / "writers.csv")
    job = job_for(tmp_path, archive, group_pattern=STEM, group_file="writers.csv")  # relative to registry.toml
    ds = load_dataset(job, progress=False)
    for path, group in zip(ds.paths.tolist(), ds.groups.tolist()):
        writer = path.split("/")[-1].split("x")[0][1:]
        assert group == f"writer{writer}"
    from mathsym_zoo.data.cache import print_report

    console = quiet()
    print_report(ds.report, console)
    assert "members matched, 12 groups" in console.file.getvalue()  # the notes reach the printed report
    assert ds.report["notes"][0].startswith("groups from writers.csv (column 'writer' by 'expression'): "
                                            f"{len(ds):,} members matched, 12 groups")


def test_unlisted_members_get_their_own_group_and_are_counted(tmp_path):
    archive = make_zip(tmp_path / "hw.zip")
    writers_csv(tmp_path / "writers.csv", skip={(3, 1)})
    ds = load_dataset(job_for(tmp_path, archive, group_pattern=STEM, group_file="writers.csv"), progress=False)
    unlisted = sorted(g for g in ds.groups.tolist() if g.startswith(UNLISTED))
    assert unlisted == [f"{UNLISTED}e3x1"] * 3  # the expression's three members, kept together
    assert "3 member(s) not in writers.csv got their own group" in ds.report["notes"][1]


def test_refuse_stops_the_ingest_and_lists_members(tmp_path):
    archive = make_zip(tmp_path / "hw.zip")
    writers_csv(tmp_path / "writers.csv", skip={(3, 1)})
    job = job_for(tmp_path, archive, group_pattern=STEM, group_file="writers.csv", group_missing="refuse")
    with pytest.raises(DataError, match=r"3 member\(s\) have no entry \(e\.g\. extracted_images/a/e3x1_0\.png.*"
                                        r"group_missing = \"own-group\""):
        load_dataset(job, progress=False)
    assert not list((tmp_path / "cache").glob("hw-*"))  # nothing half-built is trusted


def test_group_file_content_keys_the_cache(tmp_path):
    archive = make_zip(tmp_path / "hw.zip", writers=3)
    csv = writers_csv(tmp_path / "writers.csv", writers=3)
    job = job_for(tmp_path, archive, group_pattern=STEM, group_file="writers.csv")
    first = load_dataset(job, progress=False)
    csv.write_text(csv.read_text().replace("writer2", "writer1"), encoding="utf-8")
    second = load_dataset(job_for(tmp_path, archive, group_pattern=STEM, group_file="writers.csv"), progress=False)
    assert first.key != second.key and "writer2" not in set(second.groups.tolist())


def test_missing_group_file_says_how_to_fix(tmp_path):
    job = job_for(tmp_path, make_zip(tmp_path / "hw.zip", writers=2), group_file="nope.csv")
    with pytest.raises(DataError, match=r"group_file 'nope.csv': cannot read it .*relative to the registry file"):
        load_dataset(job, progress=False)


def test_split_is_writer_disjoint(tmp_path):
    archive = make_zip(tmp_path / "hw.zip", writers=20)
    writers_csv(tmp_path / "writers.csv", writers=20)
    ds = load_dataset(job_for(tmp_path, archive, group_pattern=STEM, group_file="writers.csv"), progress=False)
    sp = build_split(ds, SplitConfig())
    sides_of = {}
    for side in SIDES:
        for g in ds.groups[sp.indices[side]].tolist():
            sides_of.setdefault(g, set()).add(side)
    assert len(sides_of) == 20 and all(len(s) == 1 for s in sides_of.values())  # no writer on two sides
    writers = {side: len({g for g, s in sides_of.items() if side in s}) for side in SIDES}
    assert writers["val"] >= 2 and writers["test"] >= 2  # the shared stroke did not chain all writers together
    assert any(n.startswith("groups per side: ") and n.endswith("none on two sides") for n in sp.notes)
    assert any("1 set(s) of identical images occur in several groups" in n for n in sp.notes)


def test_shipped_crohme_source_reads_writers():
    job = resolve(SHIPPED_REGISTRY, source="crohme", root=Path(__file__).resolve().parents[1])
    params = job.source.params
    assert params.group_file.endswith("crohme_bench_writers.csv") and params.group_missing == "own-group"
    source = job.build_source()
    assert source.group_file.path.is_absolute()


@pytest.mark.slow
def test_real_crohme_split_is_writer_disjoint():
    """On the real benchmark archive (when present): no writer on two sides."""
    repo = Path(__file__).resolve().parents[1]
    job = resolve(SHIPPED_REGISTRY, source="crohme", root=repo)
    if not job.source.params.path or not job.build_source().path.exists():
        pytest.skip("crohme_bench.zip is not on this machine (../shared/data)")
    ds = load_dataset(job, progress=False)
    sp = build_split(ds, job.split)  # built, not read from a persisted file
    seen = {}
    for side in SIDES:
        for g in set(ds.groups[sp.indices[side]].tolist()):
            assert seen.setdefault(g, side) == side, f"writer {g} on {seen[g]} and {side}"
    assert len(seen) == 87
    assert sum(side != "train" for side in seen.values()) >= 20  # many writers held out, not a few
