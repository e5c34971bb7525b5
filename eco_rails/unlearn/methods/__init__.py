"""Registry of unlearning methods (like peft's tuners): one module per method, each defining ``METHOD``."""

from __future__ import annotations

from eco_rails.unlearn.methods.base import RowBatch, UnlearnMethod
from eco_rails.unlearn.methods.ga import METHOD as GA
from eco_rails.unlearn.methods.gd import METHOD as GD
from eco_rails.unlearn.methods.memflex import METHOD as MEMFLEX
from eco_rails.unlearn.methods.npo import METHOD as NPO

__all__ = ["RowBatch", "UnlearnMethod", "get_method", "method_names", "register"]

_REGISTRY: dict[str, UnlearnMethod] = {}


def register(method: UnlearnMethod) -> None:
    """Add a method (a later registration under the same name replaces the earlier one)."""
    _REGISTRY[method.name] = method


def method_names() -> list[str]:
    return list(_REGISTRY)


def get_method(name: str) -> UnlearnMethod:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown unlearning method {name!r}; choose one of {', '.join(_REGISTRY)}.") from None


for _m in (MEMFLEX, GA, GD, NPO):
    register(_m)
