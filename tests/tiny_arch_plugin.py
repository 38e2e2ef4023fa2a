"""A tiny architecture for fast training tests, loaded as a local plugin file."""

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params


class TinyParams(Params):
    width: int = 4
    dropout: float = 0.0


def build_tiny(params, input_shape, num_classes):
    import keras

    layers = [keras.Input(shape=tuple(input_shape)), keras.layers.Conv2D(params.width, 3, activation="relu"),
              keras.layers.GlobalAveragePooling2D()]
    if params.dropout:
        layers.append(keras.layers.Dropout(params.dropout))
    layers.append(keras.layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(layers, name="tiny")


@hookimpl
def register_architectures(register):
    register("tiny-test", summary="Test-only: one conv, global pooling, softmax.", params=TinyParams,
             factory=build_tiny)
