"""mobilenet-head: a MobileNetV2-style network sized for 45x45 inputs.

Inverted residual blocks (1x1 expansion, 3x3 depthwise, linear 1x1 projection,
identity shortcut when shapes match) with a width multiplier ``alpha``. Unlike
``keras.applications.MobileNetV2`` it does not need 224x224 inputs: a stride-2
stem and three stride-2 stages take 45x45 down to 3x3 (five halvings would
leave nothing). Head: 1x1 convolution, global average pooling, dropout,
softmax. Plain Keras layers only, so saved models need no custom objects.
"""

from __future__ import annotations

from pydantic import Field

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params

#: Moving-statistics momentum of BatchNorm (PyTorch's 0.1). Keras' 0.99 lags the fast-changing
#: statistics of short CPU trainings, which left inference accuracy far below training accuracy.
BN_MOMENTUM = 0.9

#: (expansion or None for the params' value, output channels, blocks, stride of the first block)
BLOCKS: tuple[tuple[int | None, int, int, int], ...] = (
    (1, 16, 1, 1),  # 23x23
    (None, 24, 2, 2),  # 12x12
    (None, 32, 2, 2),  # 6x6
    (None, 64, 2, 2),  # 3x3
    (None, 96, 1, 1),  # 3x3
)


class MobileNetHeadParams(Params):
    """Width multiplier, expansion ratio and head size."""

    alpha: float = Field(1.0, gt=0, le=4, description="width multiplier on every layer's channels")
    expansion: int = Field(4, ge=1, le=8, description="expansion ratio of the inverted residual blocks")
    last_channels: int = Field(256, ge=8, description="channels of the final 1x1 convolution (scaled by alpha when > 1)")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout before the classifier")


def _divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10% (as MobileNetV2)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _inverted_residual(x, expansion: int, channels: int, stride: int, name: str):
    from keras import layers

    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(y)
        y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_expand_bn")(y)
        y = layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_depthwise")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_depthwise_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_depthwise_relu")(y)
    y = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_project")(y)  # linear bottleneck
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_project_bn")(y)
    if stride == 1 and in_channels == channels:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def build_mobilenet_head(params: MobileNetHeadParams, input_shape, num_classes: int):
    """Stride-2 stem, inverted residual stages (:data:`BLOCKS`), 1x1 conv head, GAP, softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(_divisible(32 * params.alpha), 3, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    for i, (t, c, n, s) in enumerate(BLOCKS):
        for j in range(n):
            x = _inverted_residual(x, t or params.expansion, _divisible(c * params.alpha), s if j == 0 else 1,
                                   name=f"block{i + 1}_{j + 1}")
    head = _divisible(params.last_channels * max(1.0, params.alpha))
    x = layers.Conv2D(head, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(params.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="mobilenet_head")


@hookimpl
def register_architectures(register):
    register(
        "mobilenet-head",
        summary="MobileNetV2-style inverted residuals for 45x45 (width multiplier alpha).",
        params=MobileNetHeadParams,
        factory=build_mobilenet_head,
    )
