"""The ``eco check input`` action: classify the user's turn(s) against the forget policy."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from nemoguardrails.actions import action
from nemoguardrails.actions.rail_outcome import RailOutcome, TransformTarget

from eco_rails.errors import EcoRailsError
from eco_rails.providers.markers import mark_reference, mark_span, register_corruption, strip_markers
from eco_rails.rails.runtime import runtime_for

log = logging.getLogger("eco_rails.rails")


def _event(event: Any) -> tuple[Optional[str], dict]:
    """(type, fields) of a Colang 1 event (a dict) or a Colang 2 event (an object with name/arguments)."""
    if isinstance(event, dict):
        return event.get("type"), event
    return getattr(event, "name", None), (event.__dict__.get("arguments") or {})


def _user_turns(events: Optional[list], current: str) -> list[str]:
    """Earlier user messages from the event history (Colang 1 and 2 event shapes), then the current one.

    History can hold a message both as the user typed it and as the rail rewrote it: markers are
    stripped and repeated turns collapsed, so each turn is classified once.
    """
    texts: list[str] = []
    for event in events or []:
        kind, fields = _event(event)
        text = fields.get("text") if kind == "UserMessage" else fields.get("final_transcript") if kind == "UtteranceUserActionFinished" else None
        if text:
            text = strip_markers(text)
            if not texts or texts[-1] != text:
                texts.append(text)
    current = strip_markers(current)
    if texts and texts[-1] == current:  # the current message is normally the last user event
        texts = texts[:-1]
    return texts + [current]


@action(name="eco_check_input", is_system_action=True)
async def eco_check_input(
    text: Optional[str] = None,
    context: Optional[dict] = None,
    events: Optional[list] = None,
    config: Any = None,
    **_: Any,
) -> RailOutcome:
    """ALLOW (not in scope), TRANSFORM (in scope: the message is marked for the eco provider to corrupt),
    or BLOCK (in scope with on_flag: refuse, or the classifier cannot decide: fail closed)."""
    message = text if text is not None else (context or {}).get("user_message")
    if not isinstance(message, str):
        message = "" if message is None else str(message)
    try:
        runtime = runtime_for(config)
        classifier = runtime.classifier()
        turns = _user_turns(events, message)
        decision = await asyncio.to_thread(classifier.decide, [{"role": "user", "content": t} for t in turns])
    except EcoRailsError as exc:
        log.error("eco rail: refusing the request because the classifier cannot decide: %s", exc)
        return RailOutcome.block(reason="eco classifier unavailable", metadata={"eco_error": type(exc).__name__})
    except Exception as exc:  # anything unexpected also fails closed
        log.exception("eco rail: unexpected error, refusing the request")
        return RailOutcome.block(reason="eco rail error", metadata={"eco_error": type(exc).__name__})

    metadata = {
        "score": decision.score,
        "target": decision.target,
        "threshold": decision.threshold,
        "policy_version": runtime.policy.version if runtime.policy else None,
    }
    if not decision.flagged:
        return RailOutcome.allow(metadata=metadata)
    on_flag = runtime.settings.on_flag
    runtime.audit(decision, on_flag, message)
    if on_flag == "refuse":
        return RailOutcome.block(reason="in scope of the forget policy", metadata=metadata)
    if on_flag == "log-only":
        return RailOutcome.allow(reason="in scope of the forget policy (log-only)", metadata=metadata)

    spec_id = register_corruption(runtime.corruption(decision.target))
    current = strip_markers(message)
    marked = mark_span(current, spec_id) if current in decision.spans else current
    references = "".join(mark_reference(span, spec_id) for span in decision.spans if span != current)
    return RailOutcome.transform([(TransformTarget.USER_MESSAGE, marked + references)], metadata=metadata)


def _chat_history(events: Optional[list]) -> list[dict[str, str]]:
    """Earlier turns from Colang 2 events (user utterances and bot utterances), oldest first."""
    chat = []
    for event in events or []:
        kind, fields = _event(event)
        if kind == "UtteranceUserActionFinished" and fields.get("final_transcript"):
            chat.append({"role": "user", "content": fields["final_transcript"]})
        elif kind == "StartUtteranceBotAction" and fields.get("script"):
            chat.append({"role": "assistant", "content": fields["script"]})
    return chat


@action(name="eco_generate_answer", is_system_action=True)
async def eco_generate_answer(user_message: str, events: Optional[list] = None, llm: Any = None, **_: Any) -> str:
    """Colang 2: answer with the main model, from the chat history and the rail-rewritten user message.

    NeMo's PassthroughLLMAction re-reads the *original* utterance, which would drop the rail's markers,
    so the ECO Colang 2 flow uses this action instead.
    """
    from nemoguardrails.context import llm_call_info_var, streaming_handler_var
    from nemoguardrails.llm.call import llm_call
    from nemoguardrails.logging.explain import LLMCallInfo
    from nemoguardrails.types import ChatMessage

    if llm is None:
        raise RuntimeError("eco_generate_answer needs the main model; declare one with `type: main` in config.yml")
    history = _chat_history(events)
    if history and history[-1]["role"] == "user":  # the current utterance, replaced by the rewritten one
        history = history[:-1]
    messages = [ChatMessage.from_dict(m) for m in history] + [ChatMessage.from_user(user_message)]
    llm_call_info_var.set(LLMCallInfo(task="general"))
    response = await llm_call(llm, messages, streaming_handler=streaming_handler_var.get())
    return response.content
