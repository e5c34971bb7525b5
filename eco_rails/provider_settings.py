"""Validated settings shared by the NeMo Guardrails provider and the LangChain chat model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from eco_rails.corruptions import CorruptionSpec, format_validation_error
from eco_rails.engine import GenerationSettings
from eco_rails.errors import ConfigError


class ProviderSettings(BaseModel):
    """Everything a rails config may put under ``models[].parameters`` for ``engine: eco``.

    Unknown keys are rejected (NeMo Guardrails would otherwise pass them on silently).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    device: str | None = Field(default=None, description="auto (default), cpu, cuda, cuda:1, ...")
    dtype: str | None = Field(default=None, description="auto (default: bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    max_new_tokens: PositiveInt = 256
    min_new_tokens: int = Field(default=0, ge=0, description="suppress end-of-sequence before this many tokens (benchmarks)")
    temperature: float = Field(default=0.0, ge=0.0, description="0 decodes greedily")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    corruption: CorruptionSpec = Field(default_factory=CorruptionSpec)
    chat_template: bool = Field(default=True, description="wrap string prompts in the model's chat template")
    system_prompt: str | None = None

    @field_validator("corruption", mode="before")
    @classmethod
    def _corruption(cls, value: Any) -> Any:
        # A bare method name is shorthand for {method: <name>}.
        return {"method": value} if isinstance(value, str) else value

    @classmethod
    def parse(cls, parameters: dict[str, Any], *, source: str = "models[].parameters") -> "ProviderSettings":
        try:
            return cls.model_validate(parameters)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from None

    def generation(self, stop: list[str] | None = None, **call_params: Any) -> GenerationSettings:
        """Decoding settings for one call: config values, overridden by what the caller passes.

        A caller's temperature may only lower the configured one (NeMo asks for near-zero temperature
        on tasks that must be deterministic); ``max_tokens`` is accepted as an alias of ``max_new_tokens``.
        """
        max_new = call_params.get("max_new_tokens") or call_params.get("max_tokens") or self.max_new_tokens
        temperature = self.temperature
        if call_params.get("temperature") is not None:
            temperature = min(temperature, float(call_params["temperature"])) if temperature > 0 else 0.0
        stops = tuple(dict.fromkeys([*self.stop, *(stop or [])]))
        return GenerationSettings.parse(
            {"max_new_tokens": int(max_new), "min_new_tokens": min(self.min_new_tokens, int(max_new)), "temperature": temperature, "top_p": call_params.get("top_p", self.top_p),
             "stop": stops, "seed": call_params.get("seed", self.seed)},
            source="call parameters",
        )
