"""``mathsym-zoo serve``: stroke rendering against the real data, the JSON API through
Starlette's test client (every malformed payload), samples read back as a source,
run discovery and the command's wiring."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageFilter
from starlette.testclient import TestClient

from mathsym_zoo.cli import run as cli_run
from mathsym_zoo.serve.app import create_app
from mathsym_zoo.serve.models import ModelPool, find_runs
from mathsym_zoo.serve.payloads import MAX_BODY_BYTES, PredictBody
from predict_helpers import BENCH_ZIP, small_cnn, wrap, write_run
from serve_helpers import real_strokes

CLASSES = ("alpha", "ascii_124", "sqrt", "my_symbol")
STROKE = [[[0, 0], [10, 12], [20, 3]], [[5, 5]]]


# -- same pixels as the data ------------------------------------------------------------


def _near(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the ink of ``a`` within one pixel of ink of ``b``."""
    grown = np.asarray(Image.fromarray(np.where(b, 0, 255).astype(np.uint8)).filter(ImageFilter.MinFilter(3))) < 128
    return float((a & grown).sum() / max(1, a.sum()))


def test_strokes_render_like_the_dataset_images():
    """The 637 real pen-stroke sets of crohme_bench_strokes.json, rendered by the server's path,
    against the archive images made from the same strokes (JPEG noise aside)."""
    symbols = real_strokes()
    assert len(symbols) == 637
    ious, near, ink = [], [], [0, 0]
    with zipfile.ZipFile(BENCH_ZIP) as zf:
        for s in symbols:
            ours = PredictBody(strokes=s["strokes"]).image() < 128
            ref = np.asarray(Image.open(io.BytesIO(zf.read(s["member"]))).convert("L")) < 128
            ious.append((ours & ref).sum() / (ours | ref).sum())
            near.append(min(_near(ours, ref), _near(ref, ours)))
            ink[0] += ours.sum()
            ink[1] += ref.sum()
    assert min(near) >= 0.99, "every stroke pixel lies within a pixel of the real image's ink, and back"
    assert np.median(ious) >= 0.95 and np.mean(ious) >= 0.9  # most images are pixel-identical
    assert 0.95 <= ink[0] / ink[1] <= 1.05  # one-pixel lines, not thicker or thinner


# -- the API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    shape = (45, 45, 1)
    for name, seed, top1 in (("small-a", 0, 0.5), ("small-b", 1, 0.9)):
        run = write_run(root / "comparisons" / "demo-1" / "runs" / name, wrap(small_cnn(shape, len(CLASSES), seed), shape),
                        CLASSES, extra={"status": "completed", "source": {"name": "demo"},
                                        "created": "2026-11-25T10:00:00+00:00"})
        (run / "metrics.json").write_text(json.dumps({"test": {"accuracy": top1}}))
    return root


@pytest.fixture(scope="module")
def pool(runs_root):
    return ModelPool(find_runs(runs_root / "runs", runs_root / "comparisons"))


@pytest.fixture()
def client(pool, tmp_path):
    return TestClient(create_app(pool, samples_dir=tmp_path / "samples"))


