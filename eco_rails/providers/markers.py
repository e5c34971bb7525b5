"""Signed flag markers: how the ECO rail's decision travels to the provider inside the message itself.

Why markers (the design choice, see README "How the rail tells the provider"): NeMo Guardrails runs
Colang 2 actions and parallel input rails in separate asyncio tasks, so a ContextVar set by the rail is
lost; a registry keyed by message text cross-talks when two conversations send the same text and only
one is flagged. A marker travels *with* the message through every engine path (Colang 1 and 2, rendered
prompts and passthrough chats, history, streaming, the server), so each request carries its own decision.

* ``mark_span(text)`` wraps the flagged text: ``OPEN nonce mac SEP text CLOSE``. The MAC is an HMAC of the
  exact text under a per-process secret, so a marker can neither be forged nor moved onto other text.
* ``mark_reference(text)`` flags an *earlier* turn the rail cannot rewrite: ``REF nonce length mac SEP``;
  the provider finds the text of that length whose MAC matches.
* Marker characters are Unicode private-use code points. The rail removes them from user text before it
  marks anything (:func:`neutralize`), and the provider drops every marker whose MAC does not verify, so
  typed look-alikes are neither honoured nor able to cut a real marker short.
* The provider strips all markers before the model sees the prompt. They carry no score, target or
  policy: an opaque nonce and MAC are all that can reach a log or another model's prompt.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Sequence

from eco_rails.engine.flags import FlagDecision, RailCorruption

log = logging.getLogger(__name__)

OPEN, CLOSE, REF, SEP = "\ue0e0", "\ue0e1", "\ue0e2", "\ue0e3"
_MARKER_CHARS = re.compile("[\ue0e0-\ue0ef]")
_SPAN = re.compile(f"{OPEN}([0-9a-f]{{16}})([0-9a-f]{{32}})([0-9a-f]{{0,16}}){SEP}([^\ue0e0-\ue0ef]*){CLOSE}")
_REFERENCE = re.compile(f"{REF}([0-9a-f]{{16}})([0-9a-f]{{1,8}}):([0-9a-f]{{32}})([0-9a-f]{{0,16}}){SEP}")

# One secret per process: markers are made and checked in the same process (rail and provider).
_SECRET = os.urandom(32)


def _mac(kind: str, nonce: str, text: str, spec: str = "") -> str:
    message = f"{kind}\x00{nonce}\x00{spec}\x00".encode() + text.encode("utf-8", "surrogatepass")
    return hmac.new(_SECRET, message, sha256).hexdigest()[:32]


# Corruption settings travel as an opaque id (covered by the MAC) into this process-local table, so a
# request is corrupted with its own policy's (learned) settings without a readable copy in the prompt.
_SPECS: dict[str, RailCorruption] = {}


def register_corruption(spec: RailCorruption) -> str:
    """Register the rail's corruption for a flagged request and return its id (a hash of its content)."""
    spec_id = sha256(spec.model_dump_json().encode()).hexdigest()[:16]
    _SPECS.setdefault(spec_id, spec)
    return spec_id


def corruption_for(spec_id: str) -> RailCorruption | None:
    return _SPECS.get(spec_id)


def neutralize(text: str) -> str:
    """Remove marker characters from untrusted text."""
    return _MARKER_CHARS.sub("", text)


def strip_markers(text: str) -> str:
    """Remove whole markers (valid or not), keeping the text a span marker wraps; then any stray marker
    characters. For reading text that may have passed through the rail before (e.g. chat history)."""
    text = _SPAN.sub(lambda m: m.group(4), text)
    return neutralize(_REFERENCE.sub("", text))


def has_marker_chars(text: str) -> bool:
    return bool(_MARKER_CHARS.search(text))


def mark_span(text: str, spec_id: str = "") -> str:
    text = neutralize(text)
    nonce = os.urandom(8).hex()
    return f"{OPEN}{nonce}{_mac('span', nonce, text, spec_id)}{spec_id}{SEP}{text}{CLOSE}"


