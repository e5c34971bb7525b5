"""Run-time text normalisation shared by the classifier, its key-term matcher and its training data.

Undoes cheap evasions before a prompt is scored: Unicode compatibility forms (full-width letters),
Cyrillic/Greek look-alike letters, zero-width characters and runs of whitespace. Pure functions.
"""

from __future__ import annotations

import re
import unicodedata

# Latin letters and their Cyrillic/Greek look-alikes (augmentation uses them; normalisation folds them back).
HOMOGLYPHS = {"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "i": "і", "A": "А", "B": "В",
              "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О", "P": "Р", "T": "Т", "X": "Х"}
_FOLD = {v: k for k, v in HOMOGLYPHS.items()} | {"ο": "o", "α": "a", "ε": "e", "ι": "i", "ν": "v", "Ο": "O", "Α": "A"}
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)


def normalize_for_classifier(text: str) -> str:
    """Undo cheap evasions before classification: Unicode compatibility forms (full-width letters),
    Cyrillic/Greek look-alike letters, zero-width characters and runs of whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH)
    text = "".join(_FOLD.get(ch, ch) for ch in text)
    return re.sub(r"\s+", " ", text).strip()
