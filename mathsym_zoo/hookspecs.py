"""Hook specifications: the contract between the core and every plugin.

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose
names match the specs below. Each hook receives a ``register`` callback; the
plugin calls it once per component it provides::

    from mathsym_zoo import hookimpl

    @hookimpl
    def register_architectures(register):
        register("tiny-mlp", summary="...", params=TinyParams, factory=build_tiny)

``register(name, *, summary, params, factory)`` takes:

* ``name``: the component name used in ``registry.toml`` (unique per kind),
* ``summary``: one line shown by ``mathsym-zoo models|sources|preprocessors``,
* ``params``: a pydantic ``BaseModel`` subclass; every field needs a default,
  and unknown keys are rejected,
* ``factory``: a callable building the component from validated parameters
  (signatures below).

Factories should import heavy libraries (TensorFlow) inside their body so that
listing and validating components stays fast.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("mathsym_zoo")


# -- data --------------------------------------------------------------------


@hookspec
def register_sources(register):
    """Register dataset sources.

    :param register: ``register(name, *, summary, params, factory)``.
        ``factory(params, context) -> mathsym_zoo.sources.Source``, where
        ``context`` is a :class:`mathsym_zoo.components.BuildContext` (the
        registry folder, to resolve relative paths, and the cache folder).
        A source yields :class:`mathsym_zoo.sources.Record` objects (encoded
        image bytes or decoded arrays, each with its label and optional group
        id) and reports a stable ``fingerprint()`` that keys the decoded cache.
    :return: ignored.
    """


@hookspec
def register_preprocessors(register):
    """Register preprocessing steps.

    :param register: ``register(name, *, summary, params, factory)``.
        ``factory(params) -> mathsym_zoo.components.Preprocessor``. An
        *offline* step transforms each decoded ``PIL.Image`` once, at ingest
        (its parameters are part of the cache key); an *online* step returns a
        Keras layer that is placed inside the model, so saved models and
        exports apply it at prediction time too.
    :return: ignored.
    """


# -- models ------------------------------------------------------------------


@hookspec
def register_architectures(register):
    """Register model architectures.

    :param register: ``register(name, *, summary, params, factory)``.
        ``factory(params, input_shape, num_classes) -> keras.Model``: an
        uncompiled model taking float images of ``input_shape`` (H, W, C)
        scaled to 0-1 and ending in a softmax over ``num_classes``. Custom
        layers must be registered with ``keras.saving.register_keras_serializable``
        so saved models load with ``safe_mode=True``.
    :return: ignored.
    """
