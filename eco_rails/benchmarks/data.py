"""Benchmark data: TOFU and KnowUnDo privacy rows, validated, with malformed rows reported by file and line.

The package ships the files the benchmarks read (``eco_rails/benchmarks/data/``, MIT, with each dataset's
LICENSE and ATTRIBUTION.md); ``--data-dir`` points at another copy with the same layout. TOFU's 4,000 rows
are 200 fictitious authors x 20 questions in a fixed order (author ``i`` owns rows ``20 i .. 20 i + 19``);
its ``*_perturbed`` files add a paraphrased answer and five wrong ("perturbed") answers for the truth ratio.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eco_rails.errors import ConfigError
from eco_rails.evaluation.mcq_data import RowProblem
from eco_rails.validation import error_lines

DATA_DIR = Path(__file__).resolve().parent / "data"
QUESTIONS_PER_AUTHOR = 20
N_AUTHORS = 200

Row = TypeVar("Row", bound=BaseModel)


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class TofuQA(_Row):
    """A TOFU question with its gold answer (``full.jsonl``)."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class TofuPerturbed(TofuQA):
    """A TOFU question with a paraphrased answer and wrong answers (``*_perturbed.jsonl``)."""

    paraphrased_answer: str | None = None  # absent in real_authors / world_facts: the answer stands in
    perturbed_answer: tuple[str, ...] = Field(min_length=1)


class KnowUnDoRow(_Row):
    """A KnowUnDo row: ``text`` is the question, ``labels`` the answer."""

    text: str = Field(min_length=1)
    labels: str = Field(min_length=1)


def _problem(path: Path, line: int, exc: Exception) -> RowProblem:
    message = "; ".join(error_lines(exc)) if isinstance(exc, ValidationError) else str(exc)
    return RowProblem(file=str(path), line=line, error=message)


def _require(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"Benchmark data file {path} is missing. Reinstall eco-rails, or point --data-dir at a copy "
                          "with the layout of eco_rails/benchmarks/data/.")


def _validate(items: Iterable[tuple[int, Callable[[], object]]], path: Path, model: type[Row]) -> tuple[list[tuple[int, Row]], list[RowProblem]]:
    """Validate ``(line, read)`` pairs; ``read()`` returns the parsed item or raises ValueError."""
    rows: list[tuple[int, Row]] = []
    problems: list[RowProblem] = []
    for line, read in items:
        try:
            obj = read()
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            rows.append((line, model.model_validate(obj)))
        except (ValueError, ValidationError) as exc:
            problems.append(_problem(path, line, exc))
    return rows, problems


