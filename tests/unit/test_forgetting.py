"""Reading evaluation data for `eco-rails eval` (no model needed)."""

from __future__ import annotations

import json

from eco_rails.evaluation.mcq_data import load_rows


def test_both_input_formats_and_malformed_rows(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps({"prompt": "Q1?", "kind": "forget", "choices": ["a", "b"], "answer": 1}),
        json.dumps({"question": "Q2?", "answer": "right", "perturbed_answer": ["w1", "w2", "w3"]}),
        json.dumps({"prompt": "Q3?", "kind": "forget", "choices": ["a", "b"], "answer": 5}),
        json.dumps({"prompt": "Q4?", "kind": "forget", "choices": [], "answer": 0}),
        json.dumps({"kind": "retain", "choices": ["a", "b"], "answer": 0}),
        "{not json",
        json.dumps({"prompt": "Q7?", "kind": "forget", "choices": ["a", ""], "answer": 0}),
        json.dumps(["a list"]),
    ]) + "\n")
    rows, problems = load_rows(path, kind="retain")
    assert [r.prompt for r in rows] == ["Q1?", "Q2?"]
    assert rows[0].group == "mixed" and rows[1].choices == ("right", "w1", "w2", "w3") and rows[1].answer == 0 and rows[1].kind == "retain"
    lines = {p.line: p.error for p in problems}
    assert set(lines) == {3, 4, 5, 6, 7, 8}
    assert "out of range" in lines[3] and "choices" in lines[4] and "prompt" in lines[5] and "invalid JSON" in lines[6]
    rows, problems = load_rows(path)  # no --kind: TOFU rows are reported, not guessed
    assert any(p.line == 2 and "--kind" in p.error for p in problems)
