"""LangChain chat model over the ECO engine, in the style of ``langchain-huggingface``'s ``ChatHuggingFace``.

Use it in any LCEL chain. Whether a call is corrupted comes from, in order:

1. ``eco_flag`` passed at call time (``model.invoke(msgs, eco_flag=FlagDecision.flag())`` or
   ``model.bind(eco_flag=True)``): how a guardrail that has already decided hands its decision over;
2. ``flag_decider``, e.g. a :class:`~eco_rails.PromptClassifier`, which decides per call by itself;
3. otherwise the call is clean and runs exactly like the plain model.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator, List, Optional

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from eco_rails.corruptions import CorruptionSpec
from eco_rails.engine import EcoEngine, GenerationResult, StreamUsage, get_engine
from eco_rails.flags import FlagDecision
from eco_rails.markers import extract as extract_markers
from eco_rails.model_store import EMBEDDED_MODEL
from eco_rails.provider_settings import ProviderSettings

_LC_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "chat": "user"}


def langchain_to_messages(messages: List[BaseMessage]) -> list[dict[str, str]]:
    out = []
    for msg in messages:
        role = getattr(msg, "role", None) if msg.type == "chat" else _LC_ROLES.get(msg.type)
        if role is None:
            raise ValueError(f"Unsupported LangChain message type {msg.type!r}; use human, ai, system or tool messages.")
        out.append({"role": role, "content": msg.content if isinstance(msg.content, str) else msg.text})
    return out


class EcoChatModel(BaseChatModel):
    """Chat model running a local Hugging Face causal LM with ECO prompt corruption.

    Example::

        from eco_rails import EcoChatModel
        chat = EcoChatModel(model="smollm2-135m", max_new_tokens=64)
        chat.invoke("Who wrote Hamlet?")                          # clean
        chat.invoke("Who is Harry Potter?", eco_flag=True)         # corrupted
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=(), populate_by_name=True)

    model: str = Field(default=EMBEDDED_MODEL, description="embedded alias, local HF model directory, or .gguf file")
    device: Optional[str] = None
    dtype: Optional[str] = None
    max_new_tokens: int = Field(default=256, alias="max_tokens", description="answer length limit (LangChain's max_tokens)")
    temperature: float = 0.0
    top_p: float = 1.0
    seed: Optional[int] = None
    stop: Optional[List[str]] = None
    corruption: CorruptionSpec = Field(default_factory=CorruptionSpec)
    chat_template: bool = True
    system_prompt: Optional[str] = None
    flag_decider: Optional[Any] = Field(default=None, exclude=True, description="object with decide(messages) -> FlagDecision")

    _settings: ProviderSettings = PrivateAttr()
    _engine: EcoEngine = PrivateAttr()

    @model_validator(mode="after")
    def _load(self) -> "EcoChatModel":
        self._settings = ProviderSettings.parse(
            {
                "device": self.device, "dtype": self.dtype, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed, "stop": self.stop or [],
                "corruption": self.corruption, "chat_template": self.chat_template, "system_prompt": self.system_prompt,
            },
            source="EcoChatModel",
        )
        self._engine = get_engine(self.model, device=self.device, dtype=self.dtype)
        return self

    @property
    def _llm_type(self) -> str:
        return "eco-rails"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "corruption": self.corruption.model_dump(), "max_new_tokens": self.max_new_tokens}

    @property
    def engine(self) -> EcoEngine:
        return self._engine

    def _get_ls_params(self, stop: Optional[List[str]] = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params.update(ls_provider="eco-rails", ls_model_name=kwargs.get("model", self.model), ls_model_type="chat",
                      ls_temperature=kwargs.get("temperature", self.temperature),
                      ls_max_tokens=kwargs.get("max_tokens", kwargs.get("max_new_tokens", self.max_new_tokens)))
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _call(self, messages: List[BaseMessage], stop: Optional[List[str]], kwargs: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
        requested = kwargs.pop("model", None)
        if requested is not None and requested != self.model:
            raise ValueError(f"EcoChatModel runs one local model ({self.model!r}); a per-call model={requested!r} is not "
                             "supported. Build another EcoChatModel(model=...) for it.")
        extracted = extract_markers(langchain_to_messages(messages))  # the ECO rail's signed markers, if any
        chat = extracted.prompt
        explicit = kwargs.pop("eco_flag", None)
        corruption = self._settings.corruption
        if explicit is None and extracted.flagged:
            explicit, corruption = extracted.rail_decision(corruption)
        if isinstance(explicit, FlagDecision):
            flag = explicit
        elif explicit is not None:
            flag = FlagDecision.flag() if explicit else FlagDecision.clean()
        elif self.flag_decider is not None:
            flag = self.flag_decider.decide(chat)
        else:
            flag = FlagDecision.clean()
        call_params = {k: v for k, v in kwargs.items() if k in {"temperature", "max_tokens", "max_new_tokens", "top_p", "seed"}}
        return chat, {
            "flag": flag,
            "corruption": corruption,
            "settings": self._settings.generation(stop, **call_params),
            "use_chat_template": self.chat_template,
            "system_prompt": self.system_prompt,
        }

    @staticmethod
    def _usage(prompt_tokens: int, completion_tokens: int) -> UsageMetadata:
        return UsageMetadata(input_tokens=prompt_tokens, output_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens)

    def _result(self, result: GenerationResult) -> ChatResult:
        message = AIMessage(content=result.text, usage_metadata=self._usage(result.prompt_tokens, result.completion_tokens),
                            response_metadata={"finish_reason": result.finish_reason, "model_name": self.model})
        return ChatResult(generations=[ChatGeneration(message=message, generation_info={"finish_reason": result.finish_reason})])

    def _generate(self, messages: List[BaseMessage], stop: Optional[List[str]] = None,
                  run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> ChatResult:
        chat, call = self._call(messages, stop, kwargs)
        return self._result(self._engine.generate(chat, **call))

    async def _agenerate(self, messages: List[BaseMessage], stop: Optional[List[str]] = None,
                         run_manager: Optional[AsyncCallbackManagerForLLMRun] = None, **kwargs: Any) -> ChatResult:
        chat, call = self._call(messages, stop, kwargs)
        return self._result(await self._engine.agenerate(chat, **call))

    def _stream(self, messages: List[BaseMessage], stop: Optional[List[str]] = None,
                run_manager: Optional[CallbackManagerForLLMRun] = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        chat, call = self._call(messages, stop, kwargs)
        usage = StreamUsage()
        for delta in self._engine.stream(chat, usage=usage, **call):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
            if run_manager:
                run_manager.on_llm_new_token(delta, chunk=chunk)
            yield chunk
        yield self._last_chunk(usage)

    def _last_chunk(self, usage: StreamUsage) -> ChatGenerationChunk:
        """The closing chunk: token usage, finish reason, and ``chunk_position='last'`` (LangChain's end marker)."""
        return ChatGenerationChunk(
            message=AIMessageChunk(content="", chunk_position="last",
                                   usage_metadata=self._usage(usage.prompt_tokens, usage.completion_tokens),
                                   response_metadata={"finish_reason": usage.finish_reason, "model_name": self.model}),
            generation_info={"finish_reason": usage.finish_reason},
        )

    async def _astream(self, messages: List[BaseMessage], stop: Optional[List[str]] = None,
                       run_manager: Optional[AsyncCallbackManagerForLLMRun] = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        chat, call = self._call(messages, stop, kwargs)
        usage = StreamUsage()
        async for delta in self._engine.astream(chat, usage=usage, **call):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
            if run_manager:
                await run_manager.on_llm_new_token(delta, chunk=chunk)
            yield chunk
        yield self._last_chunk(usage)
