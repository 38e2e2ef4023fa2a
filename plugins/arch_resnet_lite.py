"""resnet-lite: a small bottleneck ResNet for 45x45 symbol images.

Stem (3x3 conv, BatchNorm, ReLU), then stages of bottleneck blocks (1x1 reduce,
3x3, 1x1 expand, each with BatchNorm; projected shortcut where shape changes),
doubling the width and halving the resolution at every stage after the first,
then global average pooling, dropout and a softmax layer. Built from plain Keras
layers only, so saved models need no custom objects.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params

#: Moving-statistics momentum of BatchNorm (PyTorch's 0.1). Keras' 0.99 lags the fast-changing
#: statistics of short CPU trainings, which left inference accuracy far below training accuracy.
BN_MOMENTUM = 0.9


class ResNetLiteParams(Params):
    """Width, depth and regularisation of the network."""

    width: int = Field(16, ge=4, le=256, description="bottleneck width of the first stage (doubles per stage)")
    depths: list[int] = Field(default_factory=lambda: [1, 1, 1], description="bottleneck blocks per stage")
    expansion: int = Field(4, ge=1, le=8, description="output channels = expansion x bottleneck width")
    stem_stride: int = Field(2, ge=1, le=2, description="stride of the stem convolution (2 halves 45x45 first)")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout before the classifier")

    @field_validator("depths")
    @classmethod
    def _depths(cls, v: list[int]) -> list[int]:
        if not v or any(d < 1 for d in v):
            raise ValueError("needs one or more stages, each with at least one block, e.g. [1, 1, 1]")
        return v


def _bottleneck(x, filters: int, expansion: int, stride: int, name: str):
    from keras import layers

    out_channels = filters * expansion
    shortcut = x
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = layers.Conv2D(out_channels, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_reduce")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_reduce_bn")(y)
    y = layers.ReLU(name=f"{name}_reduce_relu")(y)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_conv_bn")(y)
    y = layers.ReLU(name=f"{name}_conv_relu")(y)
    y = layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_expand")(y)
    # No zero-initialised gamma here (the Goyal et al. trick): on CROHME it left inference
    # accuracy at 18% while training mode reached 36%; with gamma = 1 inference reached 87%
    # (12k-image subset, 2 epochs).
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_expand_bn")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def build_resnet_lite(params: ResNetLiteParams, input_shape, num_classes: int):
    """Stem, ``len(depths)`` stages of bottleneck blocks, GAP, dropout, softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(2 * params.width, 3, strides=params.stem_stride, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, depth in enumerate(params.depths):
        filters = params.width * 2**stage
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _bottleneck(x, filters, params.expansion, stride, name=f"stage{stage + 1}_block{block + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(params.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="resnet_lite")


@hookimpl
def register_architectures(register):
    register(
        "resnet-lite",
        summary="Small bottleneck ResNet (BatchNorm, projected shortcuts, GAP head).",
        params=ResNetLiteParams,
        factory=build_resnet_lite,
    )
