"""Does an answer read like an answer? Pure checks for the failure modes of corrupted (or unlearned) models.

A method can "forget" by babbling: an empty string, a phrase repeated until the token limit, a sentence said
twice. These are measured everywhere answers are generated (``eco-rails optimize``, ``eco-rails eval
--generate``, the benchmarks), with the same definitions, so the numbers can be compared.

A guard that blocks exact repeats (``flagged_no_repeat_ngram_size``) can push a small model into loops that
exact matching no longer sees: the same phrase in another case or inflection ("The Game of Life" / "The Game Of
Life"), or one word said over and over in new frames ("a fitting description ... a fitting answer ... a fitting
reference"). :func:`is_paraphrase_loop` counts those, so a guard is judged by both numbers.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Any

__all__ = ["DOMINANT_MIN_COUNT", "DOMINANT_SHARE", "LOOP_REPETITION", "dominant_stem", "is_empty", "is_loop",
           "is_paraphrase_loop", "repeated_sentences", "repetition_rate", "stems"]

# A 3-gram repetition share at or above this reads as a loop ("the user asked ... the user asked ...").
LOOP_REPETITION = 0.3

# One content word (by stem) that is at least this many of an answer's content words, and said at least
# DOMINANT_MIN_COUNT times, reads as a paraphrase loop ("fitting" eight times in 128 tokens).
DOMINANT_SHARE = 0.15
DOMINANT_MIN_COUNT = 5

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# English function words: never a topic, so never a paraphrase loop's dominant word.
_FUNCTION_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it it's its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that that's the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves one two also may might must shall upon
like well many much even though yet still often every called known named i'm i've i'd i'll you're you've
we're they're there's what's let's don't doesn't can't isn't aren't wasn't won't
""".split())


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


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """One word's Porter stem, cached: :func:`is_paraphrase_loop` stems each word of an answer up to three times
    (the whole answer, each sentence, the content words), and answers share most of their words."""
    return _stemmer().stem(word)


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    """One nltk Porter stemmer per process (imported on first use: nltk is not needed to import this module)."""
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


def stems(answer: str) -> list[str]:
    """The answer's words, lower-cased and Porter-stemmed (nltk, shipped with rouge-score): "Fitting",
    "fitting," and "fits" are one word here."""
    return [_stem(w) for w in _WORD.findall(answer.lower())]


def dominant_stem(answer: str) -> tuple[str, int, float]:
    """The most frequent content word (by stem, function words left out): ``(stem, count, share of content
    words)``; ``("", 0, 0.0)`` for an answer with none."""
    content = [_stem(w) for w in _WORD.findall(answer.lower()) if w not in _FUNCTION_WORDS and len(w) > 2]
    if not content:
        return "", 0, 0.0
    stem, count = Counter(content).most_common(1)[0]
    return stem, count, count / len(content)


def is_paraphrase_loop(answer: str) -> bool:
    """A loop exact matching misses: 3-gram repetition >= :data:`LOOP_REPETITION` once case, punctuation and
    inflection are folded, a sentence said twice in that folded form, or one content word said at least
    :data:`DOMINANT_MIN_COUNT` times as at least :data:`DOMINANT_SHARE` of the content words. Every exact loop
    (:func:`is_loop`) is one too."""
    if is_loop(answer):
        return True
    folded = " ".join(stems(answer))
    if repetition_rate(folded) >= LOOP_REPETITION:
        return True
    sentences = [" ".join(stems(piece)) for piece in _SENTENCE_END.split(answer)]
    if repeated_sentences([s + "." for s in sentences if s]):
        return True
    _, count, share = dominant_stem(answer)
    return count >= DOMINANT_MIN_COUNT and share >= DOMINANT_SHARE
