"""The ECO engine on a vLLM server: flagged text travels as corrupted prompt embeddings, the rest as text.

The provider keeps only the tokenizer and the input-embedding matrix (:mod:`eco_rails.engine.embedding_table`);
the server runs the model. Per request:

* **unflagged**: a plain ``/v1/chat/completions`` call with the messages as text: no added cost, and the same
  answer as any other client of the server gets;
* **flagged**: the prompt is rendered and tokenized locally exactly as the local engine does, the same
  corruption function runs with the same seed, and each message that holds flagged text is sent as one
  ``prompt_embeds`` content part (its clean tokens as clean vectors, which the server treats exactly like the
  token ids). Everything else (system prompt, other turns, the chat template) stays text. A whole message,
  not only the flagged piece, becomes embeddings because vLLM joins a message's content parts with newlines:
  splitting a message would change the prompt.
* ``whole_prompt`` corruption, string prompts without a chat template, and templates that share a token
  between scaffolding and content go to ``/v1/completions`` with the whole prompt as embeddings instead.

Differences from the local engine, by design of the server: decoding runs in the server's dtype (bf16 answers
can drift from a float32 local model after some tokens); the flagged answers' n-gram guard
(``flagged_no_repeat_ngram_size``) and answer-only penalty (``flagged_repetition_penalty``) are local logits
processors and do not run on the server.

Security: a server started with ``--enable-prompt-embeds`` must only be reachable by this provider (vLLM's
own warning; CVE-2025-62164). :class:`VllmSettings` sends a bearer token read from an environment variable and
:class:`VllmEngine` logs a warning when the URL is neither loopback nor authenticated.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import ipaddress
import logging
import os
import socket
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Generator, Iterator, Literal, Sequence
from urllib.parse import urlsplit

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

from eco_rails.caches import register_cache
from eco_rails.engine.corruption import CorruptionSpec, corruption_seed
from eco_rails.engine.corruption.functions import apply_corruption
from eco_rails.engine.embedding_table import EmbeddingTable
from eco_rails.engine.flags import FlagDecision
from eco_rails.engine.generation import GenerationResult, GenerationSettings, StreamUsage, check_context
from eco_rails.engine.prompting import RenderedPrompt, flagged_char_spans, render_prompt
from eco_rails.errors import BackendError, ConfigError, ModelLoadError

log = logging.getLogger(__name__)


class VllmSettings(BaseModel):
    """Where the vLLM server is and how to reach it (``models[].parameters.vllm`` in a rails config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="the server's base URL, e.g. http://10.0.0.5:8000 (the /v1 suffix is optional)")
    served_model: str | None = Field(
        default=None, description="the name the server serves the model under (--served-model-name); default: "
        "the only model the server lists")
    api_key_env: str | None = Field(
        default=None, description="name of an environment variable holding the bearer token the server expects "
        "(vLLM's --api-key); the token itself never goes into the config")
    timeout_s: PositiveFloat = Field(default=120.0, description="seconds to wait for an answer before failing the request")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL; write it like http://127.0.0.1:8000")
        return value.rstrip("/").removesuffix("/v1")

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    def api_key(self) -> str | None:
        """The bearer token, or ``None``. Raises :class:`ConfigError` when the named variable is not set."""
        if self.api_key_env is None:
            return None
        token = os.environ.get(self.api_key_env)
        if not token:
            raise ConfigError(f"vllm.api_key_env names {self.api_key_env!r}, but that environment variable is not set. "
                              f"Export it (export {self.api_key_env}=...) or remove api_key_env.")
        return token


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is this machine (127.0.0.0/8, ::1 or a name that resolves only there)."""
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)


def encode_embeddings(rows: torch.Tensor) -> str:
    """Base64 of ``torch.save(rows)``: the encoding vLLM's ``prompt_embeds`` inputs expect (2-D, float)."""
    buffer = io.BytesIO()
    torch.save(rows.detach().to("cpu", torch.float32).contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class RemoteRequest:
    """One request as it goes to the server: the endpoint, its body, and what was corrupted."""

    endpoint: Literal["chat", "completions"]
    body: dict[str, Any]
    prompt_tokens: int
    corrupted_tokens: int
    embedded_tokens: int  # rows sent as embeddings (corrupted or not)
    flagged: bool


def _content_tokens(rendered: RenderedPrompt, in_message: list[bool], index: int) -> list[int] | None:
    """Token positions holding exactly message ``index``'s content (``in_message``: its token mask), or ``None``
    when a token is shared with the template around it (then the message cannot travel as a separate part
    without changing the tokens)."""
    positions = [i for i, hit in enumerate(in_message) if hit]
    if not positions:
        return None
    start, end = rendered.content_spans[index]
    if rendered.offsets[positions[0]][0] != start or rendered.offsets[positions[-1]][1] != end:
        return None
    return positions


@functools.cache
def _warn_local_only(setting: str) -> None:
    """Said once per process: a config that sets a local-only decoding setting (the demo configs set
    ``flagged_repetition_penalty``) would otherwise be served on vLLM without it, silently."""
    log.warning("%s is applied by the local engine only: the vllm backend answers flagged prompts without it "
                "(vLLM's own repetition_penalty would also penalise the prompt and apply to unflagged answers). "
                "Serve the config with the local engine for the measured behaviour, or remove it from "
                "models[].parameters.", setting)


def sampling_body(settings: GenerationSettings, *, flagged: bool) -> dict[str, Any]:
    """The OpenAI/vLLM sampling fields that express ``settings`` (vLLM-only ones go in the same body)."""
    if flagged and settings.flagged_repetition_penalty > 1.0:
        _warn_local_only("flagged_repetition_penalty")
    body: dict[str, Any] = {"max_tokens": settings.max_new_tokens}
    if settings.greedy:
        body["temperature"] = 0.0
    else:
        body.update(temperature=settings.temperature, top_p=settings.top_p)
    if settings.stop:
        body["stop"] = list(settings.stop)
    if settings.seed is not None:
        body["seed"] = settings.seed
    min_tokens = settings.flagged_min_new_tokens if flagged else settings.min_new_tokens  # as the local engine
    if min_tokens:
        body["min_tokens"] = min_tokens
    if settings.repetition_penalty != 1.0:
        body["repetition_penalty"] = settings.repetition_penalty
    if settings.no_repeat_ngram_size:
        raise ConfigError("no_repeat_ngram_size is not supported by the vllm backend (vLLM has no such sampling "
                          "parameter); remove it from models[].parameters or use repetition_penalty.")
    return body


def build_request(
    rendered: RenderedPrompt,
    table: EmbeddingTable,
    *,
    model: str,
    flag: FlagDecision | None,
    corruption: CorruptionSpec | None,
    settings: GenerationSettings,
    chat: bool,
) -> RemoteRequest:
    """The server request for a rendered prompt (pure apart from the embedding lookup).

    ``chat`` says the prompt was rendered with the chat template (messages can travel as parts). Flagged rows
    are corrupted exactly as :meth:`~eco_rails.engine.generation.EcoEngine.prepare` does: the same mask, the
    same seed (a function of the rendered text and the spec), the same function over the whole prompt.
    """
    flagged = flag is not None and flag.flagged
    n_tokens = len(rendered.input_ids)
    sampling = sampling_body(settings, flagged=flagged)
    if not flagged:
        if chat:
            body = {"model": model, "messages": rendered.messages, **sampling}
            return RemoteRequest("chat", body, n_tokens, 0, 0, False)
        body = {"model": model, "prompt": rendered.text, **sampling}
        return RemoteRequest("completions", body, n_tokens, 0, 0, False)
    assert flag is not None
    spec = corruption or CorruptionSpec()
    mask = rendered.token_mask(flagged_char_spans(rendered, flag))
    embeds = table.lookup(rendered.input_ids)
    corrupted = table.finish(apply_corruption(embeds, torch.tensor(mask), spec, corruption_seed(rendered.text, spec)))
    n_corrupted = sum(mask)
    if chat and not flag.whole_prompt:
        messages: list[dict[str, Any]] = []
        embedded = 0
        for index, message in enumerate(rendered.messages):
            in_message = rendered.token_mask([rendered.content_spans[index]])
            if not any(hit and flagged_here for hit, flagged_here in zip(in_message, mask)):
                messages.append(dict(message))
                continue
            positions = _content_tokens(rendered, in_message, index)
            if positions is None:
                break  # flagged text in a message that cannot travel alone: send the whole prompt instead
            rows = corrupted[positions[0]:positions[-1] + 1]
            embedded += rows.shape[0]
            messages.append({"role": message["role"], "content": [{"type": "prompt_embeds", "data": encode_embeddings(rows)}]})
        else:
            body = {"model": model, "messages": messages, **sampling}
            return RemoteRequest("chat", body, n_tokens, n_corrupted, embedded, True)
    body = {"model": model, "prompt_embeds": encode_embeddings(corrupted), **sampling}
    return RemoteRequest("completions", body, n_tokens, n_corrupted, n_tokens, True)


def _finish(reason: str | None) -> Literal["stop", "length"]:
    return "length" if reason == "length" else "stop"


class VllmEngine:
    """Same calls as :class:`~eco_rails.engine.generation.EcoEngine` (``generate``, ``agenerate``, ``stream``,
    ``astream``), answered by a vLLM server. Safe to share between threads and event loops' tasks."""

    def __init__(self, model_dir: Path, settings: VllmSettings, *, name: str) -> None:
        import openai
        from transformers import AutoTokenizer

        self.settings = settings
        self.name = name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"Could not load the tokenizer in {model_dir}: {exc}") from exc
        self.table = EmbeddingTable.load(model_dir)
        self.context_window = self.table.context_window
        key = settings.api_key()
        if key is None and not is_loopback(settings.url):
            log.warning(
                "The vllm backend at %s is neither on this machine nor authenticated. A server started with "
                "--enable-prompt-embeds must be private to this provider (vLLM's warning, CVE-2025-62164): keep it on a "
                "private network and start it with --api-key, then set vllm.api_key_env (README: Deployment).",
                settings.url)
        common: dict[str, Any] = {"base_url": settings.api_base, "api_key": key or "EMPTY", "max_retries": 0,
                                  "timeout": settings.timeout_s}
        self._client = openai.OpenAI(**common)
        # An async client's connection pool belongs to the event loop it first ran on, and NeMo's synchronous
        # `generate` runs a new loop per call: one async client per loop (dropped with its loop).
        self._client_args = common
        self._aclients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._served: str | None = settings.served_model

    # ---- preparing ----------------------------------------------------------------------------
    def served_model(self) -> str:
        """The server's model name: configured, or the only one it lists (asked once)."""
        if self._served is None:
            with _backend_errors(self.settings, "listing the served models"):
                names = [m.id for m in self._client.models.list().data]
            if len(names) != 1:
                raise BackendError(f"The vLLM server at {self.settings.url} serves {names or 'no models'}; name the one "
                                   "to use in models[].parameters.vllm.served_model.")
            self._served = names[0]
        return self._served

    def render(self, prompt: str | Sequence[Any], *, use_chat_template: bool = True, system_prompt: str | None = None) -> RenderedPrompt:
        return render_prompt(self.tokenizer, prompt, use_chat_template=use_chat_template, system_prompt=system_prompt)

    def request(
        self,
        prompt: str | Sequence[Any],
        *,
        flag: FlagDecision | None = None,
        corruption: CorruptionSpec | None = None,
        settings: GenerationSettings | None = None,
        use_chat_template: bool = True,
        system_prompt: str | None = None,
    ) -> RemoteRequest:
        """The request :meth:`generate` would send (for inspection and tests)."""
        settings = settings or GenerationSettings()
        rendered = self.render(prompt, use_chat_template=use_chat_template, system_prompt=system_prompt)
        check_context(len(rendered.input_ids), settings.max_new_tokens, self.context_window)
        chat = use_chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        return build_request(rendered, self.table, model=self.served_model(), flag=flag, corruption=corruption,
                             settings=settings, chat=chat)

    def _aclient(self) -> Any:
        import asyncio

        import openai

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._aclients.get(loop)
            if client is None:
                client = self._aclients[loop] = openai.AsyncOpenAI(**self._client_args)
            return client

    # ---- generation ---------------------------------------------------------------------------
    def generate(self, prompt: str | Sequence[Any], **kwargs: Any) -> GenerationResult:
        """Answer ``prompt`` (see :meth:`EcoEngine.generate`); raises :class:`BackendError` when the server fails."""
        request = self.request(prompt, **kwargs)
        with _backend_errors(self.settings, "answering"):
            response = _create(self._client, request)()
        return self._result(request, response)

    async def agenerate(self, prompt: str | Sequence[Any], **kwargs: Any) -> GenerationResult:
        """Async :meth:`generate` (the server call does not block the event loop)."""
        import asyncio

        request = await asyncio.to_thread(self.request, prompt, **kwargs)
        with _backend_errors(self.settings, "answering"):
            response = await _create(self._aclient(), request)()
        return self._result(request, response)

    def _result(self, request: RemoteRequest, response: Any) -> GenerationResult:
        choice = response.choices[0]
        text = choice.message.content if request.endpoint == "chat" else choice.text
        usage = response.usage
        return GenerationResult(
            text=text or "", finish_reason=_finish(choice.finish_reason),
            prompt_tokens=int(usage.prompt_tokens) if usage else request.prompt_tokens,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
            flagged=request.flagged, corrupted_tokens=request.corrupted_tokens)

    def stream(self, prompt: str | Sequence[Any], *, usage: StreamUsage | None = None, **kwargs: Any) -> Generator[str, None, None]:
        """Yield the answer as text deltas; ``usage`` is filled in when the stream ends."""
        request = self.request(prompt, **kwargs)
        return self._stream(request, usage if usage is not None else StreamUsage())

    def _stream(self, request: RemoteRequest, usage: StreamUsage) -> Generator[str, None, None]:
        with _backend_errors(self.settings, "streaming"):
            events = _create(self._client, request)(stream=True, stream_options={"include_usage": True})
            try:
                for event in events:
                    delta = self._absorb(request, event, usage)
                    if delta:
                        yield delta
            finally:
                events.close()

    async def astream(self, prompt: str | Sequence[Any], *, usage: StreamUsage | None = None, **kwargs: Any) -> AsyncIterator[str]:
        """Async :meth:`stream`."""
        import asyncio

        usage = usage if usage is not None else StreamUsage()
        request = await asyncio.to_thread(self.request, prompt, **kwargs)
        with _backend_errors(self.settings, "streaming"):
            events = await _create(self._aclient(), request)(stream=True, stream_options={"include_usage": True})
            try:
                async for event in events:
                    delta = self._absorb(request, event, usage)
                    if delta:
                        yield delta
            finally:
                await events.close()

    @staticmethod
    def _absorb(request: RemoteRequest, event: Any, usage: StreamUsage) -> str:
        usage.prompt_tokens = usage.prompt_tokens or request.prompt_tokens
        if event.usage is not None:
            usage.prompt_tokens, usage.completion_tokens = int(event.usage.prompt_tokens), int(event.usage.completion_tokens)
        if not event.choices:
            return ""
        choice = event.choices[0]
        if choice.finish_reason is not None:
            usage.finish_reason = _finish(choice.finish_reason)
        if request.endpoint == "chat":
            return choice.delta.content or ""
        return choice.text or ""


