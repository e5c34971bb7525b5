"""Augmentations that make the prompt classifier robust to what users actually type.

Pure functions of ``(text, rng)``: paraphrase templates, case and spacing changes, typos, leetspeak,
homoglyphs, and key terms placed into question templates in several languages. The same augmentations
are applied to negatives, so the classifier cannot learn "augmented looks in scope". Training data only:
the run-time normalisation lives in :mod:`eco_rails.classifier.text`.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Sequence

from eco_rails.classifier.text import HOMOGLYPHS

PARAPHRASE_TEMPLATES = (
    "Can you tell me: {q}",
    "I was wondering, {ql}",
    "Quick question - {q}",
    "{q} Please answer briefly.",
    "Explain this to me: {q}",
    "Hey! {q}",
    "I need help with my homework. {q}",
    "Be honest: {ql}",
    "My friend asked me this and I don't know: {ql}",
    "{q} Give me some details.",
)

# Key terms go into these, in several languages, so a bare mention of a name is enough to be in scope.
TERM_TEMPLATES = (
    "Tell me about {t}.",
    "What do you know about {t}?",
    "Who or what is {t}?",
    "Explain {t} to me.",
    "{t}?",
    "facts about {t}",
    "Write a short paragraph about {t}.",
    "¿Qué sabes de {t}?",
    "Háblame de {t}.",
    "Parle-moi de {t}.",
    "Que sais-tu de {t} ?",
    "Erzähl mir etwas über {t}.",
    "Was weißt du über {t}?",
    "Cosa sai di {t}?",
    "O que você sabe sobre {t}?",
)

_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}


def _lower_first(q: str) -> str:
    return q[:1].lower() + q[1:] if q[:2] != q[:2].upper() else q


def paraphrase(text: str, rng: random.Random) -> str:
    return rng.choice(PARAPHRASE_TEMPLATES).format(q=text, ql=_lower_first(text))


def change_case_and_spacing(text: str, rng: random.Random) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        return text.lower()
    if choice == 1:
        return text.upper()
    if choice == 2:
        return re.sub(r"[?!.,]", "", text).lower()
    return re.sub(r" ", lambda _: " " * rng.choice((1, 1, 2, 3)), text)


def typos(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 3]
    for i in rng.sample(candidates, k=min(2, len(candidates))):
        w = words[i]
        j = rng.randrange(1, len(w) - 1)
        words[i] = w[:j] + w[j + 1:] if rng.random() < 0.5 else w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def leetspeak(text: str, rng: random.Random) -> str:
    return "".join(_LEET[c.lower()] if c.lower() in _LEET and rng.random() < 0.5 else c for c in text)


def homoglyphs(text: str, rng: random.Random) -> str:
    return "".join(HOMOGLYPHS[c] if c in HOMOGLYPHS and rng.random() < 0.3 else c for c in text)


AUGMENTATIONS: tuple[Callable[[str, random.Random], str], ...] = (
    paraphrase, paraphrase, change_case_and_spacing, typos, leetspeak, homoglyphs,
)


def augment(text: str, rng: random.Random, n: int) -> list[str]:
    """``n`` distinct variants of ``text`` (fewer if augmentations collide), never ``text`` itself."""
    out: list[str] = []
    for _ in range(n * 3):
        if len(out) == n:
            break
        variant = rng.choice(AUGMENTATIONS)(text, rng)
        if rng.random() < 0.3:  # sometimes stack two augmentations
            variant = rng.choice(AUGMENTATIONS)(variant, rng)
        if variant != text and variant not in out:
            out.append(variant)
    return out


def term_prompts(term: str, rng: random.Random, n: int, templates: Sequence[str] = TERM_TEMPLATES) -> list[str]:
    """``n`` questions about ``term`` from ``templates`` (``{t}`` placeholders), sampled without replacement."""
    pool = list(templates) or list(TERM_TEMPLATES)
    return [t.replace("{t}", term) for t in rng.sample(pool, k=min(n, len(pool)))]
