"""Multiple-choice rows for optimisation and evaluation, read from JSON Lines.

Two formats per line:

* ours: ``{"prompt", "kind": "forget"|"retain", "group"?, "choices": [...], "answer": <index>, "keywords"?: [...]}``
* TOFU's: ``{"question", "answer": <text>, "perturbed_answer": [...]}``; the right answer becomes choice 0,
  the kind comes from the caller (``--kind``) and the group is the file stem.

Malformed rows (bad JSON, missing fields, empty choices, answer index out of range, ...) are collected
with their line numbers; the caller either skips them (and reports them) or fails the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eco_rails.errors import ConfigError
from eco_rails.validation import error_lines

Kind = Literal["forget", "retain"]


class MCQRow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt: str = Field(min_length=1)
    kind: Kind
    group: str
    choices: tuple[str, ...] = Field(min_length=2)
    answer: int = Field(ge=0)
    keywords: tuple[str, ...] = ()
    line: int = 0
    source: str = ""

    @model_validator(mode="after")
    def _answer_in_range(self) -> MCQRow:
        if self.answer >= len(self.choices):
            raise ValueError(f"answer index {self.answer} is out of range for {len(self.choices)} choices")
        if any(not c.strip() for c in self.choices):
            raise ValueError("choices must not be empty strings")
        return self


class RowProblem(BaseModel):
    file: str
    line: int
    error: str


def _parse(obj: dict, path: Path, line: int, kind: Kind | None) -> MCQRow:
    if "question" in obj and "perturbed_answer" in obj:  # TOFU
        if kind is None:
            raise ValueError("TOFU-format row: give the kind with --kind forget|retain")
        wrong = obj.get("perturbed_answer")
        if not isinstance(wrong, list):
            raise ValueError("perturbed_answer must be a list of wrong answers")
        return MCQRow(prompt=obj.get("question", ""), kind=kind, group=obj.get("group") or path.stem,
                      choices=(obj.get("answer"), *wrong), answer=0, keywords=tuple(obj.get("keywords") or ()),
                      line=line, source=str(path))
    data = {**obj, "line": line, "source": str(path)}
    data.setdefault("group", path.stem)
    if data.get("group") is None:
        data["group"] = path.stem
    if kind is not None and "kind" not in data:
        data["kind"] = kind
    return MCQRow.model_validate(data)


def load_rows(path: str | Path, kind: Kind | None = None) -> tuple[list[MCQRow], list[RowProblem]]:
    """All valid rows of a JSONL file, and the problems found in the others (with line numbers)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Data file {path} does not exist.")
    rows: list[MCQRow] = []
    problems: list[RowProblem] = []
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
                if not isinstance(obj, dict):
                    raise ValueError("each line must be a JSON object")
                rows.append(_parse(obj, path, line_no, kind))
            except UnicodeDecodeError:
                problems.append(RowProblem(file=str(path), line=line_no, error="not UTF-8"))
            except json.JSONDecodeError as exc:
                problems.append(RowProblem(file=str(path), line=line_no, error=f"invalid JSON: {exc.msg}"))
            except ValidationError as exc:
                problems.append(RowProblem(file=str(path), line=line_no, error="; ".join(error_lines(exc))))
            except ValueError as exc:
                problems.append(RowProblem(file=str(path), line=line_no, error=str(exc)))
    return rows, problems
