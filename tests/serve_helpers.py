"""A small trained run and real pen strokes for the serve tests and benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from predict_helpers import small_cnn, wrap, write_run

STROKES_JSON = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "crohme_bench_strokes.json"


def demo_trained_run(run_dir: Path, *, per_class: int = 24, epochs: int = 4, extra: dict | None = None) -> Path:
    """A small CNN trained for a few epochs on demo images of all 82 classes (seconds on a CPU)."""
    import keras

    from mathsym_zoo_plugins.demo_generator import CLASS_NAMES, generate

    images = np.stack([generate(label, 0, i, i % 12) for label in CLASS_NAMES for i in range(per_class)])[..., None]
    labels = np.repeat(np.arange(len(CLASS_NAMES)), per_class)
    model = wrap(small_cnn(images.shape[1:], len(CLASS_NAMES)), images.shape[1:])
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(images.astype("float32"), labels, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    info = {"status": "completed", "source": {"name": "demo"}, "created": "2026-11-25T12:00:00+00:00", **(extra or {})}
    return write_run(run_dir, model, CLASS_NAMES, extra=info)


def real_strokes(limit_per_class: int | None = None) -> list[dict]:
    """``[{"label", "member", "strokes"}]`` of crohme_bench_strokes.json, class by class."""
    data = json.loads(STROKES_JSON.read_text(encoding="utf-8"))
    out = []
    for label, items in sorted(data["symbols_by_class"].items()):
        for item in items[:limit_per_class]:
            out.append({"label": label, "member": item["member"], "strokes": item["strokes"]})
    return out


class running_server:
    """``with running_server(app) as url:`` uvicorn on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False))

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
