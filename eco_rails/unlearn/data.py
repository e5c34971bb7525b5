"""Forget and retention rows for ``eco-rails unlearn``: JSON Lines (or a JSON array) of question-answer
pairs, as TOFU writes them (``question``/``answer``) or as KnowUnDo does (``text``/``labels``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eco_rails.engine.sequences import Example
from eco_rails.errors import EcoRailsError

__all__ = ["UnlearnData", "UnlearnDataError", "load_pairs"]

_KEYS = (("question", "answer"), ("text", "labels"))


class UnlearnDataError(EcoRailsError, ValueError):
    """A forget or retention file cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class UnlearnData:
    forget: list[Example]
    retain: list[Example]

    def check(self, method: str, needs_retain: bool, forget_source: str = "the forget set",
              retain_source: str = "the retention set") -> None:
        """Refuse what cannot be unlearned sensibly, naming the input."""
        if not self.forget:
            raise UnlearnDataError(f"{forget_source} is empty: there is nothing to forget. Give at least one question-answer row.")
        if needs_retain and not self.retain:
            raise UnlearnDataError(
                f"{method} needs retention rows (what the model must keep) and {retain_source} has none; "
                "pass --retain FILE with question-answer rows, or use --method ga (gradient ascent needs none).")


def _row(obj: object, where: str) -> Example:
    if not isinstance(obj, dict):
        raise UnlearnDataError(f"{where}: expected a JSON object with question/answer (or text/labels), got {type(obj).__name__}.")
    for q_key, a_key in _KEYS:
        if q_key in obj or a_key in obj:
            q, a = obj.get(q_key), obj.get(a_key)
            if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
                raise UnlearnDataError(f"{where}: {q_key!r} and {a_key!r} must both be non-empty strings.")
            return Example(question=q, answer=a)
    raise UnlearnDataError(f"{where}: no question/answer (or text/labels) fields; found {', '.join(map(str, obj)) or 'none'}.")


def load_pairs(path: Path) -> list[Example]:
    """Read question-answer rows from ``path`` (``.jsonl`` one object per line, or ``.json`` an array)."""
    path = Path(path)
    if not path.is_file():
        raise UnlearnDataError(f"{path} does not exist (or is not a file); give a .jsonl file of question-answer rows.")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnlearnDataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).") from exc
        if not isinstance(items, list):
            raise UnlearnDataError(f"{path}: expected a JSON array of rows.")
        return [_row(item, f"{path}[{i}]") for i, item in enumerate(items)]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnlearnDataError(f"{path}:{number}: not valid JSON ({exc.msg}); write one JSON object per line.") from exc
        rows.append(_row(obj, f"{path}:{number}"))
    return rows
