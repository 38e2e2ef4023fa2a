"""Drawings contributed from the page, saved as a dataset in the Kaggle layout.

``<samples>/<label>/<time>-<random>.png`` is the rendered 45x45 image (what the
``archive`` source reads); ``.json`` beside it keeps the strokes, so a better
renderer can redo the images later. Names are made here; the client only picks
a label from the known classes.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..fileio import atomic_write_bytes, atomic_write_text


def write_sample(samples_dir: Path, label: str, strokes: list[Any], image: np.ndarray, *,
                 model: str | None = None) -> Path:
    """Write one sample; returns the image path relative to ``samples_dir``."""
    if label in ("", ".", "..") or any(c in label for c in "/\\\0"):
        raise ValueError(f"label {label!r} cannot be a folder name")
    root = Path(samples_dir).resolve()
    folder = (root / label).resolve()
    if folder.parent != root:  # belt and braces: never outside the samples folder
        raise ValueError(f"label {label!r} cannot be a folder name")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{secrets.token_hex(4)}"
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
    record = {"label": label, "strokes": strokes, "model": model,
              "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    atomic_write_text(folder / f"{name}.json", json.dumps(record) + "\n")
    return (folder / f"{name}.png").relative_to(root)
