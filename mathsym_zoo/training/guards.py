"""Checks at the training boundary: the data can train a classifier, and an architecture
plugin's model has the shape and output the engine relies on.

Each failure is one :class:`ConfigError` or :class:`PluginError` naming what is wrong
and how to fix it, raised before anything is written.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, PluginError


def check_classes(labels: np.ndarray, class_names) -> None:
    """A classifier needs at least two classes on the train side."""
    present = np.unique(np.asarray(labels))
    if len(present) < 2:
        names = ", ".join(str(class_names[i]) for i in present) or "none"
        raise ConfigError(f"the train side holds {len(present)} class ({names}); a classifier needs at least 2. "
                          "Check the source's labels (label_pattern, the folder layout: "
                          "extracted_images/<label>/<image>)")


def _fail(component, problem: str) -> PluginError:
    return PluginError(f"architecture {component.name!r} of plugin {component.plugin!r}: {problem}. The factory must "
                       "return a keras.Model taking the image batch and giving one softmax output (None, classes)")


def check_architecture(component, model, input_shape, num_classes: int) -> None:
    """The factory returned a Keras model with one output of shape ``(None, num_classes)``
    whose rows are probabilities (non-negative, summing to 1)."""
    import keras

    if not isinstance(model, keras.Model):
        raise _fail(component, f"its factory returned {type(model).__name__}, not a keras.Model")
    if len(model.outputs or ()) != 1:
        raise _fail(component, f"the model has {len(model.outputs or ())} outputs, expected 1")
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[-1] != num_classes:
        raise _fail(component, f"its output has shape {shape}, expected (None, {num_classes}) for the "
                               f"{num_classes} classes")
    probe = np.random.default_rng(0).random((2, *input_shape)).astype("float32")
    out = np.asarray(keras.ops.convert_to_numpy(model(probe, training=False)), dtype=np.float64)
    if not np.all(np.isfinite(out)) or out.min() < -1e-6 or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise _fail(component, f"its outputs are not probabilities (row sums {np.round(out.sum(axis=1), 3).tolist()}); "
                               "the zoo's loss expects a softmax, not logits: end the model with "
                               "Activation('softmax')")
