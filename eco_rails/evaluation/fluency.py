"""Does an answer read like an answer? Pure checks for the failure modes of corrupted (or unlearned) models.

A method can "forget" by babbling: an empty string, a phrase repeated until the token limit, a sentence said
twice. These are measured everywhere answers are generated (``eco-rails optimize``, ``eco-rails eval
--generate``, the benchmarks), with the same definitions, so the numbers can be compared.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["LOOP_REPETITION", "is_empty", "is_loop", "repeated_sentences", "repetition_rate"]

# A 3-gram repetition share at or above this reads as a loop ("the user asked ... the user asked ...").
LOOP_REPETITION = 0.3

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def is_empty(answer: str) -> bool:
    """An answer with no letters or digits (what a broken model emits)."""
    return not any(ch.isalnum() for ch in answer)


def repetition_rate(answer: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one (0 = none, near 1 = a loop); 0 for short answers."""
    words = answer.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def _normal(sentence: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", sentence.lower()).split())


def repeated_sentences(texts: list[str] | str, min_words: int = 3) -> list[str]:
    """Sentences (or lines) of at least ``min_words`` words that occur more than once, compared without case
    and punctuation, across all ``texts`` (one answer, or every bot turn of a conversation)."""
    if isinstance(texts, str):
        texts = [texts]
    seen: Counter[str] = Counter()
    for text in texts:
        for piece in _SENTENCE_END.split(text):
            norm = _normal(piece)
            if len(norm.split()) >= min_words:
                seen[norm] += 1
    return [s for s, c in seen.items() if c > 1]


def is_loop(answer: str) -> bool:
    """An answer that repeats itself: a sentence said twice, or 3-gram repetition >= :data:`LOOP_REPETITION`."""
    return bool(repeated_sentences(answer)) or repetition_rate(answer) >= LOOP_REPETITION
