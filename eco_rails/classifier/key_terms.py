"""Lexical matching of a policy's key terms: evidence beside the neural classifier, not a verdict on its own.

A small encoder cannot know that every minor name of a fictional world belongs to it; the policy's key
terms (and its entities' names and aliases) say so explicitly. But a word can mean something else: "Phoenix"
is a city, "Granger" an economist. So each term is **distinctive** (a coined name: it flags on its own) or
**ambiguous** (it is an ordinary word, or it occurs in the policy's keep/homonym prompts: the encoder must
agree, above a threshold calibrated on homonyms). ``fit`` decides which is which.

Matching is robust to case, punctuation, accents, leetspeak inside words, names split into pieces
("Hog warts") or run together ("WhoIsHarryPotter"), two-word names written surname first ("Potter, Harry"),
vowels dropped or masked ("Hrry P*tter"), and one typo in long words, but a real word (one the vocabulary knows,
or one of those with a common ending: :func:`is_word`) is never read as a typo of a term ("shape" is not
"Snape", "pensive" is not "Pensieve"). Terms in scripts without reliable word
boundaries (Chinese, Japanese, Korean, Arabic, Thai) match as substrings; Cyrillic, Greek, Hebrew and
Devanagari terms match word prefixes (inflected forms: "Поттера"). Pure functions; no state.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from eco_rails.classifier.text import fold_lookalikes, normalize_for_classifier

_LEET_FOLD = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"})
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|[0-9]+")
_ARTICLES = {"the", "a", "an"}
# A change of script is a word boundary: CJK, Korean and Arabic write no space between a Latin name and its
# particles ("Luna Lovegoodって誰", "Newt Scamander의"), and \w spans both scripts.
_MASK = re.compile(r"(?<=[A-Za-z])[*#?•·](?=[A-Za-z])")
_VOWELS = str.maketrans("", "", "aeiou")
_SCRIPT_RUN = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]+")
_SUBSTRING_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "ARABIC", "THAI")
_PREFIX_SCRIPTS = ("CYRILLIC", "GREEK", "HEBREW", "DEVANAGARI", "BENGALI", "TAMIL")


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _script(text: str) -> str:
    """``substring``, ``prefix`` or ``latin``: how a term in this script is matched."""
    for ch in text:
        if ch.isalpha() and not ch.isascii():
            name = unicodedata.name(ch, "")
            if name.startswith(_SUBSTRING_SCRIPTS):
                return "substring"
            if name.startswith(_PREFIX_SCRIPTS):
                return "prefix"
    return "latin"


def words(text: str) -> list[str]:
    """Lower-case words, accents stripped; a word mixing letters and digits is read as leetspeak."""
    text = _MASK.sub("", _strip_accents(normalize_for_classifier(text)))  # "H*rry P#tter" -> "Hrry Ptter"
    raw = re.findall(r"[\w@$'’]+", text.lower())
    out = []
    for token in raw:
        if not token.isascii() and any("a" <= c <= "z" for c in token):
            token = fold_lookalikes(token)  # a word mixing Latin and look-alike Cyrillic/Greek letters is an evasion
        if any(c.isalpha() for c in token) and any(c.isdigit() or c in "@$" for c in token):
            token = token.translate(_LEET_FOLD)
        pieces = _SCRIPT_RUN.findall(token) if not token.isascii() else [token]  # "lovegoodって誰" -> lovegood, って誰
        for piece in pieces:
            out.extend(_WORD.findall(piece.replace("’", "'")))
    # the possessive is no part of a name ("Malfoy's" is "Malfoy", so one typo more still matches)
    return [w[:-2] if w.endswith("'s") and len(w) > 3 else w.replace("'", "") for w in out]


def _compact(text: str) -> str:
    """Letters and digits only, lower-case, accents stripped: for substring matching."""
    return "".join(ch for ch in _strip_accents(normalize_for_classifier(text)).lower() if ch.isalnum())


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
    mode: str = "latin"  # latin (words, one typo), prefix (word prefixes), substring
    compact: str = ""
    ambiguous: bool = False

    def fuzzy_ok(self, token: str) -> bool:
        # One typo is tolerated in long words only: in a multi-word term from 5 letters, alone from 8 (a
        # one-word term of 7 letters is one edit from too many words of other languages: "Souafle", "soufflé").
        return len(token) >= (5 if len(self.tokens) > 1 else 8)

    def skeleton_ok(self) -> bool:
        # Written without vowels ("Hrry Pttr", "Hgwrts"): only names with enough consonants to stay unique.
        return self.mode == "latin" and len("".join(self.tokens).translate(_VOWELS)) >= 5


class TermIndex(list[KeyTerm]):
    """Compiled key terms (a list) with look-up tables, so matching a prompt costs a few dictionary look-ups
    per word rather than a pass over thousands of terms (a policy's entities bring many aliases)."""

    def __init__(self, terms: Iterable[KeyTerm] = ()) -> None:
        super().__init__(terms)
        self.by_first: dict[str, list[KeyTerm]] = {}
        self.by_length: dict[int, list[KeyTerm]] = {}  # fuzzy candidates, by the length of their first token
        self.by_joined: dict[str, list[KeyTerm]] = {}  # "harrypotter", "hogwarts"
        self.by_skeleton: dict[str, list[KeyTerm]] = {}  # consonants of the first token: "hrry", "hgwrts"
        self.by_last: dict[str, list[KeyTerm]] = {}  # two-word names written surname first: "Potter, Harry"
        self.glued: dict[str, list[KeyTerm]] = {}  # long names to find inside run-together text: "WhoIsHarryPotter"
        self.by_prefix: dict[str, list[KeyTerm]] = {}  # first three letters of a prefix-matched term
        self.substring: list[KeyTerm] = []
        for term in self:
            self._add(term)
        self.glued_lengths = sorted({len(k) for k in self.glued})

    def _add(self, term: KeyTerm) -> None:
        if term.mode == "substring":
            self.substring.append(term)
            return
        first = term.tokens[0]
        if term.mode == "prefix":
            self.by_prefix.setdefault(first[:3], []).append(term)
            return
        self.by_first.setdefault(first, []).append(term)
        if term.fuzzy_ok(first):
            self.by_length.setdefault(len(first), []).append(term)
        joined = "".join(term.tokens)
        if len(joined) >= 6:
            self.by_joined.setdefault(joined, []).append(term)
        if len(joined) >= 8 and not term.ambiguous:
            self.glued.setdefault(joined, []).append(term)
        if term.skeleton_ok():
            self.by_skeleton.setdefault(first.translate(_VOWELS), []).append(term)
        if len(term.tokens) == 2 and min(map(len, term.tokens)) >= 3:
            self.by_last.setdefault(term.tokens[1], []).append(term)


def compile_terms(terms_by_target: Mapping[str, Iterable[str]], ambiguous: Iterable[str] = ()) -> TermIndex:
    """Compile terms (target id -> terms); terms listed in ``ambiguous`` need the encoder's agreement."""
    unsure = set(ambiguous)
    out: list[KeyTerm] = []
    seen: set[tuple[str, tuple[str, ...], str]] = set()
    for target, terms in terms_by_target.items():
        for term in terms:
            mode = _script(term)
            tokens = words(term)
            while tokens and tokens[0] in _ARTICLES and len(tokens) > 1:
                tokens = tokens[1:]
            compact = _compact(term)
            if not tokens or (mode == "substring" and len(compact) < 2):
                continue
            key = (target, tuple(tokens), mode)
            if key in seen:
                continue
            seen.add(key)
            out.append(KeyTerm(term, target, tuple(tokens), mode, compact, term in unsure))
    return TermIndex(out)


# English endings that make a new word of a known one ("patron" -> "patrons", "pens" -> "pensive"), with what
# the stem may have lost ("gobble" -> "gobbling", "story" -> "stories").
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", "e"), ("ed", "e"), ("es", ""), ("s", ""), ("ing", ""), ("ed", ""),
             ("er", ""), ("ers", ""), ("est", ""), ("ly", ""), ("ive", ""), ("ive", "e"), ("ness", ""), ("ment", ""),
             ("able", ""), ("ful", ""), ("less", ""), ("ous", ""), ("ity", ""), ("ist", ""), ("ism", ""), ("al", ""))


