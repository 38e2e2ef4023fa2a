"""Classify images with a TFLite model exported by mathsym-zoo, with only a TFLite interpreter and Pillow.

    python tflite_predict.py EXPORT_DIR IMAGE [IMAGE ...]

EXPORT_DIR comes from ``mathsym-zoo export RUN --format tflite --out EXPORT_DIR``
(model.tflite, labels.txt, model_info.json). Prints one line per image:
the path, then the three best labels with their probabilities.

The interpreter is ai-edge-litert's (``pip install ai-edge-litert``), else
tflite-runtime's, else TensorFlow's. The preprocessing is the zoo's default
(grey levels, transparent pixels as white paper, fitted into the model's size
keeping the aspect ratio, centred on white); its parameters come from
``preprocessing`` in model_info.json. This file does not import mathsym_zoo.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def load_interpreter(model_path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(model_path))


def resize_pad_params(info: dict) -> dict:
    steps = {step["type"]: step.get("params", {}) for step in info["preprocessing"]}
    params = {"size": info["input_shape"][:2], "resample": "bicubic", "fill": 255}
    params.update(steps.get("resize_pad", {}))
    return params


def preprocess(path: str, size, resample: str = "bicubic", fill: int = 255) -> np.ndarray:
    """One image file as the model input: uint8 (height, width, 1)."""
    with Image.open(path) as image:
        image.load()  # the first frame of an animation
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        image = image.convert("L")
    height, width = size
    if image.size != (width, height):
        scale = min(width / image.width, height / image.height)
        new_w, new_h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        resized = image.resize((new_w, new_h), getattr(Image.Resampling, resample.upper()))
        image = Image.new("L", (width, height), fill)
        image.paste(resized, ((width - new_w) // 2, (height - new_h) // 2))
    return np.asarray(image, np.uint8)[..., None]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    folder = Path(argv[0])
    info = json.loads((folder / "model_info.json").read_text(encoding="utf-8"))
    labels = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
    batch = np.stack([preprocess(path, **resize_pad_params(info)) for path in argv[1:]])

    interpreter = load_interpreter(folder / info["file"])
    runner = interpreter.get_signature_runner("serving_default")  # input "image", output "probabilities"
    probabilities = runner(image=batch)["probabilities"]
    for path, probs in zip(argv[1:], probabilities):
        best = np.argsort(-probs, kind="stable")[:3]
        print(path, *(f"{labels[i]} {probs[i]:.6f}" for i in best), sep="\t")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
