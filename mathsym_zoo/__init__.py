"""mathsym-zoo: a plugin-based model zoo for handwritten math-symbol classification.

Importing this package is cheap: the plugin machinery (pluggy, pydantic) loads
when ``hookimpl`` is first used, TensorFlow only when a model is built, trained
or evaluated.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]


def __getattr__(name: str):
    # `from mathsym_zoo import hookimpl` (every plugin) imports the plugin machinery;
    # `mathsym-zoo --help` and `--version` never need it.
    if name == "hookimpl":
        from .plugins import hookimpl

        return hookimpl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
