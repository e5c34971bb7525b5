"""Views of a prompt: bounded, normalised rewrites the classifier scores besides the prompt itself.

An attacker hides an in-scope question by encoding it (base64, hex, URL escapes, ROT13 and other letter
shifts, reversed text), by spelling it out (``H a r r y``, ``H.o.g.w.a.r.t.s``), with look-alike letters or
leetspeak, inside a wrapper (role-play, "ignore previous instructions", a JSON or code request), or inside a
long text. Each trick has a view that undoes it; the prompt is in scope if any view is. Everything is pure
and bounded: decoding is at most :data:`MAX_DEPTH` levels deep, each view at most :data:`MAX_VIEW_CHARS`,
and the caller caps how many views reach the encoder (cheap key-term matching sees them all).

Which view is "more like language" is judged by how many of its words a vocabulary knows (the encoder's
own word list), so a letter shift is undone only when the result reads better than the input.
"""

from __future__ import annotations

import base64
import binascii
import html
import itertools
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Iterable

from eco_rails.classifier.text import fold_lookalikes, normalize_for_classifier

MAX_DEPTH = 3
MAX_VIEW_CHARS = 4000
MAX_SENTENCES = 400
MAX_TOKENS_DECODED = 8  # encoded tokens decoded per text and level

_LEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l"})
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{12,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[\s:,]?){6,}(?![0-9A-Fa-f])")
_URL = re.compile(r"(?:%[0-9A-Fa-f]{2}){3,}")
# A run of single characters separated by spaces, dots, dashes, emoji, quotes ... ("H a r r y", "H.o.g.w.a.r.t.s",
# "H🔥a🔥r🔥r🔥y", "'H' 'a' 'r'").
_SPACED = re.compile(r"(?<![^\W_])[^\W_](?:(?:(?:[^\w\n]|_){1,4}|\s{2,6})[^\W_]){2,}(?![^\W_])")
_SENTENCE = re.compile(r"[^.!?。！？؟\n]+[.!?。！？؟]*")
_LEETISH = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[0-9@$!|])[\w@$!|]{3,}\b")
# Sentences that set up a wrapper rather than ask anything: role-play, instruction overrides, output formats.
_WRAPPER = re.compile(
    r"^\s*(you are|you're|act as|pretend|imagine|roleplay|role-play|let's play|from now on|ignore|disregard|forget "
    r"(all|every|your|previous)|system|developer mode|dan\b|jailbreak|respond|reply|answer (only|in|as|with)|output|"
    r"format|return (only|a|the)|write (a|the) (python|javascript|json|yaml|sql|function|program|script|code)|"
    r"translate|stay in character|do not refuse|never refuse|as an ai|hi\b|hello\b|hey\b|thanks|thank you|please\b)",
    re.IGNORECASE,
)
# Letters written as numbers: 8-bit binary, or decimal character codes ("72 111 103 ...").
_BINARY = re.compile(r"(?<![01])(?:[01]{7,8}[\s,]*){6,}")
_DECIMAL = re.compile(r"(?<!\d)(?:(?:3[2-9]|[4-9]\d|1[01]\d|12[0-6])[\s,]+){5,}(?:3[2-9]|[4-9]\d|1[01]\d|12[0-6])(?!\d)")
_B32 = re.compile(r"(?<![A-Z2-7=])[A-Z2-7]{16,}={0,6}(?![A-Za-z0-9=])")
_ESCAPES = re.compile(r"&#?\w{2,8};|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}")
_MORSE = re.compile(r"^[\s.\-/|·•_−–—]+$")
_MORSE_CODE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g", "....": "h", "..": "i",
    ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n", "---": "o", ".--.": "p", "--.-": "q", ".-.": "r",
    "...": "s", "-": "t", "..-": "u", "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z",
    "-----": "0", ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6", "--...": "7",
    "---..": "8", "----.": "9", "..--..": "?", ".-.-.-": ".",
}
_NATO = {w: w[0] for w in "alfa alpha bravo charlie delta echo foxtrot golf hotel india juliet juliett kilo lima mike november "
                          "oscar papa quebec romeo sierra tango uniform victor whiskey whisky xray x-ray yankee zulu".split()}
_NATO_RUN = re.compile(r"(?i)\b(?:(?:" + "|".join(sorted(_NATO, key=len, reverse=True)) + r")\b[\s,.-]*){4,}")
# Upside-down text: letters turned 180 degrees, read backwards ("¿sʇɹɐʍƃoH").
_FLIPPED = dict(zip("ɐqɔpǝɟƃɥıɾʞlɯuodbɹsʇnʌʍxʎz¿¡˙'", "abcdefghijklmnopqrstuvwxyz?!.,"))
_FLIP_ONLY = set("ɐɔǝɟƃɥıɾʞɯɹʇʌʍʎ¿")
_QUOTED = re.compile(r"[\"“”']([^\"“”'\n]{8,}?)[\"“”']")


