"""mathsym-zoo: a plugin-based model zoo for handwritten math-symbol classification.

Importing this package is cheap: TensorFlow loads only when a model is built,
trained or evaluated.
"""

from __future__ import annotations

from .plugins import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
