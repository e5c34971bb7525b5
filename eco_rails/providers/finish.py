"""Which finish reason the eco engine gave each answer of the current request.

NeMo Guardrails' server builds its OpenAI-style response without asking the model why it stopped: it writes
``finish_reason: "stop"`` on every answer, also one that ``max_tokens`` cut off. The provider knows, so it
records each answer here, in a per-request list that a server hook (:mod:`eco_rails.rails.server`) opens
around the request and reads when the response goes out. Outside such a request nothing is recorded.

A request may call the model more than once (a dialog rail's intent step, an output rail's check), so the
answer whose text is the reply is looked up by its text, not taken to be the last call.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Literal, Optional

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Answer:
    """One answer the eco engine gave during the request."""

    text: str
    finish_reason: FinishReason


_ANSWERS: ContextVar[Optional[list[Answer]]] = ContextVar("eco_rails_answers", default=None)


@contextmanager
def recording() -> Iterator[list[Answer]]:
    """Record the answers given inside this block (tasks started inside it share the list)."""
    answers: list[Answer] = []
    token = _ANSWERS.set(answers)
    try:
        yield answers
    finally:
        _ANSWERS.reset(token)


def record(text: str, finish_reason: Optional[str]) -> None:
    """Note one answer; a no-op outside :func:`recording`."""
    answers = _ANSWERS.get()
    if answers is not None:
        answers.append(Answer(text, "length" if finish_reason == "length" else "stop"))


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def finish_reason_of(reply: str, answers: list[Answer]) -> Optional[FinishReason]:
    """The finish reason of the answer that became ``reply``, or None when no answer did (a refusal, a canned
    message, another model). Whitespace is compared loosely because NeMo strips and re-joins the bot message."""
    wanted = _squeeze(reply)
    if not wanted:
        return None
    for answer in reversed(answers):
        if _squeeze(answer.text) == wanted:
            return answer.finish_reason
    return None
