"""Forget and retention files for `eco-rails unlearn`: both benchmark row shapes, and errors that name the
file, the line and the fix, raised before any model loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eco_rails.unlearn import UnlearnData, UnlearnDataError, load_pairs
from tests.conftest import REPO


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_tofu_and_knowundo_rows_both_load(tmp_path):
    rows = load_pairs(write(tmp_path / "f.jsonl", [{"question": "Q1?", "answer": "A1"}, "", {"text": "Q2?", "labels": "A2"}]))
    assert [(r.question, r.answer) for r in rows] == [("Q1?", "A1"), ("Q2?", "A2")]
    (tmp_path / "a.json").write_text(json.dumps([{"text": "Q?", "labels": "A"}]), encoding="utf-8")
    assert load_pairs(tmp_path / "a.json")[0].answer == "A"


@pytest.mark.parametrize("line, message", [
    ("{not json", "f.jsonl:2: not valid JSON"),
    (json.dumps({"question": "Q?"}), "f.jsonl:2: 'question' and 'answer' must both be non-empty"),
    (json.dumps({"prompt": "Q?", "completion": "A"}), "f.jsonl:2: no question/answer (or text/labels) fields; found prompt, completion"),
    (json.dumps(["Q?", "A"]), "f.jsonl:2: expected a JSON object"),
])
def test_a_bad_row_names_its_file_and_line(tmp_path, line, message):
    with pytest.raises(UnlearnDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pairs(write(tmp_path / "f.jsonl", [{"question": "ok?", "answer": "ok"}, line]))


def test_empty_forget_set_and_missing_retention_rows_are_refused_naming_the_input(tmp_path):
    with pytest.raises(UnlearnDataError, match="forget.jsonl is empty"):
        UnlearnData([], []).check("ga", False, forget_source="forget.jsonl")
    one = load_pairs(write(tmp_path / "f.jsonl", [{"question": "Q?", "answer": "A"}]))
    with pytest.raises(UnlearnDataError, match="memflex needs retention rows .* --retain FILE"):
        UnlearnData(one, []).check("memflex", True)
    UnlearnData(one, []).check("ga", False)  # gradient ascent needs none


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eco_rails.cli", "unlearn", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ})


def test_unlearn_command_refuses_bad_input_before_loading_a_model(tmp_path):
    forget = write(tmp_path / "forget.jsonl", [{"question": "Q?", "answer": "A"}])
    out = run_cli("--method", "rmu", "--forget", str(forget), "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "is not one of memflex, ga, gd, npo" in out.stderr
    out = run_cli("--forget", str(forget), "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "memflex needs retention rows" in out.stderr and "--retain (not given)" in out.stderr
    out = run_cli("--method", "ga", "--forget", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "nope.jsonl does not exist" in out.stderr
    (tmp_path / "o").mkdir()
    out = run_cli("--method", "ga", "--forget", str(forget), "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "already exists; pass --overwrite" in out.stderr
    out = run_cli("--method", "ga", "--forget", str(forget), "--out", str(tmp_path / "p"), "--epochs", "0")
    assert out.returncode == 1 and "epochs" in out.stderr and not (tmp_path / "p").exists()
