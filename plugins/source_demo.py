"""PLACEHOLDER: replaced by its owner issue."""

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params


class _P(Params):
    pass


def _factory(*args, **kwargs):
    raise NotImplementedError("demo is not implemented yet")


@hookimpl
def register_sources(register):
    register("demo", summary="(not implemented yet)", params=_P, factory=_factory)
