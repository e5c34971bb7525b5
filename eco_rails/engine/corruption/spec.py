"""What corruption to apply to flagged tokens: a validated, torch-free setting.

Policies, rails configs and providers all hold a :class:`CorruptionSpec`; only applying it needs torch
(:mod:`eco_rails.engine.corruption.functions`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from eco_rails.engine.corruption.registry import corruption_method_names, get_corruption_method
from eco_rails.errors import ConfigError
from eco_rails.validation import format_validation_error

DimSelection = Literal["first", "top_k"]

# Noise std for `rand_noise` when nothing else is configured. The embedded SmolLM2-135M has embedding
# std 0.136 (mean row norm 3.2); sigma 0.5 buries the token identity while leaving the template intact.
# A policy's learned strength (eco-rails optimize) replaces it.
DEFAULT_NOISE_STRENGTH = 0.5


def _method_schema(schema: dict[str, Any]) -> None:
    schema["enum"] = list(corruption_method_names())


def validate_method_name(value: object) -> object:
    """Pydantic validator body shared by every ``method`` field: the name must be registered."""
    if isinstance(value, str) and value not in corruption_method_names():
        raise ValueError(f"Input should be one of {', '.join(map(repr, corruption_method_names()))}")
    return value


def method_hint(err: dict) -> str | None:
    """The fix to print for a bad ``method`` value: the list of valid methods."""
    if "method" in err["loc"] and err["type"] == "value_error":
        return f"Valid methods: {', '.join(corruption_method_names())}."
    return None


MethodField = Field(default="rand_noise", description="A registered corruption method.", json_schema_extra=_method_schema)


class CorruptionSpec(BaseModel):
    """What corruption to apply to flagged tokens, and how strong.

    ``strength`` is the noise standard deviation for ``rand_noise`` and is ignored by methods that take
    none. ``dims`` is how many embedding dimensions are touched (``None``: all of them); ``select`` says
    which: the first ``dims`` (``first``) or each token's ``dims`` largest by magnitude (``top_k``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    method: str = MethodField
    strength: float = Field(default=DEFAULT_NOISE_STRENGTH, ge=0.0)
    dims: PositiveInt | None = None
    select: DimSelection = "first"

    @field_validator("method")
    @classmethod
    def _registered_method(cls, value: str) -> str:
        return validate_method_name(value)  # type: ignore[return-value]

    @classmethod
    def parse(cls, value: object, *, source: str = "corruption") -> CorruptionSpec:
        """Validate user input (a mapping, a method name, or a spec) into a spec.

        Raises :class:`ConfigError` naming ``source`` and the offending field.
        """
        if isinstance(value, CorruptionSpec):
            return value
        if isinstance(value, str):
            value = {"method": value}
        if not isinstance(value, dict):
            raise ConfigError(
                f"{source}: expected a mapping like {{method: rand_noise, strength: 0.5}}, got {type(value).__name__}."
            )
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, hint=method_hint, model=cls)) from None

    @property
    def registered(self):
        """The registry entry of this spec's method."""
        return get_corruption_method(self.method)


def seed_from_text(*parts: str) -> int:
    """A stable 63-bit seed from text, identical across processes and machines (unlike ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def corruption_seed(prompt_text: str, spec: CorruptionSpec) -> int:
    """The seed of a prompt's corruption: from the prompt and the spec *without* its strength, so the noise of
    ``rand_noise`` points the same way at every strength and only its size changes. The strength search then
    sees a smooth objective (a new random direction per strength made the forget metric jump between
    neighbouring strengths)."""
    return seed_from_text(prompt_text, spec.model_dump_json(exclude={"strength"}))
