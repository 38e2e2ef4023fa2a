"""Pen strokes to an image, the way the Kaggle/CROHME symbol images were made.

One-pixel black polylines on white; the strokes' bounding box is scaled so its
longer side spans the whole box, centred, aspect kept. The ``demo`` source draws
its synthetic strokes through :func:`render`, and ``mathsym-zoo serve`` renders
what a person drew with it, so both look like the real data (a test compares
renders of real CROHME pen strokes with the archive's images).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["render", "SIZE"]

#: Side of the Kaggle/CROHME images, in pixels.
SIZE = 45


def render(strokes: Sequence[np.ndarray], size: int = SIZE) -> np.ndarray:
    """One-pixel black polylines on white, uint8 ``(size, size)``; longer side spans the box, centred.

    ``strokes``: arrays ``(n, 2)`` of x (right) and y (down) in any unit; at
    least one point in all.
    """
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    span = float(max(hi - lo)) or 1.0
    scale = (size - 1) / span
    centre = (lo + hi) / 2
    im = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(im)
    half = (size - 1) / 2
    for st in strokes:
        xy = (st - centre) * scale + half
        xy = np.clip(np.rint(xy), 0, size - 1).astype(np.int32)
        if len(xy) > 1:  # consecutive points on the same pixel add nothing but time
            xy = xy[np.concatenate([[True], (xy[1:] != xy[:-1]).any(1)])]
        if len(xy) == 1:
            draw.point(xy.ravel().tolist(), fill=0)
        else:
            draw.line(xy.ravel().tolist(), fill=0, width=1)
    return np.asarray(im, dtype=np.uint8)
