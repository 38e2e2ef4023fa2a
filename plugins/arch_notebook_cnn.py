"""notebook-cnn: the first notebook's network, layer for layer.

Three 3x3 convolutions with max pooling, then a small dense stack. Kept exactly
as the notebook built it (no BatchNorm, no padding) so that it is the baseline
the other architectures are compared against: with a 45x45x3 input and 83
outputs it has the notebook's 90,707 parameters.
"""

from __future__ import annotations

from pydantic import Field

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params


class NotebookCNNParams(Params):
    """The notebook's two dropout rates; the layer sizes are fixed by design."""

    spatial_dropout: float = Field(0.2, ge=0, lt=1, description="SpatialDropout2D after the third convolution")
    dropout: float = Field(0.4, ge=0, lt=1, description="Dropout between the 32- and 16-unit dense layers")


def build_notebook_cnn(params: NotebookCNNParams, input_shape, num_classes: int):
    """Conv(64)-Pool-Conv(64)-Pool-Conv(48)-SpatialDropout-Pool-Flatten-Dense(48,32,16)-softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(64, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Conv2D(48, 3, activation="relu", name="conv3")(x)
    x = layers.SpatialDropout2D(params.spatial_dropout, name="spatial_dropout")(x)
    x = layers.MaxPooling2D(name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(48, activation="relu", name="dense1")(x)
    x = layers.Dense(32, activation="relu", name="dense2")(x)
    x = layers.Dropout(params.dropout, name="dropout")(x)
    x = layers.Dense(16, activation="relu", name="dense3")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="notebook_cnn")


@hookimpl
def register_architectures(register):
    register(
        "notebook-cnn",
        summary="The original notebook's CNN (3 conv + 4 dense layers, no BatchNorm): the baseline.",
        params=NotebookCNNParams,
        factory=build_notebook_cnn,
    )
