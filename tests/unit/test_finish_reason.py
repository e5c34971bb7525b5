"""The server hook's finish_reason: which answer became the reply, and how the response is amended."""

from __future__ import annotations

import asyncio
import json

from eco_rails.providers.finish import Answer, finish_reason_of, record, recording
from eco_rails.rails.server import FinishReasonMiddleware, amend_completion, closing_chunk, install


def completion(content: str, reason: str = "stop") -> bytes:
    return json.dumps({"id": "x", "choices": [{"index": 0, "finish_reason": reason,
                                               "message": {"role": "assistant", "content": content}}]}).encode()


def test_answers_are_recorded_only_inside_a_request_and_each_request_has_its_own():
    record("outside", "length")
    with recording() as first:
        record("a", "length")
        with recording() as inner:
            record("b", None)
        record("c", "stop")
    assert first == [Answer("a", "length"), Answer("c", "stop")] and inner == [Answer("b", "stop")]


def test_the_reply_is_matched_to_its_answer_by_text_not_by_order():
    answers = [Answer("  The capital\nof France", "length"), Answer("intent: ask about geography", "stop")]
    assert finish_reason_of("The capital of France", answers) == "length"
    assert finish_reason_of("I'm sorry, I can't respond to that.", answers) is None
    assert finish_reason_of("", answers) is None


def test_a_cut_answer_is_relabelled_and_anything_else_is_left_alone():
    cut = [Answer("The capital of", "length")]
    amended = json.loads(amend_completion(completion("The capital of"), cut) or b"{}")
    assert amended["choices"][0]["finish_reason"] == "length" and amended["id"] == "x"
    assert amend_completion(completion("I'm sorry."), cut) is None
    assert amend_completion(completion("The capital of", "tool_calls"), cut) is None
    assert amend_completion(b'{"detail": "Could not load"}', cut) is None
    assert amend_completion(b"not json", cut) is None


def test_a_stream_gets_openais_closing_chunk():
    events = (b'data: {"id": "c1", "created": 5, "model": "m", "choices": [{"delta": {"content": "The cap"}}]}\n\n'
              b'data: {"id": "c1", "created": 5, "model": "m", "choices": [{"delta": {"content": "ital"}}]}\n\n')
    chunk = json.loads(closing_chunk(events, [Answer("The capital", "length")])[len(b"data: "):])
    assert chunk["id"] == "c1" and chunk["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    refusal = json.loads(closing_chunk(events, [])[len(b"data: "):])
    assert refusal["choices"][0]["finish_reason"] == "stop"


def _run(app, path="/v1/chat/completions", method="POST"):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(FinishReasonMiddleware(app)({"type": "http", "method": method, "path": path}, receive, send))
    return sent


def _json_app(content: str, answered: str, reason: str):
    async def app(scope, receive, send):
        record(answered, reason)  # as the provider does, inside the request
        body = completion(content)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body[:5], "more_body": True})
        await send({"type": "http.response.body", "body": body[5:], "more_body": False})
    return app


def test_the_middleware_amends_a_json_answer_and_its_content_length():
    start, body = _run(_json_app("The capital of", "The capital of", "length"))
    payload = body["body"]
    assert json.loads(payload)["choices"][0]["finish_reason"] == "length"
    assert dict(start["headers"])[b"content-length"] == str(len(payload)).encode()


def test_the_middleware_passes_other_paths_and_methods_through_untouched():
    for path, method in (("/v1/rails/configs", "POST"), ("/v1/chat/completions", "GET")):
        sent = _run(_json_app("The capital of", "The capital of", "length"), path, method)
        assert json.loads(b"".join(m["body"] for m in sent[1:]))["choices"][0]["finish_reason"] == "stop"


def test_the_middleware_inserts_the_closing_chunk_before_done():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        await send({"type": "http.response.body", "body": b'data: {"id": "s", "choices": [{"delta": {"content": "Hi"}}]}\n\n', "more_body": True})
        record("Hi", "length")
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    bodies = [m["body"] for m in _run(app)[1:]]
    closing, done = bodies[1].split(b"\n\n")[:2]
    assert json.loads(closing[len(b"data: "):])["choices"][0]["finish_reason"] == "length" and done == b"data: [DONE]"


def _starlette(answer: str):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request):
        record(answer, "length")
        return JSONResponse(json.loads(completion(answer)))

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_install_works_on_a_starlette_app_before_and_after_it_has_started():
    """NeMo calls the hook from its lifespan, when Starlette has built its middleware stack and refuses
    add_middleware; before start (an app built by hand) add_middleware is the way."""
    from starlette.testclient import TestClient

    before = _starlette("Cut")
    install(before)
    with TestClient(before) as client:
        assert client.post("/v1/chat/completions").json()["choices"][0]["finish_reason"] == "length"

    after = _starlette("Cut")
    with TestClient(after) as client:
        assert client.post("/v1/chat/completions").json()["choices"][0]["finish_reason"] == "stop"
        install(after)
        install(after)  # twice: wrapped once
        assert client.post("/v1/chat/completions").json()["choices"][0]["finish_reason"] == "length"
    assert not isinstance(after.middleware_stack.app, FinishReasonMiddleware)