def is_word(word: str, vocabulary: frozenset[str]) -> bool:
    """``word`` is a whole word of the vocabulary, or one of them with a common English ending.

    Why the endings: the encoder's word-piece vocabulary holds ~22,000 whole words, so "pensive" (pens + ##ive)
    and "goblins" are missing from it, and a real word missing there could be read as a typo of a key term
    ("pensive" for "Pensieve"). A stem of four letters or more must be a whole word itself, so a misspelt name
    ("Hermoine", "Dumbledor") is still no word."""
    if word in vocabulary:
        return True
    for ending, restore in _SUFFIXES:
        stem = word[: -len(ending)]
        if word.endswith(ending) and len(stem) >= 4 and (stem + restore in vocabulary
                                                         or (len(stem) > 4 and stem[-1] == stem[-2] and stem[:-1] in vocabulary)):
            return True
    return False


def _same(term: KeyTerm, word: str, token: str, vocabulary: frozenset[str]) -> bool:
    if word == token or (word in (token + "s", token + "es") and len(token) >= 4):  # a plural is the term, not a typo
        return True
    # a real word is never read as a typo of a term ("shape" / "Snape", "pensive" / "Pensieve")
    return term.fuzzy_ok(token) and _within_one_edit(word, token) and not is_word(word, vocabulary)


