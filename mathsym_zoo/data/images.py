"""One conversion from any decoded Pillow image to the 8-bit pixels we store.

Ingest (the decode step and the ``grayscale`` preprocessor) and ``predict``
both go through :func:`to_8bit`, so a model sees at prediction time exactly
what it saw in training. Pillow's own ``convert("L")`` is not enough: it clips
16- and 32-bit integer and float images instead of scaling them (a 16-bit PNG
becomes two grey levels), and it turns transparent pixels black.

Rules, per mode:

* ``L`` and ``RGB``: unchanged.
* ``1`` (bilevel): 0 / 255.
* ``I;16*`` (16-bit): scaled from 0-65535 to 0-255 (``round(v / 257)``).
* ``I`` (32-bit signed): read as 16-bit when every value is in 0-65535 (how
  Pillow opens most 16-bit PNG and TIFF files), else scaled from
  0-2147483647; negative values become 0.
* ``F`` (float): values in 0-1 are scaled by 255, others clipped to 0-255;
  NaN becomes 0.
* ``P``, ``PA``, ``LA``, ``La``, ``RGBA``, ``RGBa``: composited on white paper
  (transparent pixels are paper, not ink); palettes keep their colours.
* ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion to ``RGB``.
* multi-frame files: the first frame; EXIF orientation: applied.
"""

from __future__ import annotations

import numpy as np

#: Modes stored as they are.
NATIVE_MODES = ("L", "RGB")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_GREY_ALPHA_MODES = ("LA", "La")
_TAGGED_FORMATS = ("TIFF", "MPO")  # orientation in their own tags, not in info["exif"]


def to_8bit(image):
    """A PIL image in mode ``L`` or ``RGB`` showing what ``image`` shows (rules above)."""
    from PIL import ImageOps

    if getattr(image, "n_frames", 1) > 1 and image.tell() != 0:
        image.seek(0)
    if "exif" in image.info or image.format in _TAGGED_FORMATS:  # parsing EXIF costs ~10% of a decode
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in NATIVE_MODES:
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        return _scaled_grey(image)
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return _on_white(image, grey=mode in _GREY_ALPHA_MODES)
    return image.convert("RGB")  # P without transparency, CMYK, YCbCr, LAB, HSV


def to_array(image) -> np.ndarray:
    """uint8 ``(H, W, C)`` pixels of :func:`to_8bit` (C = 1 or 3)."""
    array = np.asarray(to_8bit(image), dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def _scaled_grey(image):
    """An ``L`` image from a 16/32-bit integer or float image, scaled, not clipped."""
    from PIL import Image

    values = _grey_values(image)
    if image.mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.min() >= 0 and values.max() <= 1:
            values = values * 255.0
    elif image.mode.startswith("I;16") or (values.size == 0 or (values.min() >= 0 and values.max() <= 65535)):
        values = values / 257.0
    else:
        values = values * (255.0 / 2147483647.0)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _grey_values(image) -> np.ndarray:
    """The pixel values of a one-band wide image as float64, whatever its byte order."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}[image.mode]
        raw = np.frombuffer(image.tobytes(), dtype=dtype)
        return raw.reshape(image.height, image.width).astype(np.float64)
    if image.mode not in ("I", "F"):  # I;32, I;16S... : Pillow's own widening keeps the values
        image = image.convert("I")
    return np.asarray(image, dtype=np.float64)


def _on_white(image, *, grey: bool):
    """Composite an image with transparency on white paper."""
    from PIL import Image

    rgba = image.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return flat.convert("L" if grey else "RGB")
