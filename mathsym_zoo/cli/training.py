"""Commands for this area (filled by its issue)."""
from .app import app  # noqa: F401
