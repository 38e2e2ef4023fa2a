"""PLACEHOLDER: replaced by its owner issue."""

from mathsym_zoo import hookimpl
from mathsym_zoo.components import Params


class _P(Params):
    pass


def _factory(*args, **kwargs):
    raise NotImplementedError("mobilenet-head is not implemented yet")


@hookimpl
def register_architectures(register):
    register("mobilenet-head", summary="(not implemented yet)", params=_P, factory=_factory)
