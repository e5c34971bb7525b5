"""Benchmark data: shipped files load, malformed rows are reported with file and line (or stop --strict)."""

import json

import pytest

from eco_rails.benchmarks.data import KnowUnDoRow, TofuQA, load_json_array, load_jsonl, load_knowundo, load_tofu, raise_if_strict
from eco_rails.benchmarks.tofu import PRESETS, build_items, split_questions
from eco_rails.errors import ConfigError


def test_shipped_tofu_has_200_authors_named_from_their_questions():
    data = load_tofu()
    assert len(data.authors) == 200 and not data.problems
    assert data.authors[0].name == "Jaime Vasquez"
    assert data.authors[198].name == "Basil Mahfouz Al-Kuwaiti"
    assert data.authors[199].name == "Nikolai Abilov"
    assert len(data.forget_perturbed) == 400 and len(data.real_authors) == 100 and len(data.world_facts) == 117


def test_shipped_knowundo_privacy_splits():
    data = load_knowundo()
    assert (len(data.full), len(data.unlearn_val), len(data.retention_val)) == (1059, 110, 108)


def test_malformed_jsonl_rows_are_skipped_and_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"question": "Q1?", "answer": "A1"}) + "\n{not json\n"
                    + json.dumps({"question": "Q3?"}) + "\n" + json.dumps([1, 2]) + "\n")
    rows, problems = load_jsonl(path, TofuQA)
    assert [line for line, _ in rows] == [1]
    assert [p.line for p in problems] == [2, 3, 4]
    assert "answer" in problems[1].error
    with pytest.raises(ConfigError, match=r"rows\.jsonl:2"):
        raise_if_strict(problems, strict=True)
    raise_if_strict(problems, strict=False)  # skipping is the default


def test_malformed_json_array_items_name_their_line(tmp_path):
    path = tmp_path / "split.json"
    path.write_text('[\n  {"text": "Q?", "labels": "A"},\n  {"text": "no label"}\n]\n')
    rows, problems = load_json_array(path, KnowUnDoRow)
    assert len(rows) == 1 and problems[0].line == 3
    path.write_text("[{broken")
    with pytest.raises(ConfigError, match="split.json:1"):
        load_json_array(path, KnowUnDoRow)


def test_missing_data_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="--data-dir"):
        load_tofu(tmp_path)


def test_forget_questions_split_in_halves_the_classifier_never_sees_the_held_out_half():
    questions = [f"q{i}" for i in range(20)]
    train, held = split_questions(questions, seed=3)
    assert len(train) == len(held) == 10 and not set(train) & set(held)
    assert split_questions(list(reversed(questions)), seed=3) == (train, held)  # order of the input does not matter
    items, training = build_items(load_tofu(), PRESETS["quick"])
    forget = [i for i in items if i.set == "forget"]
    assert len(forget) == 20
    assert {i.question for i in forget if not i.held_out} == set(training["examples"])
    assert not {i.question for i in forget if i.held_out} & set(training["examples"])
