"""The ``mathsym-zoo`` command line (also ``python -m mathsym_zoo``).

Commands live in one module per area; none imports TensorFlow at module level,
so listing and checking stay fast.
"""

from __future__ import annotations

from .app import app, main, run
from . import core  # noqa: F401  (registers commands)
from . import data  # noqa: F401
from . import training  # noqa: F401
from . import compare  # noqa: F401
from . import predict  # noqa: F401
from . import serve  # noqa: F401

__all__ = ["app", "main", "run"]
