"""Built-in preprocessing: offline image steps run once at ingest, online steps
inside the model (so saved models and exports apply them at prediction time)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params, Preprocessor

RESAMPLING = Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]


class GrayscaleParams(Params):
    pass


class Grayscale(Preprocessor):
    stage = "offline"

    def __init__(self, params: GrayscaleParams):
        self.params = params

    def apply(self, image):
        from mathsym_zoo.data.images import to_8bit

        # 16-bit and float images scaled (not clipped), transparent pixels white paper.
        image = to_8bit(image)
        return image if image.mode == "L" else image.convert("L")  # no copy of what is already grey

    def graph_apply(self, image):
        from mathsym_zoo import tf_imaging

        return tf_imaging.to_luma(tf_imaging.over_white(image))


class ResizePadParams(Params):
    size: tuple[int, int] = Field((45, 45), description="target (height, width) in pixels")
    resample: RESAMPLING = "bicubic"
    fill: int = Field(255, ge=0, le=255, description="padding grey level (255 = white paper)")


class ResizePad(Preprocessor):
    """Scale to fit ``size`` keeping the aspect ratio, then pad to centre."""

    stage = "offline"

    def __init__(self, params: ResizePadParams):
        self.params = params

    def apply(self, image):
        from PIL import Image

        h, w = self.params.size
        if image.size == (w, h):
            return image
        scale = min(w / image.width, h / image.height)
        nw, nh = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        resample = getattr(Image.Resampling, self.params.resample.upper())
        resized = image.resize((nw, nh), resample)
        fill = self.params.fill if image.mode == "L" else (self.params.fill,) * len(image.getbands())
        canvas = Image.new(image.mode, (w, h), fill)
        canvas.paste(resized, ((w - nw) // 2, (h - nh) // 2))
        return canvas

    def graph_apply(self, image):
        import tensorflow as tf

        from mathsym_zoo import tf_imaging

        p = self.params
        if p.resample not in tf_imaging.FILTERS:
            raise NotImplementedError(f"resize_pad resample={p.resample!r} has no exact TensorFlow version "
                                      f"(supported: {', '.join(tf_imaging.FILTERS)})")
        h, w = p.size
        shape = tf.shape(image)

        def fit():
            nh, nw = tf_imaging.fit_size(shape[0], shape[1], h, w)
            return tf_imaging.pad_to(tf_imaging.resize(image, nh, nw, p.resample), h, w, p.fill)

        same = (shape[0] == h) & (shape[1] == w)
        return tf.ensure_shape(tf.cond(same, lambda: image, fit), (h, w, None))


class InvertParams(Params):
    enabled: bool = True


class Invert(Preprocessor):
    """Swap ink and paper (for white-on-black data)."""

    stage = "offline"

    def __init__(self, params: InvertParams):
        self.params = params

    def apply(self, image):
        from PIL import ImageOps

        return ImageOps.invert(image) if self.params.enabled else image

    def graph_apply(self, image):
        return 255 - image if self.params.enabled else image


class AugmentParams(Params):
    rotation: float = Field(0.03, ge=0, le=0.5, description="max rotation, fraction of a full turn")
    zoom: float = Field(0.08, ge=0, lt=1, description="max zoom in/out, fraction")
    translation: float = Field(0.06, ge=0, lt=1, description="max shift, fraction of the side")
    seed: int | None = None


class Augment(Preprocessor):
    """Light geometric augmentation; active in training only."""

    stage = "online"

    def __init__(self, params: AugmentParams):
        self.params = params

    def keras_layer(self):
        import keras

        p = self.params
        # Fill with white paper (1.0 after scaling to 0-1); layers act only in training.
        return keras.Sequential(
            [
                keras.layers.RandomRotation(p.rotation, fill_mode="constant", fill_value=1.0, seed=p.seed),
                keras.layers.RandomZoom(p.zoom, fill_mode="constant", fill_value=1.0, seed=p.seed),
                keras.layers.RandomTranslation(p.translation, p.translation, fill_mode="constant", fill_value=1.0, seed=p.seed),
            ],
            name="augment",
        )


@hookimpl
def register_preprocessors(register):
    register("grayscale", summary="Convert to one grey channel (transparent pixels become white).",
             params=GrayscaleParams, factory=Grayscale)
    register("resize_pad", summary="Fit into a fixed size keeping the aspect ratio, pad with paper colour.",
             params=ResizePadParams, factory=ResizePad)
    register("invert", summary="Invert grey levels (white-on-black data to dark-on-white).",
             params=InvertParams, factory=Invert)
    register("augment", summary="Online: light random rotation, zoom and shift, inside the model, training only.",
             params=AugmentParams, factory=Augment)
