"""LangChain chat model over the ECO engine, in the style of ``langchain-huggingface``'s ``ChatHuggingFace``.

Use it in any LCEL chain. Whether a call is corrupted is resolved as in the NeMo provider
(:mod:`eco_rails.providers.request`): ``eco_flag`` passed at call time (``model.invoke(msgs,
eco_flag=FlagDecision.flag())`` or ``model.bind(eco_flag=True)``), then the ECO rail's signed markers, then
``flag_decider`` (e.g. a :class:`~eco_rails.PromptClassifier`); otherwise the call runs like the plain model.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator, Optional

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from eco_rails.engine.corruption.spec import method_hint
from eco_rails.engine.generation import EcoEngine, GenerationResult, StreamUsage
from eco_rails.engine.model_store import EMBEDDED_MODEL
from eco_rails.engine.vllm_backend import VllmEngine
from eco_rails.errors import ConfigError
from eco_rails.providers.finish import record
from eco_rails.providers.request import EngineRequest, resolve_request
from eco_rails.providers.settings import ProviderFields
from eco_rails.validation import format_validation_error

_LC_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "chat": "user"}


def langchain_to_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as ``{"role", "content"}`` dicts (the engine's chat format)."""
    out = []
    for msg in messages:
        role = getattr(msg, "role", None) if msg.type == "chat" else _LC_ROLES.get(msg.type)
        if role is None:
            raise ValueError(f"Unsupported LangChain message type {msg.type!r}; use human, ai, system or tool messages.")
        out.append({"role": role, "content": msg.content if isinstance(msg.content, str) else msg.text})
    return out


class EcoChatModel(BaseChatModel, ProviderFields):
    """Chat model running a local Hugging Face causal LM with ECO prompt corruption.

    Its settings are the provider's (:class:`~eco_rails.providers.settings.ProviderFields`: decoding,
    device, dtype, corruption, chat template, system prompt), plus ``model`` and ``flag_decider``.
    ``max_tokens`` is accepted as LangChain's name for ``max_new_tokens``.

    Example::

        from eco_rails import EcoChatModel
        chat = EcoChatModel(model="smollm2-135m", max_new_tokens=64)
        chat.invoke("Who wrote Hamlet?")                          # clean
        chat.invoke("Who is Harry Potter?", eco_flag=True)         # corrupted

    Raises ``ConfigError``/``ValidationError`` for invalid settings and ``ModelLoadError`` when ``model``
    does not resolve to a local causal LM.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=(), populate_by_name=True,
                              allow_inf_nan=False)

    model: str = Field(default=EMBEDDED_MODEL, description="embedded alias, local HF model directory, or .gguf file")
    flag_decider: Optional[Any] = Field(default=None, exclude=True, description="object with decide(messages) -> FlagDecision")

    _engine: EcoEngine | VllmEngine = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:  # the same readable errors as models[].parameters, naming this class
            raise ConfigError(format_validation_error(exc, "EcoChatModel", hint=method_hint)) from None

    @model_validator(mode="after")
    def _load(self) -> EcoChatModel:
        self._engine = self.build_engine(self.model)
        return self

    @property
    def _llm_type(self) -> str:
        return "eco-rails"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "corruption": self.corruption.model_dump(), "max_new_tokens": self.max_new_tokens}

    @property
    def engine(self) -> EcoEngine | VllmEngine:
        return self._engine

    def _get_ls_params(self, stop: Optional[list[str]] = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "eco-rails"
        params["ls_model_name"] = kwargs.get("model", self.model)
        params["ls_model_type"] = "chat"
        params["ls_temperature"] = kwargs.get("temperature", self.temperature)
        params["ls_max_tokens"] = kwargs.get("max_tokens", kwargs.get("max_new_tokens", self.max_new_tokens))
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop)
        return params

    def _call(self, messages: list[BaseMessage], stop: Optional[list[str]], kwargs: dict[str, Any]) -> EngineRequest:
        requested = kwargs.pop("model", None)
        if requested is not None and requested != self.model:
            raise ValueError(f"EcoChatModel runs one local model ({self.model!r}); a per-call model={requested!r} is not "
                             "supported. Build another EcoChatModel(model=...) for it.")
        return resolve_request(langchain_to_messages(messages), self, stop=stop, call_kwargs=kwargs,
                               flag_decider=self.flag_decider)

    @staticmethod
    def _usage(prompt_tokens: int, completion_tokens: int) -> UsageMetadata:
        return UsageMetadata(input_tokens=prompt_tokens, output_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens)

    def _result(self, result: GenerationResult) -> ChatResult:
        record(result.text, result.finish_reason)
        message = AIMessage(content=result.text, usage_metadata=self._usage(result.prompt_tokens, result.completion_tokens),
                            response_metadata={"finish_reason": result.finish_reason, "model_name": self.model})
        return ChatResult(generations=[ChatGeneration(message=message, generation_info={"finish_reason": result.finish_reason})])

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                  run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> ChatResult:
        request = self._call(messages, stop, kwargs)
        return self._result(self._engine.generate(request.prompt, **request.engine_kwargs()))

    async def _agenerate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                         run_manager: Optional[AsyncCallbackManagerForLLMRun] = None, **kwargs: Any) -> ChatResult:
        request = self._call(messages, stop, kwargs)
        return self._result(await self._engine.agenerate(request.prompt, **request.engine_kwargs()))

    def _stream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        request = self._call(messages, stop, kwargs)
        usage, deltas = StreamUsage(), []
        for delta in self._engine.stream(request.prompt, usage=usage, **request.engine_kwargs()):
            deltas.append(delta)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
            if run_manager:
                run_manager.on_llm_new_token(delta, chunk=chunk)
            yield chunk
        yield self._last_chunk(usage, deltas)

    def _last_chunk(self, usage: StreamUsage, deltas: list[str]) -> ChatGenerationChunk:
        """The closing chunk: token usage, finish reason, and ``chunk_position='last'`` (LangChain's end marker)."""
        record("".join(deltas), usage.finish_reason)
        return ChatGenerationChunk(
            message=AIMessageChunk(content="", chunk_position="last",
                                   usage_metadata=self._usage(usage.prompt_tokens, usage.completion_tokens),
                                   response_metadata={"finish_reason": usage.finish_reason, "model_name": self.model}),
            generation_info={"finish_reason": usage.finish_reason},
        )

    async def _astream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None,
                       run_manager: Optional[AsyncCallbackManagerForLLMRun] = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        request = self._call(messages, stop, kwargs)
        usage, deltas = StreamUsage(), []
        async for delta in self._engine.astream(request.prompt, usage=usage, **request.engine_kwargs()):
            deltas.append(delta)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
            if run_manager:
                await run_manager.on_llm_new_token(delta, chunk=chunk)
            yield chunk
        yield self._last_chunk(usage, deltas)
