"""Render prompts with the model's chat template and find exactly which tokens hold flagged text.

ECO corrupts only the tokens of the flagged user text; the system prompt, the template's role markers and
unflagged turns keep their clean embeddings. To find those tokens we need the character range of every
message's content inside the rendered prompt. Searching for the content string is fragile (a message
"user" would match the role header), so the template is rendered once with unique sentinels in place of
each content; the text between sentinels is template scaffolding, and the real render must equal that
scaffolding with the contents put back (verbatim, or stripped for templates that ``trim`` content). The
tokenizer's offset mapping then turns character ranges into token positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from eco_rails.engine.flags import FlagDecision
from eco_rails.errors import PromptError, SpanNotFoundError

_ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "bot": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
}


def normalize_messages(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Accept ``{"role", "content"}`` mappings (or objects with ``role``/``content``) and return plain dicts."""
    out: list[dict[str, str]] = []
    for i, msg in enumerate(messages):
        if isinstance(msg, Mapping):
            role, content = msg.get("role"), msg.get("content")
        else:
            role, content = getattr(msg, "role", None), getattr(msg, "content", None)
        role = getattr(role, "value", role)  # enums such as nemoguardrails.types.Role
        if not isinstance(role, str) or role.lower() not in _ROLE_ALIASES:
            raise PromptError(f"messages[{i}].role must be one of user, assistant, system, tool; got {role!r}.")
        if content is None:
            content = ""
        if not isinstance(content, str):
            # Multi-part content: keep the text parts only (local text models take no images).
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        out.append({"role": _ROLE_ALIASES[role.lower()], "content": content})
    if not out:
        raise PromptError("The prompt has no messages; send at least one user message.")
    if not any(m["content"].strip() for m in out):
        raise PromptError("The prompt is empty: every message has empty content.")
    return out


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt as the model sees it: text, token ids, and where each message's content lies."""

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    messages: list[dict[str, str]]
    content_spans: list[tuple[int, int]]  # character range of each message's content in ``text``

    def token_mask(self, char_spans: Sequence[tuple[int, int]]) -> list[bool]:
        """True for each token whose characters overlap any of ``char_spans``."""
        mask = []
        for start, end in self.offsets:
            hit = end > start and any(start < b and end > a for a, b in char_spans)
            mask.append(hit)
        return mask


def _sentinel(i: int) -> str:
    return f"\ue000eco{i}\ue001"


_SENTINEL_RE = re.compile("\ue000eco(\\d+)\ue001")


def _locate_contents(tokenizer: Any, messages: list[dict[str, str]], rendered: str, add_generation_prompt: bool) -> list[tuple[int, int]]:
    placeholder = [{"role": m["role"], "content": _sentinel(i)} for i, m in enumerate(messages)]
    skeleton = tokenizer.apply_chat_template(placeholder, tokenize=False, add_generation_prompt=add_generation_prompt)
    pieces = _SENTINEL_RE.split(skeleton)  # [scaffold0, idx0, scaffold1, idx1, ..., scaffoldN]
    order = [int(x) for x in pieces[1::2]]
    if sorted(order) != list(range(len(messages))):
        raise SpanNotFoundError(
            "This model's chat template drops or repeats message contents, so flagged text cannot be located "
            "token-exactly. Set corruption scope to the whole prompt (whole_prompt: true)."
        )
    for transform in (lambda s: s, str.strip):
        spans: list[tuple[int, int]] = [(0, 0)] * len(messages)
        text = pieces[0]
        for k, idx in enumerate(order):
            content = transform(messages[idx]["content"])
            spans[idx] = (len(text), len(text) + len(content))
            text += content + pieces[2 * k + 2]
        if text == rendered:
            return spans
    raise SpanNotFoundError(
        "This model's chat template rewrites message contents, so flagged text cannot be located token-exactly. "
        "Set corruption scope to the whole prompt (whole_prompt: true)."
    )