# Body fields the openai client has parameters for; the rest (vLLM's own) travel in extra_body.
_OPENAI_FIELDS = frozenset({"model", "messages", "prompt", "max_tokens", "temperature", "top_p", "stop", "seed"})


def _create(client: Any, request: RemoteRequest) -> Any:
    """The client call for ``request``'s endpoint with its body bound (sync or async, as ``client`` is); vLLM's
    own fields travel in ``extra_body``."""
    body = request.body
    kwargs = {k: v for k, v in body.items() if k in _OPENAI_FIELDS}
    extra = {k: v for k, v in body.items() if k not in _OPENAI_FIELDS}
    if "prompt" not in kwargs and "messages" not in kwargs:
        kwargs["prompt"] = None  # /v1/completions with prompt_embeds only
    if extra:
        kwargs["extra_body"] = extra
    create = client.chat.completions.create if request.endpoint == "chat" else client.completions.create
    return functools.partial(create, **kwargs)


@contextlib.contextmanager
def _backend_errors(settings: VllmSettings, doing: str) -> Iterator[None]:
    """Turn the HTTP client's exceptions into :class:`BackendError` naming the server, what failed and the fix."""
    import openai

    url = settings.url
    try:
        yield
    except openai.APITimeoutError as exc:
        raise BackendError(f"The vLLM server at {url} did not finish {doing} within {settings.timeout_s:g} s; "
                           "check its load, or raise models[].parameters.vllm.timeout_s.") from exc
    except openai.APIConnectionError as exc:
        raise BackendError(f"Cannot reach the vLLM server at {url} ({exc.__cause__ or exc}); is it running and is "
                           "models[].parameters.vllm.url right? (README: Deployment on vLLM)") from exc
    except openai.AuthenticationError as exc:
        raise BackendError(f"The vLLM server at {url} refused the request (HTTP 401): set vllm.api_key_env to the "
                           "variable holding its --api-key token.") from exc
    except openai.APIStatusError as exc:
        detail = getattr(exc, "message", str(exc))
        raise BackendError(f"The vLLM server at {url} answered HTTP {exc.status_code} while {doing}: {detail}. "
                           "Is it started with --enable-prompt-embeds, and does it serve the same model as "
                           "the provider's `model`?") from exc


_VLLM_ENGINES: dict[tuple[str, VllmSettings], VllmEngine] = {}
_VLLM_LOCK = threading.Lock()


def get_vllm_engine(model: str | Path, settings: VllmSettings) -> VllmEngine:
    """One :class:`VllmEngine` per (model directory, server settings) per process (the embedding matrix is
    loaded once). ``model`` is what the local engine accepts: the embedded alias, a directory or a ``.gguf``."""
    from eco_rails.engine.model_store import resolve_model_dir

    model_dir = resolve_model_dir(model)
    key = (str(model_dir.resolve()), settings)
    with _VLLM_LOCK:
        engine = _VLLM_ENGINES.get(key)
        if engine is None:
            engine = _VLLM_ENGINES[key] = VllmEngine(model_dir, settings, name=f"{model}@{settings.url}")
        return engine


register_cache("vllm_engines", _VLLM_ENGINES.clear)

