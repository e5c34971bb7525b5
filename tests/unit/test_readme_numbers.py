"""README's numbers cannot drift from what produced them.

A block of README that quotes measurements sits between ``<!-- numbers from: PATH [PATH ...] -->`` and
``<!-- /numbers -->``, naming the committed files that hold them (a report, a benchmark result, a source file
for defaults). Every number in the block must be in one of those files, at the precision README shows it
(``88%`` matches 87.5 or 0.875; ``1,316 s`` matches 1316.4; ``0.59 s`` matches 591.6 ms; ``3.1e-11`` matches
3.06e-11). Every README table
with numbers in it must be inside such a block (or say ``<!-- no measured numbers -->`` right above it, for
digits that are names or formulas), so a new table cannot skip the check. When a report is
regenerated and its numbers move, this test names the README numbers that no longer match.

Numbers in ``(was ...)`` asides (history) and after ``target <=`` / ``target >=`` (goals set by issues) are
kept out of the check on purpose.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPEN = re.compile(r"^<!-- numbers from: (?P<paths>[^>]+?) -->$", re.M)
CLOSE = "\n<!-- /numbers -->"
EXEMPT = "<!-- no measured numbers -->"  # a table whose digits are names or formulas (Colang 2, N(0, s^2))
# A README number: not part of a word, a version or a path; thousands separators allowed; % optional.
README_NUMBER = re.compile(r"(?<![\w.\-/+])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(e-?\d+)?(%?)(?![\w/])")
SOURCE_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
ASIDE = re.compile(r"\(was [^)]*\)|target [<>]=[^:;,)]*|`[^`]*`|\]\([^)]*\)")  # history, goals, code, link targets


def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def blocks(text: str) -> list[tuple[int, list[str], str]]:
    """(line, source paths, text) of each numbers block."""
    found = []
    for match in OPEN.finditer(text):
        end = text.find(CLOSE, match.end())
        assert end > 0, f"README line {text[:match.start()].count(chr(10)) + 1}: `{match.group(0)}` has no {CLOSE}"
        found.append((text[:match.start()].count("\n") + 1, match.group("paths").split(), text[match.end():end]))
    return found


def source_values(paths: list[str]) -> list[float]:
    values = []
    for path in paths:
        file = REPO / path
        assert file.is_file(), f"README cites {path}, which is not in the repository"
        values += [float(v) for v in SOURCE_NUMBER.findall(file.read_text(encoding="utf-8"))]
    return [v for v in values if math.isfinite(v)]


def matches(token: re.Match[str], values: list[float]) -> bool:
    whole, fraction, exponent, percent = token.groups()
    shown = float(whole.replace(",", "") + (fraction or "") + (exponent or ""))
    if exponent:  # scientific: the shown significant digits
        return any(v and math.isclose(abs(v), shown, rel_tol=0.05) for v in values)
    digits = len(fraction) - 1 if fraction else 0
    # as written; a fraction shown in percent; milliseconds shown in seconds
    candidates = [abs(v) for v in values] + [abs(v) / 1000 for v in values] + ([abs(v) * 100 for v in values] if percent else [])
    scale = 10 ** digits
    return any(math.isclose(r, shown, abs_tol=0.1 / scale)
               for v in candidates for r in (round(v, digits), math.floor(v * scale + 0.5) / scale))


def unmatched(block: str, values: list[float]) -> list[str]:
    text = ASIDE.sub(" ", block)
    return [t.group(0) for t in README_NUMBER.finditer(text) if not matches(t, values)]


def tables_outside_blocks(text: str) -> list[int]:
    """README lines that start a table with a digit in its body and are in no numbers block."""
    covered = [(m.start(), text.find(CLOSE, m.end())) for m in OPEN.finditer(text)]
    lines, offset, starts = text.split("\n"), 0, []
    row_starts = []
    for line in lines:
        row_starts.append(offset)
        offset += len(line) + 1
    i = 0
    while i < len(lines):
        if lines[i].startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            body = " ".join(lines[i + 2:j])
            exempt = i > 0 and lines[i - 1].strip() == EXEMPT
            if re.search(r"\d", ASIDE.sub(" ", body)) and not exempt and not any(a <= row_starts[i] < b for a, b in covered):
                starts.append(i + 1)
            i = j
        else:
            i += 1
    return starts


def test_the_number_matcher_reads_precision_percent_and_separators():
    values = [87.5, 0.5431, 1316.4, 3.06e-11, 0.1589]
    def ok(s: str) -> bool:
        token = README_NUMBER.search(s)
        assert token is not None, s
        return matches(token, values)
    assert ok("88%") and ok("54.3%") and ok("1,316 s") and ok("3.1e-11") and ok("0.159") and ok("0.16")
    assert not ok("0.158") and not ok("87%") and not ok("1,317") and not ok("4.1e-11")
    assert README_NUMBER.search("SmolLM2-135M v3 int8 L6-v2 x86_64") is None


def test_readme_has_numbers_blocks():
    assert len(blocks(readme())) >= 8


@pytest.mark.parametrize("line, paths, block", blocks(readme()), ids=lambda x: str(x) if isinstance(x, int) else None)
def test_every_number_in_a_block_is_in_the_files_it_cites(line, paths, block):
    missing = unmatched(block, source_values(paths))
    assert not missing, f"README block at line {line} ({' '.join(paths)}): not found in its sources: {missing}"


def test_every_readme_table_with_numbers_is_checked():
    outside = tables_outside_blocks(readme())
    assert not outside, f"README tables with numbers but no `<!-- numbers from: ... -->` block, at lines {outside}"