def test_models_lists_runs_best_first(client):
    models = client.get("/api/models").json()
    assert [m["id"] for m in models] == ["demo-1/small-b", "demo-1/small-a"]
    assert models[0] == {"id": "demo-1/small-b", "model": "small_cnn", "source": "demo", "top1": 0.9,
                         "classes": list(CLASSES)}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_predict_returns_top_k_with_latex_through_the_compiled_path(client, pool):
    r = client.post("/api/predict", json={"strokes": STROKE, "top_k": 3, "model": "demo-1/small-a"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "demo-1/small-a" and isinstance(body["ms"], float) and body["ms"] > 0
    preds = body["predictions"]
    assert len(preds) == 3
    latex = {"alpha": "\\alpha", "ascii_124": "|", "sqrt": "\\sqrt{}", "my_symbol": "my_symbol"}
    assert all(p["latex"] == latex[p["label"]] for p in preds)
    probs = [p["probability"] for p in preds]
    assert probs == sorted(probs, reverse=True)
    # The same numbers as the classifier on the rendered drawing.
    clf = pool.classifier("demo-1/small-a")
    direct = clf.predict(PredictBody(strokes=STROKE).image(), top_k=3)[0]
    assert [p["label"] for p in preds] == list(direct.labels)
    np.testing.assert_allclose(probs, direct.probabilities, rtol=1e-5)
    # Defaults: the first model, k = 5 capped at the class count.
    body = client.post("/api/predict", json={"strokes": STROKE}).json()
    assert body["model"] == "demo-1/small-b" and len(body["predictions"]) == len(CLASSES)


def _post(client, path, raw: bytes, ctype="application/json"):
    return client.post(path, content=raw, headers={"content-type": ctype})


@pytest.mark.parametrize("raw, status, words", [
    (b'{"strokes": [[[0, 0]]', 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b'[1, 2]', 422, "body"),
    (b'{}', 422, "strokes: Field required"),
    (b'{"strokes": []}', 422, "strokes: List should have at least 1 item"),
    (b'{"strokes": [[]]}', 422, "strokes[0]: List should have at least 1 item"),
    (b'{"strokes": [[[0, NaN]]]}', 422, "strokes[0][0][1]: Input should be a finite number"),
    (b'{"strokes": [[[0, Infinity]]]}', 422, "finite number"),
    (b'{"strokes": [[[1e300, 0]]]}', 422, "strokes[0][0][0]: Input should be less than or equal to 100000"),
    (b'{"strokes": [[[0, 0, 0]]]}', 422, "strokes[0][0]"),
    (b'{"strokes": [[["a", 0]]]}', 422, "strokes[0][0][0]"),
    (b'{"strokes": [[[0, 0]]], "top_k": 0}', 422, "top_k"),
    (b'{"strokes": [[[0, 0]]], "path": "/etc/passwd"}', 422, "path: Extra inputs are not permitted"),
    (b'{"strokes": [' + b",".join([b"[[0, 0]]"] * 10_000) + b"]}", 422, "at most 100 items"),
    (b'{"strokes": [[' + b",".join([b"[1, 2]"] * 2_001) + b"]]}", 422, "at most 2000 items"),
    (b'{"strokes": [' + b",".join([b"[" + b",".join([b"[1, 2]"] * 1_000) + b"]"] * 11) + b"]}", 422,
     "11000 points in all; at most 10000"),
])
def test_malformed_predict_payloads_get_a_message(client, raw, status, words):
    r = _post(client, "/api/predict", raw)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_big_bodies_and_other_content_types_are_refused(client):
    big = b'{"strokes": [[' + b",".join([b"[1, 2]"] * 200_000) + b"]]}"  # about 1.4 MiB
    assert len(big) > 4 * MAX_BODY_BYTES
    r = _post(client, "/api/predict", big)
    assert r.status_code == 413 and "256 KiB" in r.json()["error"]

    def chunks():  # no Content-Length: counted while reading
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = _post(client, "/api/predict", json.dumps({"strokes": STROKE}).encode(), ctype="text/plain")
    assert r.status_code == 415 and "application/json" in r.json()["error"]


def test_unknown_model_gets_404_with_the_choices(client):
    r = client.post("/api/predict", json={"strokes": STROKE, "model": "nope"})
    assert r.status_code == 404
    assert r.json()["choices"] == ["demo-1/small-b", "demo-1/small-a"] and "nope" in r.json()["error"]


def test_samples_are_written_and_read_back_as_an_archive_source(client, tmp_path):
    from mathsym_zoo_plugins.source_archive import ArchiveSource

    r = client.post("/api/samples", json={"strokes": STROKE, "label": "alpha"})
    assert r.status_code == 201, r.text
    path = r.json()["path"]
    assert path.startswith("alpha/") and path.endswith(".png") and "/" not in path[len("alpha/"):]
    client.post("/api/samples", json={"strokes": [[[0, 0], [0, 9]]], "label": "ascii_124"})
    samples = tmp_path / "samples"
    image = np.asarray(Image.open(samples / path))
    assert image.shape == (45, 45) and np.array_equal(image, PredictBody(strokes=STROKE).image())
    assert json.loads((samples / path).with_suffix(".json").read_text())["strokes"] == STROKE

    records = [r for r in ArchiveSource(samples).records() if not r.skip]
    assert sorted(r.label for r in records) == ["alpha", "ascii_124"]


@pytest.mark.parametrize("label", ["nope", "../alpha", "alpha/../../x", ""])
def test_unknown_labels_get_422_with_the_choices(client, label, tmp_path):
    r = client.post("/api/samples", json={"strokes": STROKE, "label": label})
    assert r.status_code == 422
    assert "choices" not in r.json() or r.json()["choices"] == list(CLASSES)
    assert not (tmp_path / "samples").exists() or not any((tmp_path / "samples").rglob("*.png"))


def test_samples_are_off_without_a_folder(pool):
    client = TestClient(create_app(pool))
    r = client.post("/api/samples", json={"strokes": STROKE, "label": "alpha"})
    assert r.status_code == 403 and "--samples" in r.json()["error"]


def test_page_is_self_contained_and_host_checked(pool):
    client = TestClient(create_app(pool, allowed_hosts=["testserver"]))
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "{{CONFIG}}" not in page.text and '"ascii_124": "|"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from the network
    assert client.get("/symbols").text == page.text
    assert client.get("/static/katex/katex.min.js").status_code == 200
    assert client.get("/static/katex/fonts/KaTeX_Main-Regular.woff2").status_code == 200
    assert client.get("/static/katex/../app.py").status_code == 404
    assert TestClient(create_app(pool, allowed_hosts=["127.0.0.1"])).get("/").status_code == 400  # DNS rebinding


# -- runs ----------------------------------------------------------------------------------


def test_find_runs_newest_first_then_best_and_only_finished(runs_root, tmp_path):
    shape = (45, 45, 1)
    model = wrap(small_cnn(shape, 2), shape)
    for name, status, created in (("new-run", "completed", "2026-11-25T11:00:00+00:00"),
                                  ("crashed", "running", "2026-11-25T12:00:00+00:00")):
        write_run(tmp_path / "runs" / name, model, ("a", "b"), extra={"status": status, "created": created})
    (tmp_path / "runs" / "not-a-run").mkdir()
    found = find_runs(tmp_path / "runs", runs_root / "comparisons")
    assert [e.id for e in found] == ["new-run", "demo-1/small-b", "demo-1/small-a"]


def test_models_load_once_under_concurrent_requests(runs_root):
    calls = []

    def loader(path):
        calls.append(path)
        threading.Event().wait(0.05)
        return object()

    pool = ModelPool(find_runs(runs_root / "runs", runs_root / "comparisons"), loader=loader)
    threads = [threading.Thread(target=pool.classifier, args=("demo-1/small-a",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1


# -- the command ----------------------------------------------------------------------------


def test_serve_command_wiring(runs_root, tmp_path, monkeypatch, capsys):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    monkeypatch.chdir(tmp_path)
    run = str(runs_root / "comparisons" / "demo-1" / "runs" / "small-a")
    assert cli_run(["serve", run, "--port", "8765", "--samples", str(tmp_path / "s")]) == 0
    out, err = capsys.readouterr()
    assert started["host"] == "127.0.0.1" and started["port"] == 8765 and "http://127.0.0.1:8765/" in out
    assert "warning" not in err and (tmp_path / "s").is_dir()
    assert TestClient(started["app"], base_url="http://127.0.0.1").get("/api/models").json()[0]["id"] == "small-a"

    assert cli_run(["serve", run, "--host", "0.0.0.0"]) == 0
    assert "anyone who can reach this machine" in capsys.readouterr().err

    assert cli_run(["serve", "--runs-dir", str(tmp_path / "none")]) == 1
    assert "no finished run" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_prints_the_url_and_stops_cleanly_on_ctrl_c(runs_root):
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    run = runs_root / "comparisons" / "demo-1" / "runs" / "small-a"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mathsym_zoo", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "serving on" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert f"serving on http://127.0.0.1:{port}/" in line
        for _ in range(100):  # uvicorn binds just after the banner
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the server never answered /healthz")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
