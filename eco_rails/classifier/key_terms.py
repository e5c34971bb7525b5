"""Lexical matching of a policy's key terms: the second signal beside the neural classifier.

A small encoder cannot know that every minor name of a fictional world belongs to it; the policy's
``key_terms`` list says so explicitly. Matching is robust to case, punctuation, Unicode look-alikes,
leetspeak inside words, and one typo per word in long words, while staying exact for short words
(so "Snape" does not match "shape"). Pure functions; no state.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from eco_rails.classifier.text import normalize_for_classifier

_LEET_FOLD = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"})
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|[0-9]+")
_ARTICLES = {"the", "a", "an"}


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Lower-case words, accents stripped; a word mixing letters and digits is read as leetspeak."""
    raw = re.findall(r"[\w@$'’]+", _strip_accents(normalize_for_classifier(text)).lower())
    out = []
    for token in raw:
        if any(c.isalpha() for c in token) and any(c.isdigit() or c in "@$" for c in token):
            token = token.translate(_LEET_FOLD)
        out.extend(_WORD.findall(token.replace("’", "'")))
    return [w.replace("'", "") for w in out]


def _within_one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance <= 1 (one insertion, deletion, substitution or adjacent swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


@dataclass(frozen=True)
class KeyTerm:
    text: str
    target: str
    tokens: tuple[str, ...]

    def fuzzy_ok(self, token: str) -> bool:
        # One typo is tolerated in long words only: in a multi-word term from 5 letters, alone from 7.
        return len(token) >= (5 if len(self.tokens) > 1 else 7)


def compile_terms(terms_by_target: Mapping[str, Iterable[str]]) -> list[KeyTerm]:
    out = []
    for target, terms in terms_by_target.items():
        for term in terms:
            tokens = [w for w in words(term)]
            while tokens and tokens[0] in _ARTICLES and len(tokens) > 1:
                tokens = tokens[1:]
            if tokens:
                out.append(KeyTerm(term, target, tuple(tokens)))
    return out


def find_key_term(text: str, terms: Sequence[KeyTerm]) -> KeyTerm | None:
    """The first key term that occurs in ``text`` (as whole words), or None."""
    if not terms:
        return None
    toks = words(text)
    for term in terms:
        n = len(term.tokens)
        for start in range(len(toks) - n + 1):
            if all(w == t or (term.fuzzy_ok(t) and _within_one_edit(w, t)) for w, t in zip(toks[start:start + n], term.tokens)):
                return term
        # also match a multi-word term written as one word ("harrypotter", "hogwartsexpress")
        if n > 1:
            joined = "".join(term.tokens)
            if any(w == joined for w in toks):
                return term
    return None