def _sequence_at(term: KeyTerm, toks: Sequence[str], start: int, vocabulary: frozenset[str]) -> bool:
    n = len(term.tokens)
    if start + n > len(toks):
        return False
    return all(_same(term, w, t, vocabulary) for w, t in zip(toks[start:start + n], term.tokens))


def _skeleton_at(term: KeyTerm, toks: Sequence[str], start: int, vocabulary: frozenset[str]) -> bool:
    n = len(term.tokens)
    if start + n > len(toks):
        return False
    return all(w == t or (w not in vocabulary and w == w.translate(_VOWELS) and w == t.translate(_VOWELS))
               for w, t in zip(toks[start:start + n], term.tokens))


def _prefix_at(term: KeyTerm, toks: Sequence[str], start: int) -> bool:
    n = len(term.tokens)
    if start + n > len(toks):
        return False
    return all(w.startswith(t) and len(w) - len(t) <= 3 for w, t in zip(toks[start:start + n], term.tokens))


def find_key_terms(text: str, terms: Sequence[KeyTerm], vocabulary: frozenset[str] = frozenset()) -> list[KeyTerm]:
    """Every key term that occurs in ``text``, distinctive ones first."""
    if not terms:
        return []
    index = terms if isinstance(terms, TermIndex) else TermIndex(terms)
    toks = words(text)
    hits: dict[int, KeyTerm] = {}
    for i, word in enumerate(toks):
        for term in index.by_first.get(word, ()):
            if _sequence_at(term, toks, i, vocabulary):
                hits[id(term)] = term
        if len(word) >= 4 and not is_word(word, vocabulary):
            for length in (len(word) - 1, len(word), len(word) + 1):
                for term in index.by_length.get(length, ()):
                    if id(term) not in hits and _sequence_at(term, toks, i, vocabulary):
                        hits[id(term)] = term
        # a multi-word term written as one word ("harrypotter"), or a name split into pieces ("hog warts")
        for size in (1, 2, 3):
            piece = "".join(toks[i:i + size]) if i + size <= len(toks) else None
            for term in index.by_joined.get(piece, ()) if piece else ():
                if size > 1 or len(term.tokens) > 1:
                    hits[id(term)] = term
        for term in index.by_prefix.get(word[:3], ()):
            if _prefix_at(term, toks, i):
                hits[id(term)] = term
        if word not in vocabulary and len(word) >= 3 and word == word.translate(_VOWELS):
            for term in index.by_skeleton.get(word, ()):  # vowels dropped or masked
                if _skeleton_at(term, toks, i, vocabulary):
                    hits[id(term)] = term
        for term in index.by_last.get(word, ()):  # "Potter, Harry"
            if i + 1 < len(toks) and toks[i + 1] == term.tokens[0]:
                hits[id(term)] = term
        if len(word) >= 10 and word not in vocabulary:
            for size in index.glued_lengths:
                for at in range(len(word) - size + 1):
                    for term in index.glued.get(word[at:at + size], ()):
                        hits[id(term)] = term
    if index.substring and not text.isascii():
        compact = _compact(text)
        for term in index.substring:
            if term.compact in compact:
                hits[id(term)] = term
    return sorted(hits.values(), key=lambda t: t.ambiguous)