@dataclass(frozen=True)
class View:
    kind: str  # text, folded, joined, leet, base64, hex, url, shift, reversed, stripped, sentence
    text: str


def word_ratio(text: str, vocabulary: frozenset[str]) -> float:
    """Fraction of the Latin-letter words (2+ letters) that ``vocabulary`` knows; 0.0 without such words."""
    found = _LATIN_WORD.findall(text)
    if not found:
        return 0.0
    return sum(1 for w in found if w.lower() in vocabulary) / len(found)


def _shift(text: str, k: int) -> str:
    out = []
    for ch in text:
        if "a" <= ch <= "z":
            out.append(chr((ord(ch) - 97 + k) % 26 + 97))
        elif "A" <= ch <= "Z":
            out.append(chr((ord(ch) - 65 + k) % 26 + 65))
        else:
            out.append(ch)
    return "".join(out)


def _printable_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.strip():
        return None
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\t")
    return text if printable / len(text) >= 0.9 else None


def _decode_base64(token: str) -> str | None:
    padded = token + "=" * (-len(token) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            text = _printable_text(decoder(padded))
        except (binascii.Error, ValueError):
            continue
        if text is not None and sum(ch.isalpha() for ch in text) >= 3:
            return text
    return None


def _decode_base32(token: str) -> str | None:
    try:
        text = _printable_text(base64.b32decode(token.rstrip("=") + "=" * (-len(token.rstrip("=")) % 8)))
    except (binascii.Error, ValueError):
        return None
    return text if text is not None and sum(ch.isalpha() for ch in text) >= 3 else None


def _decode_hex(token: str) -> str | None:
    digits = re.sub(r"[\s:,]", "", token)
    if len(digits) % 2:
        return None
    try:
        return _printable_text(bytes.fromhex(digits))
    except ValueError:
        return None


def atbash(text: str) -> str:
    """Atbash (a<->z, b<->y, ...): its own inverse, so it both disguises and undoes."""
    return "".join(chr(219 - ord(ch)) if "a" <= ch <= "z" else chr(155 - ord(ch)) if "A" <= ch <= "Z" else ch for ch in text)


def _rot47(text: str) -> str:
    return "".join(chr(33 + (ord(ch) + 14) % 94) if "!" <= ch <= "~" else ch for ch in text)


def _codes(match: re.Match[str], base: int) -> str:
    values = [int(v, base) for v in re.findall(r"\d+", match.group(0))]
    text = "".join(chr(v) for v in values if 32 <= v < 127)
    return f" {text} "


_DASHES = str.maketrans("·•−–—_", "..----")


def _morse(text: str) -> str | None:
    words = re.split(r"\s*[/|]\s*|\s{3,}", text.strip().translate(_DASHES))
    out = " ".join("".join(_MORSE_CODE.get(c, "") for c in w.split()) for w in words).strip()
    return out if sum(ch.isalpha() for ch in out) >= 3 else None


def _unflipped(text: str) -> str | None:
    if sum(ch in _FLIP_ONLY for ch in text) < 3:
        return None
    return "".join(_FLIPPED.get(ch, ch) for ch in reversed(text))


def _escapes(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("&"):
            return html.unescape(token)
        return chr(int(token[2:], 16))

    return _ESCAPES.sub(one, text)


def _joined(text: str) -> str | None:
    def join(match: re.Match[str]) -> str:
        run = match.group(0)
        words = re.split(r"\s{2,}|\s*[/|]\s*", run) if re.search(r"\s{2,}|\s[/|]\s", run) else [run]
        return " ".join(re.sub(r"[\W_]", "", w) for w in words if w)

    joined = _SPACED.sub(join, text)
    return joined if joined != text else None


def _decoded_views(text: str, vocabulary: frozenset[str]) -> list[View]:
    """One level of decoding: each encoded token replaced by its decoding, or the whole text unshifted/reversed."""
    out: list[View] = []
    for pattern, kind, decode in ((_B64, "base64", _decode_base64), (_HEX, "hex", _decode_hex),
                                  (_B32, "base32", _decode_base32)):
        for match in itertools.islice(pattern.finditer(text), MAX_TOKENS_DECODED):
            decoded = decode(match.group(0).strip())
            if decoded:
                out.append(View(kind, text.replace(match.group(0), f" {decoded} ")))
    if _URL.search(text):
        unquoted = urllib.parse.unquote(text)
        if unquoted != text:
            out.append(View("url", unquoted))
    if _ESCAPES.search(text):
        out.append(View("escapes", _escapes(text)))
    if _BINARY.search(text):
        out.append(View("codes", _BINARY.sub(lambda m: _codes(m, 2), text)))
    if _DECIMAL.search(text):
        out.append(View("codes", _DECIMAL.sub(lambda m: _codes(m, 10), text)))
    if _NATO_RUN.search(text):
        out.append(View("nato", _NATO_RUN.sub(lambda m: " " + "".join(
            _NATO[w.lower()] for w in re.findall(r"[A-Za-z-]+", m.group(0)) if w.lower() in _NATO) + " ", text)))
    if len(text) >= 8 and _MORSE.match(text):
        decoded = _morse(text)
        if decoded:
            out.append(View("morse", decoded))
    flipped = _unflipped(text)
    if flipped:
        out.append(View("flipped", flipped))
    base = word_ratio(text, vocabulary)
    if len(_LATIN_WORD.findall(text)) >= 3 and base < 0.6:
        best_k, best = 0, base
        for k in range(1, 26):
            ratio = word_ratio(_shift(text, k), vocabulary)
            if ratio > best:
                best_k, best = k, ratio
        if best_k and best >= 0.4 and best - base >= 0.2:
            out.append(View("shift", _shift(text, best_k)))
        undone = atbash(text)
        if word_ratio(undone, vocabulary) - base >= 0.2:
            out.append(View("atbash", undone))
        backwards = text[::-1]
        if word_ratio(backwards, vocabulary) - base >= 0.2:
            out.append(View("reversed", backwards))
    symbols = sum(1 for ch in text if ch.isascii() and not ch.isalnum() and not ch.isspace() and ch not in ".,?!'")
    if len(text) >= 8 and symbols / len(text) >= 0.12:  # ROT47 turns letters into symbols
        rot47 = _rot47(text)
        if word_ratio(rot47, vocabulary) >= 0.4 and word_ratio(rot47, vocabulary) - base >= 0.2:
            out.append(View("rot47", rot47))
    return out


def _stripped(text: str) -> str | None:
    """The text without wrapper sentences and code/JSON punctuation: what is actually asked."""
    quoted = [m.group(1) for m in _QUOTED.finditer(text)]
    flat = re.sub(r"[{}\[\]<>`#*=:;\"“”]+", " ", text)
    kept = [s.strip() for s in _SENTENCE.findall(flat) if s.strip() and not _WRAPPER.match(s)]
    candidate = normalize_for_classifier(" ".join([*kept, *quoted]))
    return candidate if candidate and candidate != normalize_for_classifier(text) else None


def sentences(text: str) -> list[str]:
    """Sentences and lines of ``text`` (at most :data:`MAX_SENTENCES`), questions and requests first."""
    found = [s.strip() for s in _SENTENCE.findall(text) if len(s.strip()) >= 3][:MAX_SENTENCES]
    if len(found) < 2:
        return []

    def priority(item: tuple[int, str]) -> tuple[int, int]:
        i, s = item
        asks = s.endswith(("?", "？", "؟")) or bool(re.match(r"(?i)\s*(who|what|which|where|when|why|how|tell|explain|describe|name|list|give)\b", s))
        edge = 0 if i < 2 or i >= len(found) - 2 else 1  # the start and the end of a long text next
        return (0 if asks else 1 + edge, i)

    return [s for _, s in sorted(enumerate(found), key=priority)]


def build_views(text: str, vocabulary: frozenset[str], *, depth: int = MAX_DEPTH) -> list[View]:
    """All views of an already validated prompt, the normalised text first, without duplicates.

    Cheap to compute (string operations only); the caller decides how many reach the encoder.
    """
    base = normalize_for_classifier(text)[:200_000]
    views: list[View] = [View("text", base)]
    raw_spacing = unicodedata.normalize("NFKC", text)[:MAX_VIEW_CHARS]  # "H a r r y   P o t t e r": gaps mark words
    frontier = [base]
    seen = {base}

    def add(view: View, expand: bool = False) -> None:
        clipped = normalize_for_classifier(view.text)[:MAX_VIEW_CHARS]
        if clipped and clipped not in seen:
            seen.add(clipped)
            views.append(View(view.kind, clipped))
            if expand:
                frontier.append(clipped)

    for level in range(depth):
        next_frontier, frontier = frontier, []
        for current in next_frontier:
            for view in _decoded_views(current, vocabulary):
                add(view, expand=level + 1 < depth)
    for current in [v.text for v in views]:
        folded = fold_lookalikes(current)
        if folded != current:
            add(View("folded", folded))
    for current in [raw_spacing] + [v.text for v in views]:
        joined = _joined(current)
        if joined:
            add(View("joined", joined))
    for current in [v.text for v in views]:
        if _LEETISH.search(current):
            unleet = _LEETISH.sub(lambda m: m.group(0).translate(_LEET), current)
            if word_ratio(unleet, vocabulary) > word_ratio(current, vocabulary):
                add(View("leet", unleet))
    for current in [v.text for v in views]:
        stripped = _stripped(current)
        if stripped:
            add(View("stripped", stripped))
    for current in [v.text for v in views]:
        for sentence in sentences(current):
            add(View("sentence", sentence))
    return views


def distinct_texts(views: Iterable[View]) -> list[str]:
    return list(dict.fromkeys(v.text for v in views))
