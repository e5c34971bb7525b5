"""The ECO engine: a local causal LM that corrupts flagged prompt tokens before generating.

Framework-free: the NeMo Guardrails provider and the LangChain chat model are thin adapters over it.

* Unflagged prompts go through exactly ``model.generate(input_ids, ...)``; their output is bit-identical
  to plain Hugging Face generation with the same settings (ECO's "zero side effects" promise).
* Flagged prompts are embedded, the flagged tokens' rows are corrupted (a pure, seeded function of the
  prompt), and generation starts from those ``inputs_embeds``. Only the prefill is corrupted: generated
  tokens are embedded normally, and the KV cache means the prompt is encoded once.
* All per-request state lives in local variables, so concurrent requests cannot see each other's flags.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Generator, Literal, Sequence

import torch
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from eco_rails.caches import register_cache
from eco_rails.engine.corruption import CorruptionSpec, corruption_seed
from eco_rails.engine.corruption.functions import apply_corruption
from eco_rails.engine.flags import FlagDecision
from eco_rails.engine.model_store import (
    EMBEDDED_MODEL,
    apply_adapter,
    choose_placement,
    load_model_and_tokenizer,
    resolve_adapter_dir,
    resolve_model_dir,
)
from eco_rails.engine.prompting import RenderedPrompt, flagged_char_spans, render_prompt
from eco_rails.engine.repetition import RepetitionGuard, TokenFolding, fold_classes
from eco_rails.errors import ConfigError, PromptError
from eco_rails.validation import format_validation_error

log = logging.getLogger(__name__)

# Temperatures at or below this decode greedily: NeMo Guardrails asks for a near-zero temperature
# (config.lowest_temperature, 0.001) when it wants deterministic output.
GREEDY_TEMPERATURE = 1e-2
# Flagged (corrupted) prompts are answered with at least this many tokens (see EcoEngine._generate_kwargs).
FLAGGED_MIN_NEW_TOKENS = 8
# Default n of the flagged answers' repetition guard (eco_rails.engine.repetition), chosen by measurement (README).
FLAGGED_NO_REPEAT_NGRAM = 4


class GenerationFields(BaseModel):
    """The decoding knobs, declared once: :class:`GenerationSettings` (one call), the providers'
    ``models[].parameters`` and :class:`~eco_rails.providers.langchain.EcoChatModel` all inherit them."""

    model_config = ConfigDict(allow_inf_nan=False, populate_by_name=True)

    # `max_tokens` is LangChain's and OpenAI's name for the same limit.
    max_new_tokens: PositiveInt = Field(default=256, validation_alias=AliasChoices("max_new_tokens", "max_tokens"),
                                        description="answer length limit (alias: max_tokens)")
    min_new_tokens: int = Field(default=0, ge=0, description="suppress end-of-sequence before this many tokens (benchmarks)")
    temperature: float = Field(default=0.0, ge=0.0, description="0 (or up to 0.01) decodes greedily")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="nucleus sampling when temperature > 0.01")
    stop: tuple[str, ...] = Field(default=(), description="stop sequences")
    seed: int | None = Field(default=None, description="seed for sampling")
    # Small models loop on their own output; these are Hugging Face's own anti-repetition processors, applied
    # identically with and without corruption, so an unflagged answer still equals plain `generate`.
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=10.0,
                                      description="1.0 off; >1 discourages tokens already in the prompt or answer")
    no_repeat_ngram_size: int = Field(default=0, ge=0, le=64, description="0 off; n blocks any n-gram from occurring twice")
    # Flagged answers only (unflagged output is untouched): see eco_rails.engine.repetition for why.
    flagged_no_repeat_ngram_size: int = Field(
        default=FLAGGED_NO_REPEAT_NGRAM, ge=0, le=64,
        description="flagged answers only; 0 off; n blocks an n-gram said twice in the answer or copied from an earlier answer")
    flagged_repetition_ignore_case: bool = Field(
        default=False,
        description="the flagged answers' guard also blocks a repeat that differs only in case or a leading space")
    flagged_repetition_penalty: float = Field(
        default=1.0, ge=1.0, le=10.0,
        description="flagged answers only; 1.0 off; >1 discourages a token the answer already said (the prompt's "
        "tokens are not penalised)")

    @model_validator(mode="after")
    def _min_within_max(self) -> GenerationFields:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) must not exceed max_new_tokens ({self.max_new_tokens})")
        return self


class GenerationSettings(GenerationFields):
    """Decoding settings of one call. ``temperature`` 0 (or <= 0.01) means greedy decoding."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    @property
    def greedy(self) -> bool:
        return self.temperature <= GREEDY_TEMPERATURE

    @property
    def flagged_min_new_tokens(self) -> int:
        """The answer-length floor of a flagged (corrupted) request: a corrupted prompt can make a model end its
        turn at once, an empty answer that reads like a fault rather than like a model that does not know."""
        return max(self.min_new_tokens, min(FLAGGED_MIN_NEW_TOKENS, self.max_new_tokens))

    @classmethod
    def parse(cls, value: dict[str, Any], *, source: str = "generation") -> GenerationSettings:
        """Validate a mapping; :class:`ConfigError` names ``source`` and the field."""
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, model=cls)) from None

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], *, source: str, **overrides: Any) -> GenerationSettings:
        """The decoding settings a config's ``models[].parameters`` declare (its other keys, such as ``corruption``
        or ``device``, left out), with ``overrides`` on top; :class:`ConfigError` names ``source`` and the field."""
        return cls.parse({**{k: v for k, v in parameters.items() if k in cls.model_fields}, **overrides}, source=source)

    def hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` that express these settings."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens}
        if self.min_new_tokens:
            kwargs["min_new_tokens"] = self.min_new_tokens
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        if self.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        if self.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=None)
        return kwargs


@dataclass(frozen=True)
class GenerationResult:
    """One answer: its text, why it ended, token counts, and whether (and how much) the prompt was corrupted."""

    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    flagged: bool
    corrupted_tokens: int


@dataclass
class StreamUsage:
    """Filled in by :meth:`EcoEngine.stream` when the stream ends (token counts, why it stopped)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: Literal["stop", "length"] | None = None


@dataclass(frozen=True)
class PreparedPrompt:
    """Model inputs for one request. ``inputs_embeds`` is set only when tokens were corrupted."""

    rendered: RenderedPrompt
    input_ids: torch.Tensor  # (1, T)
    inputs_embeds: torch.Tensor | None  # (1, T, d)
    corrupted_mask: list[bool]

    @property
    def corrupted_tokens(self) -> int:
        return sum(self.corrupted_mask)


class _CancelCriteria:
    """Stops generation when the consumer of a stream goes away (e.g. a client disconnects)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _QueueStreamer:
    """Receives token ids from ``model.generate`` (on a worker thread) and hands them to the consumer."""

    def __init__(self) -> None:
        self.tokens: queue.Queue[Any] = queue.Queue()
        self._saw_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self._saw_prompt:  # generate() first reports the prompt ids
            self._saw_prompt = True
            return
        self.tokens.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.tokens.put(None)


def check_context(prompt_tokens: int, max_new_tokens: int, context_window: int | None) -> None:
    """Raise :class:`PromptError` when the prompt plus the answer cannot fit the model's context window."""
    if context_window and prompt_tokens + max_new_tokens > context_window:
        raise PromptError(
            f"The prompt has {prompt_tokens} tokens and max_new_tokens is {max_new_tokens}, but the model's context "
            f"window is {context_window} tokens. Shorten the prompt (e.g. drop old turns) or lower max_new_tokens.")


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    positions = [text.find(s) for s in stops if s]
    positions = [p for p in positions if p >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class EcoEngine:
    """A loaded causal LM plus the ECO corruption step. Safe to share between threads."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "local") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.context_window = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        eos = model.generation_config.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos if isinstance(eos, int) else (eos or [None])[0])
        self._folding: TokenFolding | None = None

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def load(
        cls, model: str | Path = EMBEDDED_MODEL, *, device: str | None = None, dtype: str | None = None, adapter: str | Path | None = None,
        merge_adapter: bool = False,
    ) -> EcoEngine:
        """Load (or reuse) an engine for a model reference (and PEFT adapter); see :func:`get_engine`."""
        return get_engine(model, device=device, dtype=dtype, adapter=adapter, merge_adapter=merge_adapter)

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ---- preparing inputs ---------------------------------------------------------------------
    def render(self, prompt: str | Sequence[Any], *, use_chat_template: bool = True, system_prompt: str | None = None) -> RenderedPrompt:
        return render_prompt(self.tokenizer, prompt, use_chat_template=use_chat_template, system_prompt=system_prompt)

    def prepare(
        self,
        prompt: str | Sequence[Any],
        *,
        flag: FlagDecision | None = None,
        corruption: CorruptionSpec | None = None,
        max_new_tokens: int = 0,
        use_chat_template: bool = True,
        system_prompt: str | None = None,
    ) -> PreparedPrompt:
        rendered = self.render(prompt, use_chat_template=use_chat_template, system_prompt=system_prompt)
        n_tokens = len(rendered.input_ids)
        check_context(n_tokens, max_new_tokens, self.context_window)
        input_ids = torch.tensor([rendered.input_ids], dtype=torch.long, device=self.device)
        if flag is None or not flag.flagged:
            return PreparedPrompt(rendered, input_ids, None, [False] * n_tokens)
        spec = corruption or CorruptionSpec()
        mask = rendered.token_mask(flagged_char_spans(rendered, flag))
        with torch.inference_mode():
            embeds = self.model.get_input_embeddings()(input_ids)[0]
            seed = corruption_seed(rendered.text, spec)
            corrupted = apply_corruption(embeds, torch.tensor(mask), spec, seed)
        return PreparedPrompt(rendered, input_ids, corrupted.unsqueeze(0), mask)

    def _generate_kwargs(self, prepared: PreparedPrompt, settings: GenerationSettings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "input_ids": prepared.input_ids,
            "attention_mask": torch.ones_like(prepared.input_ids),
            "pad_token_id": self.pad_token_id,
            **settings.hf_kwargs(),
        }
        if prepared.inputs_embeds is not None:
            kwargs["inputs_embeds"] = prepared.inputs_embeds
            # Flagged answers get a few tokens at least (unflagged ones are decoded exactly as configured).
            kwargs["min_new_tokens"] = settings.flagged_min_new_tokens
            if settings.flagged_no_repeat_ngram_size >= 2:
                folding = self._token_folding() if settings.flagged_repetition_ignore_case else None
                kwargs["logits_processor"] = [RepetitionGuard(settings.flagged_no_repeat_ngram_size, self._assistant_ids(prepared),
                                                              folding)]
            if settings.flagged_repetition_penalty > 1.0:
                # Hugging Face's repetition penalty over the answer only: the prompt's tokens are not penalised
                from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

                kwargs.setdefault("logits_processor", []).append(RepetitionPenaltyLogitsProcessor(
                    float(settings.flagged_repetition_penalty), prompt_ignore_length=prepared.input_ids.shape[1]))
        if settings.stop:
            kwargs.update(stop_strings=list(settings.stop), tokenizer=self.tokenizer)
        return kwargs

    def _token_folding(self) -> TokenFolding:
        """The repetition guard's case folding of this tokenizer's tokens (computed once per engine)."""
        if self._folding is None:
            self._folding = TokenFolding(fold_classes(self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])))
        return self._folding

    @staticmethod
    def _assistant_ids(prepared: PreparedPrompt) -> list[list[int]]:
        """Token ids of each earlier assistant message in the prompt (what a flagged answer must not copy)."""
        rendered = prepared.rendered
        out = []
        for message, span in zip(rendered.messages, rendered.content_spans):
            if message["role"] == "assistant" and span[1] > span[0]:
                mask = rendered.token_mask([span])
                out.append([t for t, hit in zip(rendered.input_ids, mask) if hit])
        return out

    # ---- generation ---------------------------------------------------------------------------
    def generate(
        self,
        prompt: str | Sequence[Any],
        *,
        flag: FlagDecision | None = None,
        corruption: CorruptionSpec | None = None,
        settings: GenerationSettings | None = None,
        use_chat_template: bool = True,
        system_prompt: str | None = None,
    ) -> GenerationResult:
        """Answer ``prompt`` (a string or a list of chat messages, oldest first).

        Args:
            prompt: a user message, or ``{"role", "content"}`` messages (or objects with ``role``/``content``).
            flag: what to corrupt; ``None`` or a clean decision runs exactly ``model.generate(input_ids)``.
            corruption: how to corrupt flagged tokens (default: ``rand_noise`` at the default strength).
            settings: decoding settings (default :class:`GenerationSettings`).
            use_chat_template: wrap the prompt in the model's chat template.
            system_prompt: prepended unless the chat has a system message.

        Returns:
            :class:`GenerationResult` with the text (stop sequences cut), finish reason and token counts.

        Raises:
            PromptError: empty or malformed prompt, or prompt + ``max_new_tokens`` over the context window.
            SpanNotFoundError: the flag names text that is not in the prompt.
            ConfigError: a corruption that does not fit the model (e.g. ``dims`` wider than the embeddings).
        """
        settings = settings or GenerationSettings()
        prepared = self.prepare(
            prompt, flag=flag, corruption=corruption, max_new_tokens=settings.max_new_tokens,
            use_chat_template=use_chat_template, system_prompt=system_prompt,
        )
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        with torch.inference_mode():  # no autograd bookkeeping at all: ~5% faster than generate()'s no_grad on CPU
            output = self.model.generate(**self._generate_kwargs(prepared, settings))
        new_ids = output[0, prepared.input_ids.shape[1]:].tolist()
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, settings.stop)
        hit_eos = bool(new_ids) and new_ids[-1] in self._eos_ids()
        finish: Literal["stop", "length"] = "stop" if (stopped or hit_eos or len(new_ids) < settings.max_new_tokens) else "length"
        return GenerationResult(
            text=text, finish_reason=finish, prompt_tokens=prepared.input_ids.shape[1],
            completion_tokens=len(new_ids), flagged=prepared.inputs_embeds is not None,
            corrupted_tokens=prepared.corrupted_tokens,
        )

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            return set()
        return {eos} if isinstance(eos, int) else set(eos)

    def stream(
        self,
        prompt: str | Sequence[Any],
        *,
        flag: FlagDecision | None = None,
        corruption: CorruptionSpec | None = None,
        settings: GenerationSettings | None = None,
        use_chat_template: bool = True,
        system_prompt: str | None = None,
        usage: StreamUsage | None = None,
    ) -> Generator[str, None, None]:
        """Yield the answer as text deltas; their concatenation equals :meth:`generate`'s text.

        Generation runs on a worker thread; closing the iterator early stops it. Pass a
        :class:`StreamUsage` to receive the token counts and finish reason when the stream ends.
        """
        settings = settings or GenerationSettings()
        prepared = self.prepare(
            prompt, flag=flag, corruption=corruption, max_new_tokens=settings.max_new_tokens,
            use_chat_template=use_chat_template, system_prompt=system_prompt,
        )
        return self._stream_prepared(prepared, settings, usage if usage is not None else StreamUsage())

    def _stream_prepared(self, prepared: PreparedPrompt, settings: GenerationSettings, usage: StreamUsage) -> Generator[str, None, None]:
        from transformers import StoppingCriteriaList

        streamer = _QueueStreamer()
        cancel = threading.Event()
        kwargs = self._generate_kwargs(prepared, settings)
        kwargs.update(streamer=streamer, stopping_criteria=StoppingCriteriaList([_CancelCriteria(cancel)]))
        failure: list[BaseException] = []

        def work() -> None:
            try:
                if settings.seed is not None:
                    torch.manual_seed(settings.seed)
                with torch.inference_mode():  # thread-local, so it is entered on the worker thread
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the consumer below
                failure.append(exc)
                streamer.tokens.put(None)

        worker = threading.Thread(target=work, name="eco-generate", daemon=True)
        worker.start()
        ids: list[int] = []
        emitted = 0
        # Hold back enough characters that a stop string split across tokens is never emitted.
        holdback = max((len(s) for s in settings.stop), default=1) - 1
        usage.prompt_tokens = prepared.input_ids.shape[1]
        try:
            while True:
                chunk = streamer.tokens.get()
                if chunk is None:
                    break
                ids.extend(chunk)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more tokens
                    continue
                cut, stopped = _cut_at_stop(text, settings.stop)
                safe_end = len(cut) if stopped else max(emitted, len(cut) - holdback)
                if stopped:
                    usage.completion_tokens, usage.finish_reason = len(ids), "stop"
                if safe_end > emitted:
                    yield cut[emitted:safe_end]
                    emitted = safe_end
                if stopped:
                    return
            if failure:
                raise failure[0]
            hit_eos = bool(ids) and ids[-1] in self._eos_ids()
            usage.completion_tokens = len(ids)
            usage.finish_reason = "stop" if (hit_eos or len(ids) < settings.max_new_tokens) else "length"
            final, _ = _cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), settings.stop)
            if len(final) > emitted:
                yield final[emitted:]
        finally:
            cancel.set()
            worker.join()

    async def agenerate(self, prompt: str | Sequence[Any], **kwargs: Any) -> GenerationResult:
        """:meth:`generate` on a worker thread, so the event loop keeps serving other requests."""
        return await asyncio.to_thread(self.generate, prompt, **kwargs)

    async def astream(self, prompt: str | Sequence[Any], **kwargs: Any) -> AsyncIterator[str]:
        """Async :meth:`stream`: each blocking step runs on a worker thread."""
        iterator = await asyncio.to_thread(self.stream, prompt, **kwargs)
        done = object()
        try:
            while True:
                delta = await asyncio.to_thread(next, iterator, done)
                if delta is done:
                    return
                yield delta  # type: ignore[misc]
        finally:
            await asyncio.to_thread(iterator.close)


_ENGINES: dict[tuple[str, str, str, str, bool], EcoEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(
    model: str | Path = EMBEDDED_MODEL, *, device: str | None = None, dtype: str | None = None, adapter: str | Path | None = None,
    merge_adapter: bool = False,
) -> EcoEngine:
    """One engine per (model directory, adapter, merge, device, dtype) per process: providers built by several
    rails configs or several NeMo ``LLMRails`` share the weights instead of loading them again.

    ``adapter`` is a local PEFT adapter directory served on top of ``model``: unmerged by default, so an unflagged
    prompt gets exactly the answer of ``PeftModel.from_pretrained(base, adapter)``; with ``merge_adapter``, folded
    into the weights (``merge_and_unload``), about 1.25x faster on CPU, with the merged model's answers.

    Raises :class:`~eco_rails.errors.ModelLoadError` if ``model`` is not the embedded alias, a local causal-LM
    directory or a ``.gguf`` file, or ``adapter`` is not a PEFT adapter for it, and
    :class:`~eco_rails.errors.ConfigError` for a bad device or dtype."""
    placement = choose_placement(device, dtype)
    model_dir = resolve_model_dir(model)
    adapter_dir = resolve_adapter_dir(adapter) if adapter else None
    merge = bool(merge_adapter and adapter_dir is not None)
    key = (str(model_dir.resolve()), str(adapter_dir.resolve()) if adapter_dir else "", placement.device, placement.dtype, merge)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            hf_model, tokenizer = load_model_and_tokenizer(model_dir, placement)
            if adapter_dir is not None:
                hf_model = apply_adapter(hf_model, adapter_dir, merge=merge)
            name = str(model) if adapter_dir is None else f"{model}+{adapter_dir.name}{' (merged)' if merge else ''}"
            engine = EcoEngine(hf_model, tokenizer, name=name)
            _ENGINES[key] = engine
        return engine


register_cache("engines", _ENGINES.clear)
