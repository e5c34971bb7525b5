"""The registry of corruption methods, in the spirit of peft's ``register_peft_method``.

A method is registered once, by name, with what it needs (strength, dims, a random generator). The
built-in methods are registered here by *import path*, so the registry (and with it the policy schema and
the validation of configs) loads no torch; the function is imported on first use. A user can register a
method of their own with a callable::

    from eco_rails.engine.corruption import register_corruption_method
    register_corruption_method("scale", my_scale, uses_strength=True, description="multiply by strength")

A function takes the ``(T, d)`` block of one flagged span and keyword arguments among ``strength``,
``dims``, ``select`` and ``generator`` (as declared), and returns a new tensor.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from eco_rails.errors import ConfigError


@dataclass(frozen=True)
class CorruptionMethod:
    """One registered corruption: its name, its function (a callable or ``"module:attribute"``) and the
    settings it reads from a :class:`~eco_rails.engine.corruption.CorruptionSpec`."""

    name: str
    function: str | Callable[..., Any]
    uses_strength: bool = False
    uses_dims: bool = False
    seeded: bool = False
    description: str = ""
    _resolved: list[Callable[..., Any]] = field(default_factory=list, compare=False, repr=False)

    def resolve(self) -> Callable[..., Any]:
        """The function itself (imported on first use when registered by path)."""
        if not self._resolved:
            if callable(self.function):
                self._resolved.append(self.function)
            else:
                module, _, attr = self.function.partition(":")
                self._resolved.append(getattr(importlib.import_module(module), attr))
        return self._resolved[0]

    def apply(self, block: Any, spec: Any, generator: Any) -> Any:
        """Run the method on one span block with the settings of ``spec`` it declares."""
        kwargs: dict[str, Any] = {}
        if self.uses_strength:
            kwargs["strength"] = spec.strength
        if self.uses_dims:
            kwargs.update(dims=spec.dims, select=spec.select)
        if self.seeded:
            kwargs["generator"] = generator
        return self.resolve()(block, **kwargs)


_METHODS: dict[str, CorruptionMethod] = {}


def register_corruption_method(name: str, function: str | Callable[..., Any], *, uses_strength: bool = False,
                               uses_dims: bool = False, seeded: bool = False, description: str = "",
                               replace: bool = False) -> CorruptionMethod:
    """Register a corruption method under ``name``. Raises :class:`ConfigError` if the name is taken
    (pass ``replace=True`` to override on purpose)."""
    if not name or not name.replace("_", "").isalnum():
        raise ConfigError(f"Corruption method name {name!r}: use letters, digits and '_'.")
    if name in _METHODS and not replace:
        raise ConfigError(f"Corruption method {name!r} is already registered; pass replace=True to override it.")
    method = CorruptionMethod(name, function, uses_strength, uses_dims, seeded, description)
    _METHODS[name] = method
    return method


def corruption_method_names() -> tuple[str, ...]:
    """The registered method names, in registration order."""
    return tuple(_METHODS)


def get_corruption_method(name: str) -> CorruptionMethod:
    """The method registered under ``name``; :class:`ConfigError` listing the valid names otherwise."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"Unknown corruption method {name!r}. Valid methods: {', '.join(_METHODS)}.") from None


_FUNCTIONS = "eco_rails.engine.corruption.functions"
register_corruption_method("rand_noise", f"{_FUNCTIONS}:rand_noise", uses_strength=True, uses_dims=True, seeded=True,
                           description="add N(0, strength²) noise (the paper's main method)")
register_corruption_method("zero_out", f"{_FUNCTIONS}:zero_out", uses_dims=True, description="zero dimensions")
register_corruption_method("flip_sign", f"{_FUNCTIONS}:flip_sign", uses_dims=True, description="negate dimensions")
register_corruption_method("reverse", f"{_FUNCTIONS}:reverse", description="reverse token order inside the span")
register_corruption_method("shuffle", f"{_FUNCTIONS}:shuffle", seeded=True, description="permute token order inside the span")