def mark_reference(text: str, spec_id: str = "") -> str:
    text = neutralize(text)
    nonce = os.urandom(8).hex()
    return f"{REF}{nonce}{len(text):x}:{_mac('ref', nonce, text, spec_id)}{spec_id}{SEP}"


@dataclass(frozen=True)
class ExtractedFlags:
    """A prompt with its markers removed, and the flagged texts the valid markers named."""

    prompt: Any  # str, or a list of messages shaped like the input
    spans: tuple[str, ...]
    invalid_markers: int
    spec_ids: tuple[str, ...] = ()  # corruption settings named by the valid markers

    @property
    def flagged(self) -> bool:
        return bool(self.spans)

    def rail_decision(self, default_corruption: Any) -> tuple[FlagDecision, Any]:
        """(FlagDecision, corruption spec) the markers carry: their spans, with the rail's registered
        corruption (and its whole-prompt scope) if they name one, else ``default_corruption``."""
        rail = next((c for c in map(corruption_for, self.spec_ids) if c is not None), None)
        flag = FlagDecision.flag(*self.spans, whole_prompt=bool(rail and rail.whole_prompt))
        return flag, (rail.spec if rail else default_corruption)


def _strip(text: str, spec_ids: list[str]) -> tuple[str, list[str], list[tuple[str, int, str, str]], int]:
    spans: list[str] = []
    invalid = 0

    def verify_span(m: re.Match) -> str:
        nonlocal invalid
        nonce, mac, spec, inner = m.group(1), m.group(2), m.group(3), m.group(4)
        if hmac.compare_digest(mac, _mac("span", nonce, inner, spec)):
            spans.append(inner)
            if spec:
                spec_ids.append(spec)
        else:
            invalid += 1
        return inner

    text = _SPAN.sub(verify_span, text)
    refs = [(m.group(1), int(m.group(2), 16), m.group(3), m.group(4)) for m in _REFERENCE.finditer(text)]
    text = _REFERENCE.sub("", text)
    leftovers = len(_MARKER_CHARS.findall(text))
    return _MARKER_CHARS.sub("", text), spans, refs, invalid + leftovers


def _resolve_reference(nonce: str, length: int, mac: str, spec: str, haystacks: Sequence[str]) -> str | None:
    for hay in haystacks:  # whole contents first (the common case), then every substring of that length
        if len(hay) == length and hmac.compare_digest(mac, _mac("ref", nonce, hay, spec)):
            return hay
    for hay in haystacks:
        for start in range(0, len(hay) - length + 1):
            piece = hay[start:start + length]
            if hmac.compare_digest(mac, _mac("ref", nonce, piece, spec)):
                return piece
    return None


def extract(prompt: Any) -> ExtractedFlags:
    """Verify and remove all markers from a prompt (a string, or messages as dicts or objects with
    ``content``). Invalid markers are dropped and counted, never honoured."""
    spec_ids: list[str] = []
    if isinstance(prompt, str):
        clean, spans, refs, invalid = _strip(prompt, spec_ids)
        contents: list[str] = [clean]
        out_prompt: Any = clean
    else:
        out_prompt, contents, spans, refs, invalid = [], [], [], [], 0
        for msg in prompt:
            content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", None)
            if isinstance(content, str) and has_marker_chars(content):
                clean, s, r, bad = _strip(content, spec_ids)
                spans += s
                refs += r
                invalid += bad
                content = clean
                msg = {**msg, "content": clean} if isinstance(msg, dict) else _with_content(msg, clean)
            out_prompt.append(msg)
            if isinstance(content, str):
                contents.append(content)
    for nonce, length, mac, spec in refs:
        found = _resolve_reference(nonce, length, mac, spec, contents)
        if found is None:
            invalid += 1
        elif found.strip():
            spans.append(found)
            if spec:
                spec_ids.append(spec)
    if invalid:
        log.warning("Dropped %d unverifiable eco flag marker(s) from a prompt", invalid)
    return ExtractedFlags(out_prompt, tuple(dict.fromkeys(s for s in spans if s.strip())), invalid,
                          tuple(dict.fromkeys(spec_ids)))


def _with_content(msg: Any, content: str) -> Any:
    import copy

    new = copy.copy(msg)
    new.content = content
    return new
