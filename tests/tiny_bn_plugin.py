"""The "tiny-bn" architecture for tests that need BatchNorm: conv, BatchNorm, softmax."""

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params


def build(params, input_shape, num_classes):
    import keras

    return keras.Sequential([keras.Input(shape=tuple(input_shape)), keras.layers.Conv2D(4, 3),
                             keras.layers.BatchNormalization(), keras.layers.ReLU(),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(num_classes, activation="softmax")])


@hookimpl
def register_architectures(register):
    register("tiny-bn", summary="test-only: conv, BatchNorm, softmax", params=Params, factory=build)
