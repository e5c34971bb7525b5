"""NeMo Guardrails 0.24 provider: ``engine: eco`` in a rails config's ``models:`` section.

NeMo's default framework builds registered providers as ``cls(model=<model>, **<parameters>)`` and calls
them through the :class:`nemoguardrails.types.LLMModel` protocol implemented here. Under
``NEMOGUARDRAILS_LLM_FRAMEWORK=langchain`` the same engine name maps to
:class:`~eco_rails.providers.langchain.EcoChatModel`.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, Optional, Sequence, Union

from eco_rails.engine.flags import FlagDecider
from eco_rails.engine.generation import EcoEngine, GenerationResult
from eco_rails.engine.model_store import EMBEDDED_MODEL
from eco_rails.engine.prompting import normalize_messages
from eco_rails.engine.vllm_backend import VllmEngine
from eco_rails.providers import ECO_ENGINE
from eco_rails.providers.finish import record
from eco_rails.providers.request import EngineRequest, resolve_request
from eco_rails.providers.settings import ProviderSettings

log = logging.getLogger(__name__)

ENGINE_NAME = ECO_ENGINE


class EcoLLM:
    """A local Hugging Face causal LM that applies ECO corruption to flagged prompts (NeMo's ``LLMModel``).

    Args:
        model: the embedded alias (``smollm2-135m``), a local HF model directory, or a ``.gguf`` file.
        flag_decider: decides per request when no rail marker or ``eco_flag`` does (e.g. a ``PromptClassifier``).
        **parameters: ``models[].parameters`` (see :class:`~eco_rails.providers.settings.ProviderSettings`).

    Raises:
        ConfigError: an unknown or invalid parameter (the message names it and the fix).
        ModelLoadError: ``model`` does not resolve to a local causal LM.
    """

    def __init__(self, model: str = EMBEDDED_MODEL, *, flag_decider: FlagDecider | None = None, **parameters: Any) -> None:
        self.settings = ProviderSettings.parse(parameters)
        self._model_ref = model or EMBEDDED_MODEL
        self.engine: EcoEngine | VllmEngine = self.settings.build_engine(self._model_ref)
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
        return self.settings.vllm.url if self.settings.vllm is not None else None

    # ---- helpers ------------------------------------------------------------------------------
    def _request(self, prompt: Union[str, Sequence[Any]], stop: Optional[list[str]], kwargs: dict[str, Any]) -> EngineRequest:
        engine_prompt = prompt if isinstance(prompt, str) else normalize_messages(prompt)
        return resolve_request(engine_prompt, self.settings, stop=stop, call_kwargs=kwargs, flag_decider=self.flag_decider)

    def _response(self, result: GenerationResult) -> Any:
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
    async def generate_async(self, prompt: Union[str, list[Any]], *, stop: Optional[list[str]] = None, **kwargs: Any) -> Any:
        """Answer a rendered prompt or a chat; returns NeMo's ``LLMResponse`` (text, finish reason, usage).

        ``eco_flag`` (a ``FlagDecision`` or bool) overrides rail markers and the decider.
        Raises ``PromptError`` for prompts that do not fit and ``ConfigError`` for bad call parameters.
        """
        request = self._request(prompt, stop, kwargs)
        result = await self.engine.agenerate(request.prompt, **request.engine_kwargs())
        record(result.text, result.finish_reason)
        return self._response(result)

    async def stream_async(self, prompt: Union[str, list[Any]], *, stop: Optional[list[str]] = None, **kwargs: Any) -> AsyncIterator[Any]:
        """Stream the answer as NeMo ``LLMResponseChunk`` objects; the last chunk carries the finish reason."""
        from nemoguardrails.types import LLMResponseChunk

        from eco_rails.engine.generation import StreamUsage

        request = self._request(prompt, stop, kwargs)
        usage = StreamUsage()
        deltas: list[str] = []
        async for delta in self.engine.astream(request.prompt, usage=usage, **request.engine_kwargs()):
            deltas.append(delta)
            yield LLMResponseChunk(delta_content=delta, model=self.model_name)
        record("".join(deltas), usage.finish_reason)
        yield LLMResponseChunk(delta_content="", model=self.model_name, finish_reason=usage.finish_reason or "stop")

    def __repr__(self) -> str:
        return f"EcoLLM(model={self._model_ref!r}, corruption={self.settings.corruption.method})"


def register_nemo_provider() -> None:
    """Register ``engine: eco`` with NeMo Guardrails' default framework, and with its LangChain
    framework when that framework is in use and LangChain's optional packages are installed.
    Safe to call repeatedly."""
    from nemoguardrails.llm.frameworks import get_default_framework, get_framework

    from eco_rails.providers.short_errors import install_for_nemo_cli

    install_for_nemo_cli()  # under `nemoguardrails chat`, a config error is shown as its message, not a traceback
    get_framework("default").register_provider(ENGINE_NAME, EcoLLM)
    if get_default_framework() != "langchain":
        return  # importing LangChain's provider registry is slow; only pay for it when that framework is in use
    try:
        from eco_rails.providers.langchain import EcoChatModel

        get_framework("langchain").register_provider(ENGINE_NAME, EcoChatModel)
    except ImportError as exc:  # langchain / langchain-community not installed: default framework only
        log.debug("LangChain framework not available for engine %r: %s", ENGINE_NAME, exc)
