"""Draw-page speed: ``POST /api/predict`` on loopback against the same model's direct compiled call.

Starts the real ``mathsym-zoo serve`` in a subprocess on a free 127.0.0.1 port
for a model built like ``benchmarks/predict.py`` (``--arch``, untrained: speed
does not depend on the weights) or ``--run PATH``, then replays real pen strokes
of ``../shared/data/crohme_bench_strokes.json`` scaled to the page's 360 px canvas:

* one client: per-request wall time (p50/p95, JSON over a kept-alive HTTP
  connection) and the server's own time (``ms`` in the answer: render, offline
  preprocessing, compiled call, top-k);
* four concurrent clients: requests/s;
* baseline, in this process, in blocks alternating with the requests (same load):
  the compiled call alone on the preprocessed image, and render + preprocess +
  compiled call without HTTP.

Goal: server p50 <= 15 ms. Every loop is bounded; the server is stopped at the end.
Headline ``name: value`` lines last.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
STROKES = REPO.parent / "shared" / "data" / "crohme_bench_strokes.json"
CANVAS = 360


def drawings() -> list[list]:
    """Every real symbol's strokes, scaled into the canvas as the page would send them (0.1 px)."""
    data = json.loads(STROKES.read_text(encoding="utf-8"))
    out = []
    for items in data["symbols_by_class"].values():
        for item in items:
            pts = np.concatenate([np.asarray(s, float) for s in item["strokes"]])
            lo, hi = pts.min(0), pts.max(0)
            scale = CANVAS * 0.7 / max(float((hi - lo).max()), 1e-9)
            out.append([np.round((np.asarray(s, float) - (lo + hi) / 2) * scale + CANVAS / 2, 1).tolist()
                        for s in item["strokes"]])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "mathsym_zoo", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not answer /healthz within 120 s")


def client(port: int, bodies: list[bytes], wall: list, server: list) -> None:
    """Post each body once over one kept-alive connection; records wall and server milliseconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for body in bodies:
        start = time.perf_counter()
        conn.request("POST", "/api/predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        wall.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise SystemExit(f"predict failed: {response.status} {answer}")
        server.append(answer["ms"])
    conn.close()


def pct(values, q) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet-head", help="zoo architecture to build (ignored with --run)")
    parser.add_argument("--run", type=Path, help="an existing run folder to serve instead")
    parser.add_argument("--requests", type=int, default=400, help="requests of the one-client measurement")
    parser.add_argument("--concurrent", type=int, default=4, help="clients of the throughput measurement")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from predict import make_run  # the predict benchmark's run folder, so both measure the same model

    from mathsym_zoo.predict import load_classifier
    from mathsym_zoo.serve.app import top_k
    from mathsym_zoo.serve.payloads import PredictBody

    symbols = drawings()
    bodies = [json.dumps({"strokes": s, "top_k": 5}).encode() for s in symbols]
    picks = [bodies[i % len(bodies)] for i in range(args.requests)]
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or make_run(Path(tmp) / "run", args.arch)
        clf = load_classifier(run, warm_batch=1)
        inputs = [clf.preprocess(PredictBody(strokes=s).image()) for s in symbols]
        for x in inputs[:20]:
            clf.predict_proba(x)
        port = free_port()
        proc = start_server(run, port)
        try:
            client(port, picks[:20], [], [])  # warm-up
            # Direct calls and requests alternate in blocks, so both see the same load on a shared machine.
            wall, server, direct_call, direct_full = [], [], [], []
            for block in range(0, args.requests, 50):
                client(port, picks[block:block + 50], wall, server)
                for i in range(block, min(block + 50, args.requests)):
                    start = time.perf_counter()
                    clf.predict_proba(inputs[i % len(inputs)])
                    direct_call.append((time.perf_counter() - start) * 1000)
                    start = time.perf_counter()
                    top_k(clf, PredictBody(strokes=symbols[i % len(symbols)]).image(), 5)
                    direct_full.append((time.perf_counter() - start) * 1000)
            per_client = max(1, args.requests // args.concurrent)
            threads = [threading.Thread(target=client, args=(port, picks[i::args.concurrent][:per_client], [], []))
                       for i in range(args.concurrent)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rps = per_client * args.concurrent / (time.perf_counter() - start)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    points = [sum(len(s) for s in d) for d in symbols]
    print(f"model {args.run or args.arch}; {len(symbols)} real drawings ({int(np.median(points))} points median, "
          f"{int(np.median([len(b) for b in bodies]))} bytes per request median); {os.cpu_count()} CPUs")
    rows = [("loopback request, 1 client (wall)", wall), ("server time per request (ms field)", server),
            ("direct: render + preprocess + call", direct_full), ("direct: compiled call only", direct_call)]
    for label, values in rows:
        print(f"{label:>38}: p50 {pct(values, 50):6.2f} ms  p95 {pct(values, 95):6.2f} ms  (n={len(values)})")
    print(f"{'requests/s, ' + str(args.concurrent) + ' concurrent clients':>38}: {rps:.0f}")
    print()
    print(f"request_p50_ms: {pct(wall, 50):.2f}")
    print(f"request_p95_ms: {pct(wall, 95):.2f}")
    print(f"server_p50_ms: {pct(server, 50):.2f}")
    print(f"server_p95_ms: {pct(server, 95):.2f}")
    print(f"direct_call_p50_ms: {pct(direct_call, 50):.2f}")
    print(f"ratio request/direct-call p50: {pct(wall, 50) / pct(direct_call, 50):.2f}")
    print(f"requests_per_s_{args.concurrent}_clients: {rps:.0f}")


if __name__ == "__main__":
    main()