def render_prompt(
    tokenizer: Any,
    prompt: str | Sequence[Any],
    *,
    use_chat_template: bool = True,
    system_prompt: str | None = None,
) -> RenderedPrompt:
    """Render a string or a chat into the exact text and tokens the model will see.

    A string prompt is wrapped as one user message when ``use_chat_template`` is true (what an instruct
    model expects) and sent verbatim otherwise. ``system_prompt`` is prepended unless the chat already
    starts with a system message.
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PromptError("The prompt is empty; send some text.")
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = normalize_messages(prompt)
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]

    has_template = bool(getattr(tokenizer, "chat_template", None))
    if use_chat_template and has_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        spans = _locate_contents(tokenizer, messages, text, add_generation_prompt=True)
        add_special = False  # the template already contains any BOS token
    elif isinstance(prompt, str) and not system_prompt:
        text, spans, add_special = prompt, [(0, len(prompt))], True
    else:
        raise PromptError(
            "This model has no chat template, so a chat (list of messages) or a system prompt cannot be "
            "rendered. Send a plain string prompt, or use a model directory whose tokenizer_config.json "
            "defines chat_template."
        )
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    return RenderedPrompt(
        text=text,
        input_ids=list(enc["input_ids"]),
        offsets=[tuple(o) for o in enc["offset_mapping"]],
        messages=messages,
        content_spans=spans,
    )


def _answer_to(rendered: RenderedPrompt, index: int, span: tuple[int, int]) -> list[tuple[int, int]]:
    """The content span of the assistant reply right after message ``index``, if ``span`` is all of that
    message and it is a user message."""
    messages, spans = rendered.messages, rendered.content_spans
    if messages[index]["role"] != "user" or span != spans[index] or index + 1 >= len(messages):
        return []
    if messages[index + 1]["role"] != "assistant" or spans[index + 1][1] <= spans[index + 1][0]:
        return []
    return [spans[index + 1]]


def flagged_char_spans(rendered: RenderedPrompt, flag: FlagDecision) -> list[tuple[int, int]]:
    """Character ranges of the text ``flag`` asks to corrupt.

    Without explicit ``spans``: the content of the latest user message. With ``spans``: each piece of
    text is searched in user messages, newest first (then in any message); a piece found nowhere raises
    :class:`SpanNotFoundError` rather than silently corrupting nothing.

    A piece that is a *whole* earlier user message brings the assistant's reply to it along: that reply was
    produced from the corrupted question, and left readable a small model copies it into every later answer
    ("... a classic example of a linguistic fallacy" after "The capital of France is Paris."); it is also
    on the forgotten topic, so it must not inform later answers any more than the question does. A piece of a
    message (a caller's own span) corrupts just that piece.
    """
    if flag.whole_prompt:
        return [(0, len(rendered.text))]
    user_idx = [i for i, m in enumerate(rendered.messages) if m["role"] == "user"]
    if not flag.spans:
        if not user_idx:
            raise SpanNotFoundError("The request was flagged but has no user message to corrupt.")
        return [rendered.content_spans[user_idx[-1]]]
    other_idx = [i for i in range(len(rendered.messages)) if i not in user_idx]
    search_order = list(reversed(user_idx)) + list(reversed(other_idx))
    out: list[tuple[int, int]] = []
    for piece in flag.spans:
        if not piece.strip():
            continue
        for i in search_order:
            start, end = rendered.content_spans[i]
            pos = rendered.text.rfind(piece, start, end)
            if pos >= 0:
                out.append((pos, pos + len(piece)))
                out.extend(_answer_to(rendered, i, (pos, pos + len(piece))))
                break
        else:
            raise SpanNotFoundError(
                f"Flagged text {piece[:60]!r} does not occur in any message of the prompt, so it cannot be corrupted."
            )
    if not out:
        raise SpanNotFoundError("The request was flagged but every flagged span is empty.")
    return out
