"""tiny-mlp: a complete local architecture plugin in a dozen lines.

Drop this file in a folder named by ``plugin_paths`` in your registry (see
``examples/registry-tiny.toml``) and ``tiny-mlp`` becomes an architecture like
the built-in ones: ``mathsym-zoo models`` lists it, ``[models.<name>]`` tables
use it with ``type = "tiny-mlp"``.
"""

from pydantic import Field

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params


class TinyMLPParams(Params):
    units: int = Field(64, ge=1, description="width of the hidden layer")


def build_tiny_mlp(params, input_shape, num_classes):
    import keras  # inside the factory: listing plugins stays TensorFlow-free

    inputs = keras.Input(shape=tuple(input_shape))  # float images scaled to 0-1
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(params.units, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny_mlp")


@hookimpl
def register_architectures(register):
    register("tiny-mlp", summary="Flatten, one hidden Dense layer, softmax.", params=TinyMLPParams,
             factory=build_tiny_mlp)
