"""``finish_reason`` for OpenAI clients of ``nemoguardrails server``.

NeMo Guardrails 0.24's server writes ``finish_reason: "stop"`` on every non-streamed answer, also one that
``max_tokens`` (or the config's ``max_new_tokens``) cut off, and a streamed answer ends with ``[DONE]`` and no
chunk that says why it stopped. Clients that continue cut answers, or warn about them, never learn.

NeMo runs a ``config.py`` at the root of the configs folder given to ``nemoguardrails server --config``
and calls its ``init(app)`` with the FastAPI app; :func:`init` here is that hook (``rails_configs/config.py``
re-exports it). It wraps the app in :class:`FinishReasonMiddleware`, which opens a per-request record of the
eco engine's answers (:mod:`eco_rails.providers.finish`) and, on the way out:

- non-streamed: sets ``choices[0].finish_reason`` to ``"length"`` when the reply is an answer the engine cut;
- streamed: adds the closing chunk OpenAI's API sends (empty delta, ``finish_reason``) before ``[DONE]``.

Replies that are not an eco answer (a rail's refusal, a canned message, a tool call) are left as NeMo wrote
them. The hook cannot run when ``--config`` points at one config folder (NeMo's single-config mode reads no
server ``config.py``); README says so.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, MutableMapping, Optional

from eco_rails.providers.finish import Answer, finish_reason_of, recording

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

CHAT_PATH = "/v1/chat/completions"
_DONE = b"data: [DONE]"


def amend_completion(body: bytes, answers: list[Answer]) -> Optional[bytes]:
    """The chat completion with the cut answer's ``finish_reason`` set to ``"length"``, or None to leave it."""
    try:
        payload = json.loads(body)
        choice = payload["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None  # an error payload or something else: not ours to touch
    if choice.get("finish_reason") != "stop" or not isinstance(content, str):
        return None
    if finish_reason_of(content, answers) != "length":
        return None
    choice["finish_reason"] = "length"
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def streamed_text(events: bytes) -> tuple[str, Optional[dict[str, Any]]]:
    """The text of a stream's content deltas so far, and its last chunk (for the closing chunk's id and model)."""
    text, last = [], None
    for line in events.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        try:
            chunk = json.loads(line[len("data: "):])
            delta = chunk["choices"][0]["delta"]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        last = chunk
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            text.append(delta["content"])
    return "".join(text), last


def closing_chunk(events: bytes, answers: list[Answer]) -> bytes:
    """The SSE event OpenAI's API ends a stream with: an empty delta and why the answer stopped."""
    text, last = streamed_text(events)
    reason = finish_reason_of(text, answers) or "stop"
    chunk = {
        "id": (last or {}).get("id", "chatcmpl-eco"),
        "object": "chat.completion.chunk",
        "created": (last or {}).get("created", 0),
        "model": (last or {}).get("model", ""),
        "choices": [{"index": 0, "delta": {}, "finish_reason": reason}],
    }
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


class FinishReasonMiddleware:
    """ASGI middleware: records the eco engine's answers per chat request and reports why the reply stopped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not str(scope.get("path", "")).endswith(CHAT_PATH):
            await self.app(scope, receive, send)
            return
        with recording() as answers:
            await self.app(scope, receive, _Amender(send, answers))


class _Amender:
    """The ``send`` the wrapped app sees: holds a JSON body until it is complete, amends SSE at ``[DONE]``."""

    def __init__(self, send: Send, answers: list[Answer]) -> None:
        self.send, self.answers = send, answers
        self.start: Optional[Message] = None
        self.kind = "other"
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = {k.lower(): v for k, v in message.get("headers", [])}
            media = headers.get(b"content-type", b"").split(b";")[0].strip()
            if message.get("status") == 200 and media == b"application/json":
                self.kind, self.start = "json", message
                return
            if message.get("status") == 200 and media == b"text/event-stream":
                self.kind = "sse"
            await self.send(message)
            return
        if message["type"] != "http.response.body" or self.kind == "other":
            await self.send(message)
            return
        chunk = bytes(message.get("body", b""))
        if self.kind == "sse":
            await self._sse(message, chunk)
        else:
            await self._json(message, chunk)

    async def _sse(self, message: Message, chunk: bytes) -> None:
        at = chunk.find(_DONE)
        if at >= 0:
            closing = closing_chunk(bytes(self.body) + chunk[:at], self.answers)
            message = {**message, "body": chunk[:at] + closing + chunk[at:]}
        else:
            self.body += chunk
        await self.send(message)

    async def _json(self, message: Message, chunk: bytes) -> None:
        self.body += chunk
        if message.get("more_body", False):
            return
        assert self.start is not None
        body = bytes(self.body)
        amended = amend_completion(body, self.answers)
        if amended is not None:
            body = amended
        headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


def install(app: Any) -> None:
    """Wrap a FastAPI/Starlette app, before or after it has started (NeMo calls ``init`` from its lifespan,
    when Starlette has already built its middleware stack and ``add_middleware`` is refused)."""
    if getattr(app, "middleware_stack", None) is None:
        app.add_middleware(FinishReasonMiddleware)
    elif not isinstance(app.middleware_stack, FinishReasonMiddleware):
        app.middleware_stack = FinishReasonMiddleware(app.middleware_stack)
    log.info("eco-rails: chat completions report finish_reason 'length' for answers cut by max_tokens")


def init(app: Any) -> None:
    """NeMo's server hook (``config.py`` at the root of the configs folder): see the module docstring."""
    install(app)
