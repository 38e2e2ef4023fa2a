"""Start a run from another run's weights (``train MODEL --init-from RUN``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..runs import Run


def _classifier_weights(model) -> set[int]:
    """Ids of the tensors of the layer that owns the model's last trainable weight: the classifier."""
    if not model.trainable_weights:
        return set()
    owner = model.trainable_weights[-1].path.rsplit("/", 1)[0]
    return {id(v) for v in model.weights if v.path.rsplit("/", 1)[0] == owner}


def copy_weights(parent: Run, model, class_names: Sequence[str]) -> list[str]:
    """Copy ``parent``'s weights into ``model``, tensor by tensor in layer order.

    Layer names carry per-process counters (``conv2d_7``), so tensors are paired
    by position, which is stable for one architecture. When the class lists
    differ, the classifier layer keeps its fresh initialisation except for the
    classes both runs know, which are copied by class name. Returns notes.
    """
    from ..errors import ConfigError

    source = parent.load_model()
    head_ids = _classifier_weights(model)
    parent_classes = list(parent.class_names or ())
    same_classes = parent_classes == list(class_names)
    if len(source.weights) != len(model.weights):
        raise ConfigError(f"--init-from {parent.path}: its model has {len(source.weights)} weight tensors, this one "
                          f"{len(model.weights)}; were they built with other architecture parameters?")
    copied = 0
    for var, src in zip(model.weights, source.weights):
        if id(var) in head_ids and not same_classes:
            _copy_class_columns(src, var, parent_classes, class_names)
        elif tuple(src.shape) == tuple(var.shape):
            var.assign(src.numpy())
            copied += 1
        else:
            raise ConfigError(f"--init-from {parent.path}: weight {src.path} has shape {tuple(src.shape)}, this "
                              f"model's {var.path} {tuple(var.shape)}; the architecture parameters differ")
    notes = [f"initialised from {parent.path}: {copied} weight tensors copied"]
    if not same_classes:
        shared = len(set(parent_classes) & set(class_names))
        notes.append(f"new classifier layer: the parent knows {len(parent_classes)} classes, this data has "
                      f"{len(class_names)}; the {shared} classes in both keep their trained weights")
    return notes


def _copy_class_columns(src, var, parent_classes: Sequence[str], class_names: Sequence[str]) -> None:
    if src is None or tuple(src.shape[:-1]) != tuple(var.shape[:-1]):
        return
    values, old = np.array(var.numpy()), src.numpy()
    where = {name: i for i, name in enumerate(parent_classes)}
    for j, name in enumerate(class_names):
        if name in where:
            values[..., j] = old[..., where[name]]
    var.assign(values)
