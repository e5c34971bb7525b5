"""A surrogate for the retain model: what the model answers about things it has never seen.

ECO chooses the corruption so that the corrupted model's forget-set behaviour matches a model that never
learned the data. The benchmarks have such a model (TOFU's retain model); a user's policy has none. The
surrogate builds one from the policy itself: each optimisation question with every key term and entity name
replaced by an invented one ("Who is Harry Potter's godfather?" -> "Who is Tenvo Kalom's godfather?"), and
so is a first name or surname of one said alone in mid-sentence ("Harry's parents"). The
*clean* model's answer probabilities on those questions are what "never heard of it" looks like for this
model and these question shapes (the answer choices still carry whatever the world gives away).

The corruption is then the weakest one under which the in-scope questions are answered no more confidently
than the invented ones: matched to the never-seen distribution, not pushed below it (pushing to chance on
cloze questions is what drove the old search to strengths at which answers loop).

Pure: names come from a seeded generator; nothing here loads a model.
"""

from __future__ import annotations

import math
import random
import re
from typing import Iterable, Sequence

__all__ = ["answer_probability", "invented_name", "mean_gap", "name_parts", "substitute_terms", "term_spans"]

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "st", "th", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "s", "l", "m")


def invented_name(rng: random.Random, words: int = 2) -> str:
    """A pronounceable name no corpus is likely to hold ("Tenvos Kalorn"), from ``rng``."""
    def word() -> str:
        return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                       for _ in range(2)).capitalize()

    return " ".join(word() for _ in range(words))


def _term_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    # longest first, so "Harry Potter" wins over "Harry"; word boundaries only where the term starts/ends with a
    # word character (terms like "Platform 9 3/4" end in one, "Dobby the house-elf" too)
    parts = []
    for term in sorted({t.strip() for t in terms if t and t.strip()}, key=len, reverse=True):
        body = re.escape(term)
        left = r"(?<!\w)" if term[0].isalnum() else ""
        right = r"(?!\w)" if term[-1].isalnum() else ""
        parts.append(left + body + right)
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


_FUNCTION_WORDS = frozenset({"of", "the", "and", "in", "on", "at", "to", "for", "with", "von", "van", "de", "la", "le"})
_SENTENCE_END = (".", "?", "!", ":", ";", '"', "(")


def name_parts(terms: Iterable[str]) -> list[str]:
    """The words of the terms that are names of two or three capitalised words ("Harry" and "Potter" of "Harry
    Potter"): a question that says only "Harry's parents" still names the entity, and a surrogate that kept
    "Harry" would still be about him (the clean model knows the answer, and the reference comes out too
    confident). Longer terms are titles ("Warner Bros. Studio Tour London ..."), whose words ("London") are not
    names of the policy's world."""
    parts: set[str] = set()
    for term in terms:
        tokens = [t.strip(".,'’\"()") for t in term.split()]
        content = [t for t in tokens if t.lower() not in _FUNCTION_WORDS]
        if not 2 <= len(tokens) <= 3 or not all(t[:1].isupper() for t in content):
            continue
        parts.update(t for t in content if len(t) >= 3 and t.isalpha())
    return sorted(parts, key=len, reverse=True)


def _part_pattern(parts: Sequence[str]) -> re.Pattern[str] | None:
    # case-sensitive: a capitalised word in mid-sentence is a name ("Harry's"), the same word lower-case is not
    # ("a black cat" is not Sirius Black)
    return re.compile("|".join(rf"(?<!\w){re.escape(p)}(?!\w)" for p in parts)) if parts else None


