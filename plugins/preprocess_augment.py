"""Online augmentation for writer shift: distort the symbol, then re-fit it to the box.

Three steps, each a Keras layer inside the model (training only; identity at
inference, so saved models and exports are unchanged at prediction time):

* ``random_affine``: small rotation, shear and anisotropic scale (other hands' slant and proportions);
* ``elastic``: a smooth random displacement field (wobbly strokes);
* ``random_erasing``: paper over a small rectangle (broken or faint strokes).

Unlike ``augment`` (zoom and shift of the finished image), each re-fits the ink so
its longer side fills the box, centred - how every image of the data was made.
None flips (a flipped symbol can be another symbol). The layers live in
``augment_layers`` (which imports TensorFlow), so listing plugins stays fast.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params, Preprocessor


class RefitParams(Params):
    probability: float = Field(1.0, ge=0, le=1, description="share of training images the step changes")
    seed: int | None = Field(None, description="seed of the random draws (None: a fresh one each build)")


class AffineParams(RefitParams):
    rotation: float = Field(10.0, ge=0, le=45, description="max rotation, degrees")
    shear: float = Field(0.3, ge=0, le=1, description="max horizontal shear (x += shear * y)")
    aspect: float = Field(0.25, ge=0, le=1, description="max change of the width:height ratio, fraction")
    probability: float = Field(0.8, ge=0, le=1, description="share of training images the step changes")


class ElasticParams(RefitParams):
    magnitude: float = Field(2.0, ge=0, le=8, description="max displacement, pixels of the 45 px box")
    grid: int = Field(4, ge=2, le=16, description="random control points per side (fewer: smoother)")
    probability: float = Field(0.5, ge=0, le=1, description="share of training images the step changes")


class ErasingParams(RefitParams):
    min_area: float = Field(0.02, ge=0, le=1, description="smallest erased rectangle, fraction of the box")
    max_area: float = Field(0.1, ge=0, le=1, description="largest erased rectangle, fraction of the box")
    probability: float = Field(0.3, ge=0, le=1, description="share of training images the step changes")

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_area > self.max_area:
            raise ValueError(f"min_area ({self.min_area:g}) must not exceed max_area ({self.max_area:g})")
        return self


class _RefitStep(Preprocessor):
    """An online step whose Keras layer is one class of ``augment_layers``."""

    stage = "online"
    layer_class = ""  # name in augment_layers

    def __init__(self, params: RefitParams):
        self.params = params

    def keras_layer(self):
        from mathsym_zoo_plugins import augment_layers

        return getattr(augment_layers, self.layer_class)(**self.params.model_dump())

    @staticmethod
    def register_keras_classes() -> None:
        """Import the layers so Keras knows their classes (a saved model loads with safe_mode=True)."""
        from mathsym_zoo_plugins import augment_layers  # noqa: F401  (registers on import)


class RandomAffine(_RefitStep):
    layer_class = "RandomAffineRefit"


class Elastic(_RefitStep):
    layer_class = "ElasticRefit"


class RandomErasing(_RefitStep):
    layer_class = "RandomErasingRefit"


@hookimpl
def register_preprocessors(register):
    register("random_affine", summary="Online: small rotation, shear and anisotropic scale, then re-fit to the box.",
             params=AffineParams, factory=RandomAffine)
    register("elastic", summary="Online: smooth random stroke displacement, then re-fit to the box.",
             params=ElasticParams, factory=Elastic)
    register("random_erasing", summary="Online: paper over a small random rectangle, then re-fit the ink left.",
             params=ErasingParams, factory=RandomErasing)
