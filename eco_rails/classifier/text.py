"""Run-time text normalisation shared by the classifier, its key-term matcher and its training data.

Undoes cheap evasions before a prompt is scored: Unicode compatibility forms (full-width letters),
invisible characters (zero-width, bidi controls, private use, tags), and runs of whitespace. Folding
Cyrillic/Greek look-alike letters into Latin is a separate step (:func:`fold_lookalikes`): it is right for
"Hоgwarts" with a Cyrillic о, wrong for real Russian text, so the classifier scores both views. Pure functions.
"""

from __future__ import annotations

import re
import unicodedata

# Latin letters and their Cyrillic/Greek look-alikes (augmentation uses them; normalisation folds them back).
HOMOGLYPHS = {"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "i": "і", "A": "А", "B": "В",
              "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О", "P": "Р", "T": "Т", "X": "Х"}
_FOLD = {v: k for k, v in HOMOGLYPHS.items()} | {
    "ο": "o", "α": "a", "ε": "e", "ι": "i", "ν": "v", "Ο": "O", "Α": "A", "Β": "B", "Ε": "E", "Η": "H", "Ι": "I",
    "Κ": "K", "Μ": "M", "Ν": "N", "Ρ": "P", "Τ": "T", "Χ": "X", "Υ": "Y", "Ζ": "Z", "ѕ": "s", "ј": "j", "һ": "h",
    "ԁ": "d", "ɡ": "g", "ⅼ": "l", "ı": "i",
}
_SMALL_CAPS = dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnoprstuvwyz"))
_REGIONAL = {chr(0x1F1E6 + i): chr(ord("a") + i) for i in range(26)}  # flag letters: 🇭🇦🇷🇷🇾
_FOLD_TABLE = str.maketrans(_FOLD | _SMALL_CAPS | _REGIONAL)
_WS = re.compile(r"\s+")


def _visible(ch: str) -> bool:
    """Drop format (Cf: zero-width, bidi, tags), private-use, surrogate and control characters; keep newlines."""
    if ch in "\n\t":
        return True
    return unicodedata.category(ch) not in ("Cf", "Co", "Cs", "Cc", "Cn") and ch != "\u00ad"


def normalize_for_classifier(text: str) -> str:
    """NFKC (full-width and other compatibility forms), invisible characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(ch for ch in text if _visible(ch))
    return _WS.sub(" ", text).strip()


def fold_lookalikes(text: str) -> str:
    """Map Cyrillic and Greek letters that look like Latin ones to Latin (``Hоgwarts`` -> ``Hogwarts``)."""
    return text.translate(_FOLD_TABLE)