def _hits(question: str, terms: Sequence[str]) -> tuple[re.Pattern[str] | None, list[tuple[int, int]], list[tuple[int, int]]]:
    """The term pattern, and the spans of ``question`` it replaces: the key terms and entity names, then the name
    parts said alone in mid-sentence (the one matching rule :func:`substitute_terms` and :func:`term_spans` share).

    A name part is judged as if the terms around it were already replaced by invented names (which are words):
    right after a term ("S.P.E.W. Harry") it is in mid-sentence although the term ends in a full stop, and glued
    to a term ("S.P.E.W.Harry") it is part of that word, not a name of its own.
    """
    pattern = _term_pattern(terms)
    if pattern is None:
        return None, [], []
    found = [m.span() for m in pattern.finditer(question)]
    starts, ends = {a for a, _ in found}, {b for _, b in found}
    parts = _part_pattern(name_parts(terms))
    alone: list[tuple[int, int]] = []
    for m in parts.finditer(question) if parts is not None else ():
        a, b = m.span()
        if a in ends or b in starts or any(x < b and a < y for x, y in found):
            continue
        before = question[:a].rstrip()
        if len(before) in ends or (before and not before.endswith(_SENTENCE_END)):
            alone.append((a, b))
    return pattern, found, alone


def substitute_terms(question: str, terms: Sequence[str], rng: random.Random,
                     choices: Sequence[str] = ()) -> tuple[str, list[str]] | None:
    """``question`` and its ``choices`` with each key term / entity name replaced by an invented name (the same
    term by the same name throughout the row), or None when the question mentions none (no surrogate then).

    In the question, a capitalised word of a multi-word term in mid-sentence is a name too and is replaced
    ("Who teaches Potions to Harry?" -> "... to Tenvo?"); at the start of a sentence a capitalised word may be
    an ordinary one ("Order", "Black"), so it stays.

    The choices are rewritten only when *every* choice names a term (four houses, four characters): then a
    model that never saw them has nothing to go on. Otherwise they stay as they are, since mixing invented and
    real names skews the reference: an invented name among real ones stands out and the model avoids it
    (measured on the demo's questions: 0.16 probability for the right choice, under the 0.25 of a blind guess),
    and real choices ("J.K. Rowling", "Unseen University") carry what the world knows about them either way.

    Names are drawn from ``rng`` for the terms in order of appearance, then for the name parts, then for the
    choices: the order the committed learned strengths were searched with.
    """
    pattern, found, alone = _hits(question, terms)
    if pattern is None or not (found or alone):
        return None
    names: dict[str, str] = {}

    def name(piece: str) -> str:
        key = piece.lower()
        if key not in names:
            names[key] = invented_name(rng, words=min(2, len(piece.split())))
        return names[key]

    swaps = {(a, b): name(question[a:b]) for a, b in [*found, *alone]}
    pieces, at = [], 0
    for (a, b), invented in sorted(swaps.items()):
        pieces += [question[at:a], invented]
        at = b
    new_question = "".join(pieces) + question[at:]
    if choices and all(pattern.search(c) for c in choices):
        return new_question, [pattern.sub(lambda m: name(m.group(0)), c) for c in choices]
    return new_question, list(choices)


def term_spans(question: str, terms: Sequence[str]) -> list[str]:
    """The pieces of ``question`` that :func:`substitute_terms` replaces (key terms and entity names, and their
    name parts in mid-sentence), in order of appearance, without overlaps.

    Why: corrupting only these pieces, as ECO corrupts the tokens of named entities, is the other scope the
    strength sweep (``scripts/strength-sweep.py``) measures against corrupting the whole message.
    """
    _, found, alone = _hits(question, terms)
    return [question[a:b] for a, b in sorted([*found, *alone])]


def answer_probability(normalized_logprobs: Sequence[float], answer: int) -> float:
    """Probability of the right choice among the choices, from length-normalised log-likelihoods (softmax)."""
    if not 0 <= answer < len(normalized_logprobs):
        raise ValueError(f"answer index {answer} outside {len(normalized_logprobs)} choices")
    top = max(normalized_logprobs)
    weights = [math.exp(v - top) for v in normalized_logprobs]
    return weights[answer] / sum(weights)


def mean_gap(values: Sequence[float], reference: Sequence[float]) -> float:
    """``mean(values) - mean(reference)``: > 0 while the corrupted model is more confident than a model that
    never saw the questions' subjects; the search looks for the weakest corruption that brings it to <= 0."""
    if not values or not reference:
        raise ValueError("mean_gap needs two non-empty samples")
    return sum(values) / len(values) - sum(reference) / len(reference)
