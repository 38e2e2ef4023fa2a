"""The HTML report: it parses, every image in it is a valid PNG, and Chromium renders it.

The screenshot test needs Debian's ``chromium`` package (CI installs it); it is
skipped when no Chromium binary is found, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import base64
import copy
import io
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape
from PIL import Image

from mathsym_zoo import compare as C
from mathsym_zoo import metrics as M
from mathsym_zoo.data.dataset import Dataset
from mathsym_zoo.evaluate import Evaluation
from mathsym_zoo.report import leaderboard_table, write_comparison_report, write_evaluation_report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CLASSES = ["1", "ascii_124", "-", ",", "x", "\\alpha", "<b>"]  # markup-looking names must be escaped


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.images, self.ids, self.text = [], [], [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(path: Path) -> _Checker:
    """Parse ``path``: balanced tags, and every <img> a decodable PNG (inline) or an existing file."""
    checker = _Checker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    assert checker.errors == [] and checker.stack == [], (checker.errors, checker.stack)
    assert checker.images, "no images in the report"
    for src in checker.images:
        if src.startswith("data:"):
            head, data = src.split(",", 1)
            assert head == "data:image/png;base64", head
            raw = base64.b64decode(data, validate=True)
        else:
            file = path.parent / src
            assert file.is_file(), f"missing image {src}"
            raw = file.read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 0
    return checker


def _evaluation(name, y, probs, indices):
    return Evaluation(name, "test", tuple(CLASSES), indices, y, probs, {}, M.summarize(y, probs, CLASSES),
                      {"batch_images_per_s": 1234.0, "latency_ms_p50": 1.5, "latency_ms_p95": 2.5},
                      model_stats={"params": 12345, "macs": 678900, "flops": 1357800})


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """A written two-model comparison report; tests that change an evaluation copy it first."""
    tmp_path = tmp_path_factory.mktemp("comparison")
    rng = np.random.default_rng(0)
    n, k = 140, len(CLASSES)
    labels = np.arange(n) % k
    images = rng.integers(0, 255, size=(n, 20, 20, 1), dtype=np.uint8)
    ds = Dataset.from_arrays(images, labels, CLASSES, path=tmp_path / "ds")
    indices = np.arange(n)
    evaluations = {}
    for name, noise in (("good", 0.7), ("worse", 1.5)):
        probs = rng.random((n, k)) * noise
        probs[indices, labels] += 0.6
        probs /= probs.sum(axis=1, keepdims=True)
        evaluations[name] = _evaluation(name, labels, probs.astype(np.float32), indices)
    folder = tmp_path / "cmp"
    for name in evaluations:
        run = folder / "runs" / name
        run.mkdir(parents=True)
        (run / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,learning_rate\n"
                                         "1,2.0,0.3,2.1,0.28,0.001\n2,1.2,0.6,1.4,0.55,0.001\n3,0.8,0.75,1.1,0.66,0.001\n")
    rows = C.leaderboard(evaluations, {n_: {"train_time_s": 12.5, "train_images_per_s": 900.0, "epochs": 3}
                                       for n_ in evaluations},
                         {n_: {"run_dir": str(folder / "runs" / n_)} for n_ in evaluations})
    manifest = {"source_entry": {"name": "demo", "type": "demo"}, "source": {"describe": "demo glyphs <v1>"},
                "dataset_key": "k" * 64, "split_hash": "s" * 64, "models": list(evaluations),
                "train": {"epochs": 3, "batch_size": 64, "seed": 0, "optimizer": "adamw", "weight_decay": 0.05,
                          "label_smoothing": 0.1, "class_weights": True, "learning_rate": 0.001, "runs_dir": "elsewhere"}}
    result = C.ComparisonResult(folder, rows, evaluations, rows[0]["model"], [], 1.0, manifest, ds)
    path = write_comparison_report(result)
    return path, rows, evaluations


def test_comparison_report_parses_and_images_are_valid(comparison):
    path, rows, _ = comparison
    checker = check_html(path)
    text = " ".join(checker.text)
    assert {"verdict", "leaderboard", "curves", "calibration", "models"} <= checker.ids
    # Every model, not only the leader, has its own section.
    for model in ("good", "worse"):
        assert {f"{part}-{model}" for part in ("model", "calibration", "confusion", "pairs", "per-class",
                                               "mistakes")} <= checker.ids, model
    # CI chart, learning curves, reliability overview, per model: reliability and confusion; + mistakes
    assert len(checker.images) > 7
    assert "good" in text and "worse" in text and "<b>" in text  # the class name shown as text, escaped
    html = path.read_text()
    assert "&lt;b&gt;" in html and "table.sortable" in html
    assert "http://" not in html and "https://" not in html  # self-contained
    # The header names the whole shared recipe: every setting away from its default, none at it.
    assert "epochs=3, batch_size=64, seed=0; class_weights=True, label_smoothing=0.1, optimizer=adamw, " \
           "weight_decay=0.05" in text
    assert "learning_rate" not in text and "runs_dir" not in text


def test_evaluation_report(tmp_path, comparison):
    _, _, evaluations = comparison
    ev = copy.deepcopy(evaluations["worse"])
    ev.missing = {"zeta": 3}
    ev.notes = ["3 images with 1 labels the model doesn't know were left out: zeta"]
    ds = Dataset.from_arrays(np.zeros((140, 20, 20, 1), np.uint8), np.arange(140) % len(CLASSES), CLASSES)
    path = write_evaluation_report(tmp_path / "ev", ev, ds, run=None)
    checker = check_html(path)
    assert "zeta" in " ".join(checker.text)


def _with_correctness(name, correct):
    """An evaluation whose top-1 is right exactly where ``correct`` is True."""
    n, k = len(correct), len(CLASSES)
    y = np.arange(n) % k
    pred = np.where(correct, y, (y + 1) % k)
    probs = np.full((n, k), 0.1 / (k - 1), np.float32)
    probs[np.arange(n), pred] = 0.9
    return _evaluation(name, y, probs, np.arange(n))


def test_leaderboard_table_marks_significance():
    """Known contingency tables against the best model (right on items 0-39 of 60):
    ``b`` = best right / other wrong, ``c`` = best wrong / other right.

    * "sig": b = 10, c = 2 -> exact p = 2 (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 158/4096 = 0.0386 -> "*"
    * "ns":  b = 5,  c = 3 -> exact p = 2 (1 + 8 + 28 + 56) / 2^8 = 186/256 = 0.727 -> "n.s."
    * "near": b = 8,  c = 3 -> exact p = 2 (1 + 11 + 55 + 165) / 2^11 = 464/2048 = 0.227 -> "n.s."
    """
    from rich.console import Console

    best = np.arange(60) < 40

    def flipped(wrong, right):
        c = best.copy()
        c[list(wrong)] = False
        c[list(right)] = True
        return c

    evaluations = {"best": _with_correctness("best", best),
                   "sig": _with_correctness("sig", flipped(range(0, 10), range(40, 42))),
                   "ns": _with_correctness("ns", flipped(range(0, 5), range(40, 43))),
                   "near": _with_correctness("near", flipped(range(0, 8), range(40, 43)))}
    rows = {r["model"]: r for r in C.leaderboard(evaluations, {})}
    assert rows["best"]["is_best"] and rows["best"]["rank"] == 1
    assert (rows["sig"]["mcnemar_b"], rows["sig"]["mcnemar_c"]) == (10, 2)
    assert rows["sig"]["mcnemar_p"] == pytest.approx(158 / 4096) and rows["sig"]["significant_vs_best"] is True
    assert (rows["ns"]["mcnemar_b"], rows["ns"]["mcnemar_c"]) == (5, 3)
    assert rows["ns"]["mcnemar_p"] == pytest.approx(186 / 256) and rows["ns"]["significant_vs_best"] is False
    assert (rows["near"]["mcnemar_b"], rows["near"]["mcnemar_c"]) == (8, 3)
    assert rows["near"]["mcnemar_p"] == pytest.approx(464 / 2048) and rows["near"]["significant_vs_best"] is False

    console = Console(width=250, record=True)
    console.print(leaderboard_table(list(rows.values())))
    out = console.export_text().splitlines()
    # The scores table's rows (the verdict above the table names models too).
    lines = {name: next(line for line in out if line.lstrip().startswith(f"{name} ")) for name in rows}
    # "ns" and "near" are not significantly worse: the leader is not called best.
    assert any(line.startswith("No clear best: best leads") for line in out)
    assert "p=0.039 *" in lines["sig"]
    assert "p=0.73 n.s." in lines["ns"] and "*" not in lines["ns"]
    assert "p=0.23 n.s." in lines["near"] and "*" not in lines["near"]
    assert " best " in lines["best"] and "p=" not in lines["best"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# CI installs chromium (scripts/test.sh); only a local machine without it may skip.
@pytest.mark.skipif(_chromium() is None and not os.environ.get("CI"),
                    reason="Chromium not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(comparison, tmp_path):
    assert _chromium(), "Chromium is needed in CI (scripts/test.sh installs it: apt-get install -y chromium)"
    path, _, _ = comparison
    shot = tmp_path / "report.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
           path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    # Rendered content, not a blank or error page: dark text on white and some variety.
    assert pixels.std() > 20 and (pixels < 100).mean() > 0.005


# -- per-model sections, calibration, verdict, templates ---------------------------


def _section(html: str, model: str) -> str:
    start = html.index(f'<section class="panel" id="model-{model}">')
    return html[start:html.index("</section>", start)]


def test_every_model_section_shows_its_own_calibration_and_scores(comparison):
    from mathsym_zoo.report import fmt

    path, rows, evaluations = comparison
    html = path.read_text()
    for name, ev in evaluations.items():
        section = _section(html, name)
        ece = M.expected_calibration_error(ev.y_true, ev.probs)
        assert 0 < ece < 1
        assert f"ECE <b>{fmt(ece, 'pct')}%</b>" in section
        assert f"NLL <b>{fmt(M.nll(ev.y_true, ev.probs), 'f3')}</b>" in section
        assert f"top-1 <b>{fmt(ev.metrics['top1'], 'pct')}%</b>" in section
        wrong = int((~ev.correct).sum())
        assert f"of {wrong} misclassified test images" in section
        assert section.count("<figure") == min(60, wrong)
        assert section.count('class="fig"') == 2  # its reliability diagram and confusion heatmap
    # ... and the leaderboard carries NLL and ECE too.
    assert {"nll", "ece"} <= set(rows[0]) and rows[0]["ece"] == pytest.approx(
        M.expected_calibration_error(evaluations["good"].y_true, evaluations["good"].probs))


def test_old_evaluations_without_calibration_still_render(tmp_path, comparison):
    _, _, evaluations = comparison
    ev = copy.deepcopy(evaluations["good"])
    for key in ("ece", "nll", "ece_bins", "reliability"):
        ev.metrics.pop(key)
    ds = Dataset.from_arrays(np.zeros((140, 20, 20, 1), np.uint8), np.arange(140) % len(CLASSES), CLASSES)
    html = write_evaluation_report(tmp_path / "old", ev, ds).read_text()
    assert f"ECE <b>{100 * M.expected_calibration_error(ev.y_true, ev.probs):.2f}%</b>" in html


def _row(model, top1, lo, *, k=10, best=False, significant=None, p=None):
    return {"model": model, "top1": top1, "top1_ci95_low": lo, "top1_ci95_high": top1 + 0.05, "num_classes": k,
            "is_best": best, "significant_vs_best": significant, "mcnemar_p": p}


def test_verdict_says_when_no_model_wins():
    from mathsym_zoo.report import verdict

    # Chance is 10%: both intervals reach it.
    v = verdict([_row("a", 0.14, 0.09, best=True), _row("b", 0.11, 0.06, significant=False, p=0.4)])
    assert not v.clear and v.text.startswith("No model beats chance") and "10.0%" in v.text
    # The leader beats chance but not "b".
    v = verdict([_row("a", 0.60, 0.55, best=True), _row("b", 0.58, 0.53, significant=False, p=0.3),
                 _row("c", 0.08, 0.05, significant=True, p=1e-6)])
    assert not v.clear and v.text.startswith("No clear best: a leads") and "than b " in v.text
    assert "c does not beat chance" in v.text
    v = verdict([_row("a", 0.60, 0.55, best=True), _row("b", 0.40, 0.35, significant=True, p=1e-4)])
    assert v.clear and v.text.startswith("a is the best")
    one = verdict([_row("a", 0.09, 0.05, best=True)])
    assert not one.clear and one.text.startswith("a does not beat chance")


def test_unclear_leader_is_not_called_best(tmp_path):
    from rich.console import Console

    rows = [_row("a", 0.60, 0.55, best=True), _row("b", 0.58, 0.53, significant=False, p=0.3)]
    console = Console(width=100, record=True)
    console.print(leaderboard_table(rows, "demo"))
    out = console.export_text()
    assert "No clear best" in out and "leader" in out and " best " not in out.replace("No clear best", "")
    rows[1].update(significant_vs_best=True, mcnemar_p=0.001)
    console = Console(width=100, record=True)
    console.print(leaderboard_table(rows, "demo"))
    assert "a is the best" in console.export_text()


def test_report_says_the_verdict(comparison):
    path, rows, _ = comparison
    from mathsym_zoo.report import verdict

    html = path.read_text()
    v = verdict(rows)
    assert f'class="verdict {"clear" if v.clear else "unclear"}" id="verdict">{escape(v.text)}</div>' in html


def test_templates_autoescape_names(tmp_path, comparison):
    _, _, evaluations = comparison
    ev = copy.deepcopy(evaluations["good"])
    ev.model_name = "<script>alert(1)</script>"
    ds = Dataset.from_arrays(np.zeros((140, 20, 20, 1), np.uint8), np.arange(140) % len(CLASSES), CLASSES)
    html = write_evaluation_report(tmp_path / "esc", ev, ds).read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b><b></b>" not in html and "<b>&lt;b&gt;</b>" in html  # the class named <b>


def test_user_templates_override_the_shipped_ones(tmp_path, monkeypatch, comparison):
    from mathsym_zoo.templating import TEMPLATES_DIR, TEMPLATES_ENV

    _, _, evaluations = comparison
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "report.css").write_text((TEMPLATES_DIR / "report.css").read_text() + "\nh1{color:#123456}\n")
    monkeypatch.setenv(TEMPLATES_ENV, str(mine))
    ds = Dataset.from_arrays(np.zeros((140, 20, 20, 1), np.uint8), np.arange(140) % len(CLASSES), CLASSES)
    html = write_evaluation_report(tmp_path / "styled", evaluations["good"], ds).read_text()
    assert "h1{color:#123456}" in html and 'id="leaderboard"' in html
    broken = tmp_path / "broken-templates"
    broken.mkdir()
    (broken / "report.html.j2").write_text("{{ no_such_field }}")
    monkeypatch.setenv(TEMPLATES_ENV, str(broken))
    from mathsym_zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="report.html.j2.*no_such_field.*override"):
        write_evaluation_report(tmp_path / "broken", evaluations["good"], ds)


def test_labels_show_their_latex_form(comparison):
    path, _, _ = comparison
    html = path.read_text()
    assert '<b>ascii_124</b> <code class="tex">|</code>' in html  # from mathsym_zoo.labels
    assert "<b>1</b> <code" not in html  # a label that is its own LaTeX is shown once