def mask_names(text: str, names: Sequence[KeyTerm], vocabulary: frozenset[str] = frozenset()) -> str | None:
    """``text`` as words, with every occurrence of ``names`` blanked out, or None when none occurs.

    Why: a key term can be part of the name of something else ("Snape" in "Snape Maltings", a concert hall).
    Matching the key terms again in the masked text keeps the term's evidence only where it stands on its own:
    "Who is Snape?" still flags, "What is on at Snape Maltings?" is left to the encoder, and "Who is Snape? Also,
    Snape Maltings." still finds the first "Snape"."""
    if not names:
        return None
    index = names if isinstance(names, TermIndex) else TermIndex(names)
    toks = words(text)
    blank = [False] * len(toks)
    for i, word in enumerate(toks):
        for name in index.by_first.get(word, ()):
            if _sequence_at(name, toks, i, vocabulary):
                blank[i:i + len(name.tokens)] = [True] * len(name.tokens)
    if not any(blank):
        return None
    return " ".join("," if b else t for t, b in zip(toks, blank))


def find_standalone_terms(text: str, terms: Sequence[KeyTerm], exceptions: Sequence[KeyTerm],
                          vocabulary: frozenset[str] = frozenset()) -> list[KeyTerm]:
    """:func:`find_key_terms`, leaving out terms found only inside one of the ``exceptions`` (see :func:`mask_names`)."""
    hits = find_key_terms(text, terms, vocabulary)
    if hits and exceptions:
        masked = mask_names(text, exceptions, vocabulary)
        if masked is not None:
            return find_key_terms(masked, terms, vocabulary)
    return hits


def names_containing_terms(names: Iterable[str], terms: Iterable[str]) -> list[str]:
    """The ``names`` (of things outside the policy) whose words contain a key term's words and more: the
    exceptions for :func:`mask_names` ("Snape Maltings" for "Snape"). Latin-script names only."""
    term_tokens = {tuple(words(t)) for t in terms if _script(t) == "latin"}
    out = []
    for name in dict.fromkeys(names):
        toks = tuple(words(name))
        if _script(name) != "latin" or len(toks) < 2:
            continue
        if any(len(t) < len(toks) and any(toks[i:i + len(t)] == t for i in range(len(toks) - len(t) + 1)) for t in term_tokens):
            out.append(name)
    return out


def find_key_term(text: str, terms: Sequence[KeyTerm], vocabulary: frozenset[str] = frozenset()) -> KeyTerm | None:
    """The strongest key term in ``text`` (a distinctive one if any), or None."""
    hits = find_key_terms(text, terms, vocabulary)
    return hits[0] if hits else None


def is_common_word(term: str, vocabulary: frozenset[str]) -> bool:
    """A one-word term the vocabulary knows as a word ("Phoenix", "Black"): ambiguous by nature."""
    tokens = words(term)
    return len(tokens) == 1 and tokens[0] in vocabulary