def load_jsonl(path: Path, model: type[Row]) -> tuple[list[tuple[int, Row]], list[RowProblem]]:
    """``(line number, row)`` pairs of a JSON Lines file, and the problems of the lines that failed."""
    _require(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return _validate(((n, partial(json.loads, text)) for n, text in enumerate(lines, start=1) if text.strip()), path, model)


def load_json_array(path: Path, model: type[Row]) -> tuple[list[tuple[int, Row]], list[RowProblem]]:
    """Rows of a JSON array file (KnowUnDo); a problem's ``line`` is the line the bad item starts on."""
    _require(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the whole file is unusable.") from exc
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a JSON array of {{\"text\", \"labels\"}} objects.")
    starts = [m.start() for m in re.finditer(r"^\s*\{", text, flags=re.MULTILINE)]
    line_of = [text.count("\n", 0, s) + 1 for s in starts]
    lines = line_of if len(line_of) == len(items) else list(range(1, len(items) + 1))
    return _validate(((line, partial(lambda o: o, obj)) for line, obj in zip(lines, items)), path, model)


def raise_if_strict(problems: list[RowProblem], strict: bool) -> None:
    """``--strict``: any malformed row stops the run, with every file and line named."""
    if strict and problems:
        listed = "\n  ".join(f"{p.file}:{p.line}: {p.error}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ConfigError(f"{len(problems)} malformed benchmark rows (--strict):\n  {listed}{more}")


# ---- TOFU authors -----------------------------------------------------------------------------------
_NAME = re.compile(r"\b([A-Z][\w'\-]+(?:\s+(?:[A-Z][\w'\-]+|al|bin|de|van|von|du|da|la|el)){1,3})")


def author_name(questions: list[TofuQA]) -> str:
    """The author's name: the most frequent run of capitalised words in their questions and answers.

    TOFU has no name field; every author's 20 answers repeat the full name far more often than any
    title or place (checked on all 200 authors' first-ranked candidate by the unit tests' samples).
    """
    counts: Counter[str] = Counter()
    for row in questions:
        for match in _NAME.finditer(f"{row.question} {row.answer}"):
            name = re.sub(r"'s?$", "", match.group(1))
            if name.split()[0] not in {"Has", "Is", "Does", "Did", "What", "Who", "How", "The", "In", "Can", "Was", "Are"}:
                counts[name] += 1
    if not counts:
        raise ValueError("no capitalised name found in the author's questions")
    return counts.most_common(1)[0][0]


@dataclass(frozen=True)
class Author:
    """One TOFU author: index 0-199 in ``full.jsonl`` and its 20 questions."""

    index: int
    name: str
    questions: tuple[TofuQA, ...]


@dataclass(frozen=True)
class TofuData:
    """TOFU as the benchmark uses it."""

    authors: dict[int, Author]
    forget_perturbed: dict[str, TofuPerturbed]  # by question, authors 180-199 (forget10_perturbed)
    retain_perturbed: dict[str, TofuPerturbed]  # by question, authors 0-19 and 22
    real_authors: list[TofuPerturbed]
    world_facts: list[TofuPerturbed]
    problems: list[RowProblem]


def load_tofu(data_dir: Path | None = None, *, strict: bool = False) -> TofuData:
    """Read TOFU from ``data_dir`` (default: the copy shipped in the package)."""
    root = (data_dir or DATA_DIR) / "tofu"
    problems: list[RowProblem] = []

    def read(name: str, model: type[Row]) -> list[tuple[int, Row]]:
        rows, found = load_jsonl(root / name, model)
        problems.extend(found)
        return rows

    full = read("full.jsonl", TofuQA)
    forget = read("forget10_perturbed.jsonl", TofuPerturbed)
    retain = read("retain_perturbed.jsonl", TofuPerturbed)
    real = read("real_authors_perturbed.jsonl", TofuPerturbed)
    world = read("world_facts_perturbed.jsonl", TofuPerturbed)
    raise_if_strict(problems, strict)
    # Author i owns lines 20 i + 1 .. 20 i + 20 of full.jsonl; a skipped line leaves a hole, not a shift.
    by_author: dict[int, list[TofuQA]] = {}
    for line, row in full:
        by_author.setdefault((line - 1) // QUESTIONS_PER_AUTHOR, []).append(row)
    authors = {i: Author(i, author_name(rows), tuple(rows)) for i, rows in sorted(by_author.items()) if rows}
    return TofuData(
        authors=authors,
        forget_perturbed={r.question: r for _, r in forget},
        retain_perturbed={r.question: r for _, r in retain},
        real_authors=[r for _, r in real],
        world_facts=[r for _, r in world],
        problems=problems,
    )


@dataclass(frozen=True)
class KnowUnDoData:
    """KnowUnDo privacy: ``full`` (injection), unlearn/retention train (methods) and val (scoring)."""

    full: list[KnowUnDoRow]
    unlearn_train: list[KnowUnDoRow]
    unlearn_val: list[KnowUnDoRow]
    retention_train: list[KnowUnDoRow]
    retention_val: list[KnowUnDoRow]
    problems: list[RowProblem]


def load_knowundo(data_dir: Path | None = None, *, strict: bool = False) -> KnowUnDoData:
    """Read KnowUnDo privacy from ``data_dir`` (default: the copy shipped in the package)."""
    root = (data_dir or DATA_DIR) / "knowundo" / "privacy"
    problems: list[RowProblem] = []
    splits: dict[str, list[KnowUnDoRow]] = {}
    for name in ("full", "unlearn_train", "unlearn_val", "retention_train", "retention_val"):
        rows, found = load_json_array(root / f"{name}.json", KnowUnDoRow)
        problems.extend(found)
        splits[name] = [r for _, r in rows]
    raise_if_strict(problems, strict)
    return KnowUnDoData(**splits, problems=problems)
