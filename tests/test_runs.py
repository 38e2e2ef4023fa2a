"""Runs as first-class objects: the run owner, evaluate bound to the run's split, exact resume
after SIGKILL, extend, fine-tune, the `runs` listing and the import graph."""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mathsym_zoo.cli.app import run as cli
from mathsym_zoo.data.dataset import Dataset
from mathsym_zoo.errors import ConfigError, DataError
from mathsym_zoo.registry import resolve
from mathsym_zoo.runs import Run

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "mathsym_zoo"
PLUGIN = TESTS / "tiny_arch_plugin.py"
COMPARED = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def registry(root: Path, *, demo_per_class: int = 64, preprocessing: str = "", **train) -> Path:
    """A registry with the demo source (64 images per class, as shipped) and the tiny test architecture."""
    settings = {"epochs": 2, "batch_size": 32, "runs_dir": str(root / "runs"), "early_stopping_patience": 0, **train}
    root.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(f"""
        plugin_paths = ["{PLUGIN}"]
        [data]
        source = "demo"
        cache_dir = "{root / 'cache'}"
        workers = 1
        [sources.demo]
        type = "demo"
        images_per_class = {demo_per_class}
        [sources.other]
        type = "demo"
        images_per_class = 6
        seed = 7
        [[preprocessing]]
        type = "grayscale"
        [[preprocessing]]
        type = "resize_pad"
        size = [16, 16]
        {preprocessing}
        [models.tiny]
        type = "tiny-test"
        width = 4
        dropout = 0.3
        [train]
    """) + "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) + "\n"
    path = root / "registry.toml"
    path.write_text(text)
    return path


# -- evaluate is bound to the run's own split ---------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The issue's scenario: a run trained on 24 demo images per class while the registry says 64."""
    root = tmp_path_factory.mktemp("evalrun")
    reg = registry(root)
    assert cli(["train", "tiny", "--registry", str(reg), "--set", "sources.demo.images_per_class=24",
                "--set", "train.epochs=1", "--no-progress"]) == 0
    (run_dir,) = list((root / "runs").iterdir())
    return root, reg, Run.open(run_dir)


