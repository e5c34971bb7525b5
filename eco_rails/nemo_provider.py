"""NeMo Guardrails 0.24 provider: ``engine: eco`` in a rails config's ``models:`` section.

NeMo's default framework builds registered providers as ``cls(model=<model>, **<parameters>)`` and calls
them through the :class:`nemoguardrails.types.LLMModel` protocol implemented here. Under
``NEMOGUARDRAILS_LLM_FRAMEWORK=langchain`` the same engine name maps to :class:`~eco_rails.langchain_chat.EcoChatModel`.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, List, Optional, Sequence, Union

from eco_rails.engine import EcoEngine, GenerationResult, get_engine
from eco_rails.flags import FlagDecider, FlagDecision
from eco_rails.markers import extract as extract_markers
from eco_rails.model_store import EMBEDDED_MODEL
from eco_rails.provider_settings import ProviderSettings

log = logging.getLogger(__name__)

ENGINE_NAME = "eco"
# Call-time keyword arguments NeMo (or a user) may pass that we understand; others are ignored.
_CALL_PARAMS = {"temperature", "max_tokens", "max_new_tokens", "top_p", "seed"}


def _to_engine_prompt(prompt: Union[str, Sequence[Any]]) -> Union[str, list[dict[str, str]]]:
    if isinstance(prompt, str):
        return prompt
    from eco_rails.prompting import normalize_messages

    return normalize_messages(prompt)


class EcoLLM:
    """A local Hugging Face causal LM that applies ECO corruption to flagged prompts.

    ``flag_decider`` (e.g. a :class:`~eco_rails.PromptClassifier`) decides per request; a caller may
    instead pass ``eco_flag=FlagDecision(...)`` to :meth:`generate_async` directly.
    """

    def __init__(self, model: str = EMBEDDED_MODEL, *, flag_decider: FlagDecider | None = None, **parameters: Any) -> None:
        self.settings = ProviderSettings.parse(parameters)
        self._model_ref = model or EMBEDDED_MODEL
        self.engine: EcoEngine = get_engine(self._model_ref, device=self.settings.device, dtype=self.settings.dtype)
        self.flag_decider = flag_decider

    # ---- LLMModel protocol properties ---------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self._model_ref

    @property
    def provider_name(self) -> Optional[str]:
        return ENGINE_NAME

    @property
    def provider_url(self) -> Optional[str]:
        return None

    # ---- helpers ------------------------------------------------------------------------------
    def _decide(self, prompt: Union[str, list[dict[str, str]]], explicit: FlagDecision | bool | None) -> FlagDecision:
        if isinstance(explicit, FlagDecision):
            return explicit
        if explicit is True:
            return FlagDecision.flag()
        if explicit is False or self.flag_decider is None:
            return FlagDecision.clean()
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return self.flag_decider.decide(messages)

    def _call_args(self, prompt: Union[str, Sequence[Any]], stop: Optional[List[str]], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        explicit = kwargs.pop("eco_flag", None)
        ignored = sorted(set(kwargs) - _CALL_PARAMS)
        if ignored:
            log.debug("eco provider ignores call parameters %s", ignored)
        # The ECO rail's decision arrives as signed markers in the text: verify, remove, and honour them.
        extracted = extract_markers(_to_engine_prompt(prompt))
        engine_prompt = extracted.prompt
        corruption = self.settings.corruption
        if explicit is None and extracted.flagged:
            explicit, corruption = extracted.rail_decision(corruption)
        return engine_prompt, {
            "flag": self._decide(engine_prompt, explicit),
            "corruption": corruption,
            "settings": self.settings.generation(stop, **{k: v for k, v in kwargs.items() if k in _CALL_PARAMS}),
            "use_chat_template": self.settings.chat_template,
            "system_prompt": self.settings.system_prompt,
        }

    def _response(self, result: GenerationResult):
        from nemoguardrails.types import LLMResponse, UsageInfo

        return LLMResponse(
            content=result.text,
            model=self.model_name,
            finish_reason=result.finish_reason,
            usage=UsageInfo(
                input_tokens=result.prompt_tokens,
                output_tokens=result.completion_tokens,
                total_tokens=result.prompt_tokens + result.completion_tokens,
            ),
        )

    # ---- LLMModel protocol methods ------------------------------------------------------------
    async def generate_async(self, prompt: Union[str, List[Any]], *, stop: Optional[List[str]] = None, **kwargs: Any):
        engine_prompt, call = self._call_args(prompt, stop, kwargs)
        result = await self.engine.agenerate(engine_prompt, **call)
        return self._response(result)

    async def stream_async(self, prompt: Union[str, List[Any]], *, stop: Optional[List[str]] = None, **kwargs: Any) -> AsyncIterator[Any]:
        from nemoguardrails.types import LLMResponseChunk

        engine_prompt, call = self._call_args(prompt, stop, kwargs)
        async for delta in self.engine.astream(engine_prompt, **call):
            yield LLMResponseChunk(delta_content=delta, model=self.model_name)
        yield LLMResponseChunk(delta_content="", model=self.model_name, finish_reason="stop")

    def __repr__(self) -> str:
        return f"EcoLLM(model={self._model_ref!r}, corruption={self.settings.corruption.method})"


def register_nemo_provider() -> None:
    """Register ``engine: eco`` with NeMo Guardrails' default framework, and with its LangChain
    framework when LangChain's optional packages are installed. Safe to call repeatedly."""
    from nemoguardrails.llm.frameworks import get_framework

    from nemoguardrails.llm.frameworks import get_default_framework

    get_framework("default").register_provider(ENGINE_NAME, EcoLLM)
    if get_default_framework() != "langchain":
        return  # importing LangChain's provider registry is slow; only pay for it when that framework is in use
    try:
        from eco_rails.langchain_chat import EcoChatModel

        get_framework("langchain").register_provider(ENGINE_NAME, EcoChatModel)
    except ImportError as exc:  # langchain / langchain-community not installed: default framework only
        log.debug("LangChain framework not available for engine %r: %s", ENGINE_NAME, exc)
