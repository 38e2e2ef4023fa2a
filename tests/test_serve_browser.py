"""The draw page end to end in headless Chromium: real pointer moves, live top-k, copy, contribute.

Needs Debian's ``chromium`` (scripts/test.sh installs it) and the ``playwright``
Python package, which drives that browser (no browser download). The
screenshot lands in the test's temp folder (and in $MATHSYM_ZOO_SERVE_SHOT
when set, which is how docs/serve.png is made).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve_helpers import demo_trained_run, real_strokes, running_server

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")]
CANVAS = 360


SLOW_NEXT = threading.Event()


class _Slowable:
    """A classifier whose next call takes 0.8 s once SLOW_NEXT is set (to make an answer arrive late)."""

    def __init__(self, clf):
        self._clf = clf

    def __getattr__(self, name):
        return getattr(self._clf, name)

    def predict_proba(self, batch):
        if SLOW_NEXT.is_set():
            SLOW_NEXT.clear()
            time.sleep(0.8)
        return self._clf.predict_proba(batch)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from mathsym_zoo.api import load_classifier
    from mathsym_zoo.serve.app import create_app
    from mathsym_zoo.serve.models import ModelPool, find_runs

    root = tmp_path_factory.mktemp("serve")
    demo_trained_run(root / "runs" / "demo-cnn")
    samples = root / "samples"
    pool = ModelPool(find_runs(root / "runs", root / "comparisons"), loader=lambda path: _Slowable(load_classifier(path)))
    app = create_app(pool, samples_dir=samples, allowed_hosts=["127.0.0.1", "localhost"])
    with running_server(app) as url:
        yield url, samples


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def canvas_strokes(strokes, size=CANVAS, margin=0.18):
    """Real pen strokes scaled into the canvas, centred, aspect kept."""
    pts = np.concatenate([np.asarray(s, float) for s in strokes])
    lo, hi = pts.min(0), pts.max(0)
    scale = size * (1 - 2 * margin) / max(float((hi - lo).max()), 1e-9)
    return [(np.asarray(s, float) - (lo + hi) / 2) * scale + size / 2 for s in strokes]


def draw(page, strokes):
    box = page.locator("#pad").bounding_box()
    for stroke in canvas_strokes(strokes):
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.up()


def test_draw_predict_copy_contribute(server, browser, tmp_path):
    from playwright.sync_api import expect

    url, samples = server
    context = browser.new_context(viewport={"width": 1000, "height": 560})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']")

    symbol = next(s for s in real_strokes() if s["label"] == "sqrt")
    draw(page, symbol["strokes"])
    page.wait_for_selector(f"body[data-answered='{len(symbol['strokes'])}']")  # the answer to the whole drawing
    rows = page.locator("#results li[data-latex]")
    assert rows.count() == 5
    for i in range(5):
        row = rows.nth(i)
        latex = row.get_attribute("data-latex")
        assert row.locator("code").inner_text() == latex
        assert row.locator(".glyph .katex").count() == 1, f"row {i} ({latex}) not rendered by KaTeX"
    assert "ms" in page.locator("#timing").inner_text()

    page.keyboard.press("1")
    first = rows.nth(0).get_attribute("data-latex")
    page.wait_for_selector("body[data-copied]")
    assert page.evaluate("document.body.dataset.copied") == first
    assert page.evaluate("navigator.clipboard.readText()") == first

    page.fill("#label", "sqrt")
    page.click("#save")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Saved as sqrt/"))  # the page's CSP forbids eval
    saved = sorted((samples / "sqrt").glob("*.png"))
    assert len(saved) == 1 and Image.open(saved[0]).size == (45, 45)
    record = json.loads(saved[0].with_suffix(".json").read_text())
    assert record["label"] == "sqrt" and len(record["strokes"]) == len(symbol["strokes"])

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot))
    if os.environ.get("MATHSYM_ZOO_SERVE_SHOT"):
        shutil.copy(shot, os.environ["MATHSYM_ZOO_SERVE_SHOT"])

    page.keyboard.press("Control+z")  # undo the last stroke: a new answer comes
    page.keyboard.press("Escape")  # clear: the list empties
    page.wait_for_selector("#results li.empty")
    assert errors == []
    context.close()


def test_symbols_page_lists_every_class(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url + "/symbols")
    page.wait_for_selector("body[data-ready='1']")
    cards = page.locator("#grid > div")
    assert cards.count() == 82
    assert page.locator("#grid .katex").count() == 82
    assert "\\alpha" in page.locator("#grid").inner_text()
    page.close()


def test_a_late_answer_to_an_older_drawing_is_dropped(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']")
    first, second = real_strokes()[0]["strokes"][:2]  # the two strokes of a "!"
    SLOW_NEXT.set()
    draw(page, [first])  # its answer comes 0.8 s late...
    page.wait_for_timeout(200)
    draw(page, [second])  # ...after the answer to both strokes
    page.wait_for_selector("body[data-answered='2']")
    shown = page.locator("#results li[data-latex]").all_inner_texts()
    page.wait_for_timeout(1200)  # the late answer has come and gone
    assert page.evaluate("document.body.dataset.answered") == "2"
    assert page.locator("#results li[data-latex]").all_inner_texts() == shown
    page.close()