def test_evaluate_uses_the_runs_recorded_source_and_split(small_run, capsys):
    root, reg, run = small_run
    capsys.readouterr()
    assert cli(["evaluate", str(run.path), "--registry", str(reg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    saved = json.loads((run.evaluation_dir("demo", "test") / "evaluation.json").read_text())
    assert saved["split_hash"] == run.split_hash and saved["training_source"] is True
    sizes = run.info["split"]["sizes"]
    assert sum(sizes.values()) == 24 * 82  # the run's 1,968 images, not today's registry's 5,248
    assert saved["metrics"]["n"] == sizes["test"] and sizes["test"] < 0.15 * 24 * 82
    dataset, split = run.training_data()
    tested = set(np.load(run.evaluation_dir("demo", "test") / "predictions.npz")["indices"].tolist())
    assert tested == set(split.indices["test"].tolist()) and not tested & set(split.indices["train"].tolist())
    assert "its training source" in out and run.split_hash[:12] in out


def test_evaluate_json_names_the_split(small_run, capsys):
    root, reg, run = small_run
    capsys.readouterr()
    assert cli(["evaluate", str(run.path), "--registry", str(reg), "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["split_hash"] == run.split_hash and data["training_source"] is True and data["side"] == "test"
    assert data["scores"]["n"] == run.info["split"]["sizes"]["test"] and Path(data["report"]).is_file()


def test_evaluate_on_another_source_says_so(small_run, capsys):
    root, reg, run = small_run
    capsys.readouterr()
    assert cli(["evaluate", str(run.path), "--registry", str(reg), "--source", "other", "--no-progress"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    folder = run.evaluation_dir("other", "test")
    saved = json.loads((folder / "evaluation.json").read_text())
    assert saved["training_source"] is False and "a different source from training" in out
    assert "a different source from training" in (folder / "report.html").read_text()


def test_evaluate_on_a_path(small_run, tmp_path, capsys):
    """`--source PATH` (issue 13): an image folder in the Kaggle layout, as an archive source named after it."""
    from PIL import Image

    root, reg, run = small_run
    folder = tmp_path / "extracted_images"
    rng = np.random.default_rng(0)
    for label in run.class_names[:3]:
        (folder / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (45, 45), dtype=np.uint8)).save(folder / label / f"{i}.png")
    capsys.readouterr()
    assert cli(["evaluate", str(run.path), "--registry", str(reg), "--source", str(folder), "--side", "all",
                "--no-progress"]) == 0
    saved = json.loads((run.evaluation_dir("extracted_images", "all") / "evaluation.json").read_text())
    assert saved["metrics"]["n"] == 12 and saved["training_source"] is False


def test_evaluate_refuses_when_the_data_no_longer_gives_the_split(small_run, tmp_path, capsys):
    import shutil

    root, reg, run = small_run
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    info = json.loads((copy / "run.json").read_text())
    info["split"]["hash"] = "0" * 64
    (copy / "run.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert cli(["evaluate", str(copy), "--registry", str(reg), "--no-progress"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "recorded split hash 000000000000" in err and f"now {run.split_hash[:12]}" in err
    assert "Traceback" not in err
    # --side all on another source is still possible.
    assert cli(["evaluate", str(copy), "--registry", str(reg), "--source", "other", "--side", "all",
                "--no-progress"]) == 0


def test_runs_lists_runs_in_a_pipe(small_run, capsys):
    root, reg, run = small_run
    capsys.readouterr()
    assert cli(["runs", str(root / "runs")]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "completed" in out and "demo" in out and "\x1b[" not in out
    assert cli(["runs", str(root / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == "tiny" and row["split_hash"] == run.split_hash and row["epochs"] == 1
    assert row["best_val_top1"] == pytest.approx(max(r["val_accuracy"] for r in run.history()))


def test_run_owner_opens_folders_and_files(small_run, tmp_path):
    root, reg, run = small_run
    assert run.finished and run.class_names and len(run.class_names) == 82 and run.input_shape == (16, 16, 1)
    lone = Run.open(run.best_path, require_record=False)
    assert lone.class_names == run.class_names  # run.json beside the file
    with pytest.raises(ConfigError, match="is not a run folder"):
        Run.open(tmp_path)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(DataError, match="not a Keras model file"):
        Run.open(junk, require_record=False).load_model()


# -- exact resume after SIGKILL ----------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_runs import kill_dataset
    from mathsym_zoo.registry import resolve
    from mathsym_zoo.training import resume_run, train_model

    registry, run_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    data = kill_dataset(registry)
    if mode == "new":
        train_model(resolve(registry), "tiny", run_dir=run_dir, dataset=data)
    else:
        resume_run(run_dir, dataset=data)
""")


def kill_dataset(registry_path) -> Dataset:
    """Generated images whose brightness encodes the class (learnable, deterministic)."""
    rng = np.random.default_rng(0)
    n, size, classes = 1600, 16, 4
    labels = np.arange(n) % classes
    images = (rng.random((n, size, size)) * 60 + labels[:, None, None] * 45).astype(np.uint8)
    return Dataset.from_arrays(images, labels, [f"c{i}" for i in range(classes)],
                               path=Path(registry_path).parent / "data", key="kill-1600",
                               source={"name": "generated"}, preprocessing=[])


def _epochs_done(run_dir: Path) -> int:
    try:
        state = Run(run_dir).read_state()
    except Exception:  # mid-write: try again
        return -1
    return int(state["epochs_done"]) if state else 0


def _training(proc, run_dir: Path) -> bool:
    """This process has opened the run (its pid is in the record) and is training."""
    try:
        return Run(run_dir).info.get("pid") == proc.pid
    except Exception:  # not written yet, or mid-write
        return False


def _kill_during(proc, run_dir: Path, epoch: int, epoch_seconds: float, rng: random.Random) -> None:
    """SIGKILL ``proc`` at a random moment inside ``epoch`` (1-based), once it trains."""
    deadline = time.monotonic() + 300
    while not _training(proc, run_dir) or _epochs_done(run_dir) < epoch - 1:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "training too slow"
        time.sleep(0.005)
    time.sleep(rng.uniform(0.05, 0.8) * epoch_seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


@pytest.mark.slow
@pytest.mark.parametrize("mixed", ["off", "on"])
def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tmp_path, mixed):
    """Kill in epochs 2, 3 and 4 at random moments, resume each time; history.csv equals a clean run's.

    ``mixed=on`` forces float16 compute (with a loss-scale optimizer) on the CPU."""
    from mathsym_zoo.training import train_model

    reg = registry(tmp_path, epochs=6, batch_size=16, mixed_precision=mixed,
                   preprocessing='[[preprocessing]]\n        type = "augment"')
    clean = train_model(resolve(reg), "tiny", run_dir=tmp_path / "clean", dataset=kill_dataset(reg))
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    run_dir = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    rng = random.Random(f"kill-{mixed}")
    epoch_seconds = min(r["seconds"] for r in clean.history)
    for i, epoch in enumerate((2, 3, 4)):
        proc = subprocess.Popen([sys.executable, str(script), str(reg), str(run_dir), "new" if i == 0 else "resume"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _kill_during(proc, run_dir, epoch, epoch_seconds, rng)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert Run(run_dir).status == "running"  # killed: no chance to record anything
    done = subprocess.run([sys.executable, str(script), str(reg), str(run_dir), "resume"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    killed = Run(run_dir)
    assert killed.status == "completed" and killed.info["resumed"] == 3
    a, b = clean.run.history(), killed.history()
    assert [r["epoch"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b):
        for key in COMPARED:
            assert rb[key] == pytest.approx(ra[key], rel=1e-6), (ra["epoch"], key, ra[key], rb[key])


# -- extend and fine-tune --------------------------------------------------------------------


@pytest.fixture(scope="module")
def bars(tmp_path_factory):
    """Tiny learnable data and a registry for in-process runs."""
    root = tmp_path_factory.mktemp("bars")
    return root, registry(root, epochs=5, batch_size=16), kill_dataset(root / "registry.toml")


def test_extend_a_finished_run_equals_a_longer_run(bars):
    from mathsym_zoo.training import resume_run, train_model

    root, reg, data = bars
    long = train_model(resolve(reg, overrides=["train.epochs=8"]), "tiny", run_dir=root / "r8", dataset=data)
    short = train_model(resolve(reg), "tiny", run_dir=root / "r5", dataset=data)
    assert short.status == "completed" and short.epochs == 5
    extended = resume_run(short.run_dir, overrides=["train.epochs=8"], dataset=data)
    assert extended.epochs == 8 and Run(short.run_dir).info["job"]["train"]["epochs"] == 8
    for ra, rb in zip(long.history[5:], extended.history[5:]):
        for key in COMPARED:
            assert rb[key] == pytest.approx(ra[key], rel=1e-6), (ra["epoch"], key)
    with pytest.raises(ConfigError, match="only train.epochs, train.early_stopping_patience"):
        resume_run(short.run_dir, overrides=["train.learning_rate=0.1"], dataset=data)


def test_extend_refused_keys_listed_by_the_cli(bars, capsys):
    root, reg, data = bars
    run_dir = next(p for p in (root / "runs").iterdir()) if (root / "runs").exists() else None
    if run_dir is None:
        from mathsym_zoo.training import train_model

        run_dir = train_model(resolve(reg, overrides=["train.epochs=1"]), "tiny", dataset=data).run_dir
    capsys.readouterr()
    assert cli(["train", "--resume", str(run_dir), "--set", "train.optimizer=sgd"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "only train.epochs" in err and "Traceback" not in err


def _shifted(data: Dataset, names: list[str]) -> Dataset:
    return Dataset.from_arrays(np.asarray(data.images), np.asarray(data.labels) % len(names), names,
                               path=data.path.parent / "shifted", key="shifted-" + "-".join(names),
                               source={"name": "shifted"}, preprocessing=[])


def test_fine_tune_same_classes_starts_from_the_parent(bars):
    from mathsym_zoo.training import train_model

    root, reg, data = bars
    parent = train_model(resolve(reg, overrides=["train.epochs=3"]), "tiny", run_dir=root / "parent", dataset=data)
    child = train_model(resolve(reg, overrides=["train.epochs=1"]), "tiny", run_dir=root / "child", dataset=data,
                        init_from=parent.run_dir)
    fresh = train_model(resolve(reg, overrides=["train.epochs=1"]), "tiny", run_dir=root / "fresh", dataset=data)
    info = Run(child.run_dir).info
    assert info["parent"]["path"] == str(parent.run_dir) and info["parent"]["model"] == "tiny"
    assert any("weight tensors copied" in n for n in child.notes)
    # Starting from trained weights, the first epoch's loss is far below a fresh start's.
    assert child.history[0]["loss"] < fresh.history[0]["loss"] - 0.05


def test_fine_tune_with_other_classes_gets_a_new_classifier(bars):
    from mathsym_zoo.training import train_model

    root, reg, data = bars
    parent = Run(root / "parent") if (root / "parent").exists() else \
        train_model(resolve(reg, overrides=["train.epochs=2"]), "tiny", run_dir=root / "parent", dataset=data).run
    names = ["c0", "c1", "zeta"]
    child = train_model(resolve(reg, overrides=["train.epochs=1"]), "tiny", run_dir=root / "child3",
                        dataset=_shifted(data, names), init_from=parent.path)
    assert any("new classifier layer" in n and "the 2 classes in both" in n for n in child.notes)
    old = parent.load_model().weights
    new_kernel = child.model.weights[-2].numpy()  # the classifier's kernel, after one epoch
    assert new_kernel.shape[-1] == 3 and old[-2].numpy().shape[-1] == 4
    assert Run(child.run_dir).class_names == tuple(names)


def test_fine_tune_refuses_another_architecture(bars, tmp_path):
    from mathsym_zoo.training import train_model

    root, reg, data = bars
    parent = Run(root / "parent") if (root / "parent").exists() else None
    if parent is None:
        pytest.fail("parent run missing: run the fine-tune tests together")
    job = resolve(reg, overrides=['models.other.type="tiny-test"', "train.epochs=1"])
    info = json.loads((parent.path / "run.json").read_text())
    info["model"]["type"] = "notebook-cnn"
    other = tmp_path / "other-arch"
    other.mkdir()
    for f in parent.path.iterdir():
        if f.is_file():
            (other / f.name).write_bytes(f.read_bytes())
    (other / "run.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="weights only carry over between runs of the same architecture"):
        train_model(job, "other", run_dir=tmp_path / "child", dataset=data, init_from=other)


# -- the import graph --------------------------------------------------------------------------


def _imports(path: Path, module: str) -> set[str]:
    """Every mathsym_zoo module ``module`` imports, at any depth of its code."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mathsym_zoo")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if not base.startswith("mathsym_zoo"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                out.add(candidate if _module_path(candidate) else base)
    return {m for m in out if _module_path(m)} - {module}


def _module_path(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "mathsym_zoo":
        return None
    if len(parts) == 1:
        return PACKAGE / "__init__.py"
    rel = Path(*parts[1:])
    for p in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def test_no_import_cycles_in_the_package():
    mods = _modules()
    # Package __init__ files only re-export; an edge into one is an edge into its submodules.
    graph = {m: {d for d in _imports(p, m) if d != m.rsplit(".", 1)[0]} for m, p in mods.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d in graph and not state.get(d):
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m)


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(m for m in _modules() if not m.endswith("__main__")))  # __main__ runs the CLI
def test_each_module_imports_on_its_own(module):
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-2000:]


RUN_FILES = ("run.json", "best.keras", "last.keras", "history.csv", "metrics.json", "state.json")


def test_only_the_run_owner_names_run_files():
    offenders = []
    for p in PACKAGE.rglob("*.py"):
        if p.name == "runs.py":
            continue
        text = p.read_text()
        offenders += [f"{p.relative_to(PACKAGE)}: {name}" for name in RUN_FILES if f'"{name}"' in text or f"'{name}'" in text]
    assert offenders == []
