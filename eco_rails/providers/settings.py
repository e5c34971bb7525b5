"""Validated provider parameters, shared by the NeMo Guardrails provider and the LangChain chat model.

The decoding fields come from :class:`~eco_rails.engine.generation.GenerationFields` (declared once);
:class:`ProviderFields` adds what a provider needs beyond one call (device, dtype, corruption, chat
template, system prompt). :class:`ProviderSettings` is the strict form for ``models[].parameters``, and
:class:`~eco_rails.providers.langchain.EcoChatModel` inherits :class:`ProviderFields` directly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from eco_rails.engine.corruption.spec import CorruptionSpec, method_hint
from eco_rails.engine.generation import EcoEngine, GenerationFields, GenerationSettings, get_engine
from eco_rails.engine.vllm_backend import VllmEngine, VllmSettings, get_vllm_engine
from eco_rails.errors import ConfigError
from eco_rails.validation import format_validation_error


class ProviderFields(GenerationFields):
    """Everything a provider is configured with: decoding plus device, dtype, corruption and prompting."""

    adapter: str | None = Field(
        default=None,
        description="a local PEFT adapter directory served on top of the model (a fine-tuned chatbot); relative paths "
        "are read from the working directory")
    merge_adapter: bool = Field(
        default=False,
        description="fold the adapter into the weights at load (peft's merge_and_unload): faster on CPU; answers are "
        "then the merged model's, which rounds differently from the unmerged PeftModel")
    device: str | None = Field(default=None, description="auto (default), cpu, cuda, cuda:1, ...")
    dtype: str | None = Field(default=None, description="auto (default: bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    corruption: CorruptionSpec = Field(default_factory=CorruptionSpec, description="how flagged tokens are corrupted")
    chat_template: bool = Field(default=True, description="wrap string prompts in the model's chat template")
    system_prompt: str | None = Field(default=None, description="prepended unless the chat has a system message")
    backend: Literal["local", "vllm"] = Field(
        default="local", description="local: the model runs in this process; vllm: a vLLM server runs it (set `vllm`)")
    vllm: VllmSettings | None = Field(default=None, description="the vLLM server, with backend: vllm (url, served_model, "
                                      "api_key_env, timeout_s)")

    @model_validator(mode="after")
    def _backend_settings(self) -> Any:
        if self.backend == "vllm" and self.vllm is None:
            raise ValueError("backend: vllm needs the server: add `vllm: {url: http://HOST:PORT}` beside it")
        if self.backend == "local" and self.vllm is not None:
            raise ValueError("`vllm` settings are given but backend is local; add `backend: vllm` to use the server")
        if self.backend == "vllm" and self.adapter:
            raise ValueError("adapter is not supported with backend: vllm (serve the merged model, or the adapter "
                             "with vLLM's own --lora-modules, and point `model` at the merged directory)")
        if self.merge_adapter and not self.adapter:
            raise ValueError("merge_adapter is set but there is no adapter to merge; add `adapter: <folder>` or remove it")
        if self.backend == "vllm" and self.no_repeat_ngram_size:
            raise ValueError("no_repeat_ngram_size is not supported with backend: vllm (vLLM has no such sampling "
                             "parameter); use repetition_penalty")
        return self

    def build_engine(self, model: str) -> EcoEngine | VllmEngine:
        """The engine these settings describe: the shared in-process engine, or a vLLM server's client."""
        if self.backend == "vllm":
            assert self.vllm is not None
            return get_vllm_engine(model, self.vllm)
        return get_engine(model, device=self.device, dtype=self.dtype, adapter=self.adapter, merge_adapter=self.merge_adapter)

    @field_validator("corruption", mode="before")
    @classmethod
    def _corruption(cls, value: Any) -> Any:
        # A bare method name is shorthand for {method: <name>}.
        return {"method": value} if isinstance(value, str) else value

    def generation(self, stop: list[str] | None = None, **call_params: Any) -> GenerationSettings:
        """Decoding settings for one call: configured values, overridden by what the caller passes.

        A caller's temperature may only lower the configured one (NeMo asks for near-zero temperature
        on tasks that must be deterministic); ``max_tokens`` is accepted as an alias of ``max_new_tokens``.
        Raises :class:`ConfigError` for invalid call parameters.
        """
        max_new = call_params.get("max_new_tokens") or call_params.get("max_tokens") or self.max_new_tokens
        temperature = self.temperature
        if call_params.get("temperature") is not None:
            temperature = min(temperature, float(call_params["temperature"])) if temperature > 0 else 0.0
        stops = tuple(dict.fromkeys([*self.stop, *(stop or [])]))
        # Every decoding field as configured (a field added to GenerationFields reaches each call by itself), then
        # what this call may change.
        configured = {name: getattr(self, name) for name in GenerationFields.model_fields}
        return GenerationSettings.parse(
            {**configured, "max_new_tokens": int(max_new), "min_new_tokens": min(self.min_new_tokens, int(max_new)),
             "temperature": temperature, "top_p": call_params.get("top_p", self.top_p), "stop": stops,
             "seed": call_params.get("seed", self.seed)},
            source="call parameters",
        )


class ProviderSettings(ProviderFields):
    """Everything a rails config may put under ``models[].parameters`` for ``engine: eco``.

    Unknown keys are rejected (NeMo Guardrails would otherwise pass them on silently).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    @classmethod
    def parse(cls, parameters: dict[str, Any], *, source: str = "models[].parameters") -> ProviderSettings:
        """Validate parameters; :class:`ConfigError` naming ``source``, the field and the fix."""
        try:
            return cls.model_validate(parameters)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, hint=method_hint, model=cls)) from None
