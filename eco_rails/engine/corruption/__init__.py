"""ECO corruptions: the registry of methods, the validated setting, and the pure torch functions.

Importing this package loads no torch: :func:`apply_corruption` and the functions are imported on use.
"""

from __future__ import annotations

from typing import Any

from eco_rails.engine.corruption.registry import (
    CorruptionMethod,
    corruption_method_names,
    get_corruption_method,
    register_corruption_method,
)
from eco_rails.engine.corruption.spec import DEFAULT_NOISE_STRENGTH, CorruptionSpec, DimSelection, corruption_seed, seed_from_text

_LAZY = {"apply_corruption", "contiguous_segments", "rand_noise", "zero_out", "flip_sign", "reverse", "shuffle"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from eco_rails.engine.corruption import functions

        return getattr(functions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_NOISE_STRENGTH", "CorruptionMethod", "CorruptionSpec", "DimSelection", "apply_corruption",
    "contiguous_segments", "corruption_method_names", "get_corruption_method", "register_corruption_method",
    "corruption_seed",
    "seed_from_text",
]
