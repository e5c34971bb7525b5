"""Learning the corruption strength on the real SmolLM2, and the evaluation harness (eco-rails eval).

(Reading evaluation data, which needs no model: tests/unit/test_forgetting.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eco_rails.errors import ConfigError
from eco_rails.evaluation.evaluate import evaluate, markdown_summary, write_chart
from tests.conftest import REPO

# A 12-row TOFU sample shipped with the tests, so a clone anywhere runs them (tests/data/README.md).
TOFU_WORLD_FACTS = REPO / "tests" / "data" / "tofu_world_facts_sample.jsonl"


@pytest.fixture(scope="module")
def optimized(fitted, engine):
    from eco_rails.strength.optimize import optimize_strength

    root, _ = fitted
    return root, optimize_strength(root, engine=engine)


def test_optimization_matches_questions_about_invented_names_with_forward_passes_only(optimized):
    root, report = optimized
    assert report["objective"] == "surrogate"
    assert report["plain_answer_probability"] > report["reference_answer_probability"], "precondition: the plain model knows these"
    assert report["reached_target"] and report["answer_probability"] <= report["reference_answer_probability"]
    assert report["answer_probability"] < report["plain_answer_probability"]
    n, k = report["questions"], report["searched_questions"]
    assert 0 < k <= n and report["forward_passes"] == k * (1 + len(report["seed_strengths"]) + report["evaluations"])
    assert report["strength"] in report["seed_strengths"], "the median over the name draws"
    manifest = json.loads((root / "onnx" / "wizard_school" / "manifest.json").read_text())
    assert manifest["learned_strength"] == {"wizard-school": report["strength"]}
    assert manifest["optimization"]["history"][0]["phase"] == "start"
    record = json.loads((root / "policy.learned.json").read_text())
    entry = record["models"]["smollm2-135m"]
    assert entry["strengths"] == {"wizard-school": report["strength"]} and entry["objective"] == "surrogate"
    assert report["fluency"]["ratio"] > 0 and report["fluency"]["empty_rate"] == 0


def test_a_fresh_clone_uses_the_strength_recorded_beside_the_policy_and_a_stale_one_falls_back(optimized, fresh_caches, tmp_path, caplog):
    import shutil

    from nemoguardrails import RailsConfig

    from eco_rails.engine.corruption.spec import DEFAULT_NOISE_STRENGTH
    from eco_rails.rails.runtime import runtime_for

    root, report = optimized
    clone = tmp_path / "clone"
    shutil.copytree(root, clone)
    manifest_path = clone / "onnx" / "wizard_school" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["learned_strength"], manifest["optimization"] = {}, None  # as after a fresh fit: only the record knows
    manifest_path.write_text(json.dumps(manifest))
    runtime = runtime_for(RailsConfig.from_path(str(clone)))
    runtime.classifier()
    assert runtime.learned.status == "learned"
    assert runtime.corruption("wizard-school").spec.strength == pytest.approx(report["strength"])
    data = clone / "optimize.jsonl"
    data.write_text(data.read_text().splitlines()[0] + "\n")  # the questions it was learned on changed
    with caplog.at_level("WARNING", logger="eco_rails.rails.runtime"):
        runtime.classifier()  # notices the edit without a restart
    assert runtime.learned.status == "stale"
    assert runtime.corruption("wizard-school").spec.strength == DEFAULT_NOISE_STRENGTH
    assert "eco-rails optimize" in caplog.text


def test_retain_accuracy_is_unchanged_and_forget_accuracy_drops(optimized, engine, tmp_path):
    root, report = optimized
    forget = tmp_path / "forget.jsonl"
    forget.write_text((REPO / "rails_configs/harry_potter/data/eval_harry_potter.jsonl").read_text().splitlines()[0] + "\n"
                      + "\n".join((REPO / "rails_configs/harry_potter/data/optimize_mcq.jsonl").read_text().splitlines()[:4]) + "\n")
    retain = tmp_path / "world_facts.jsonl"
    retain.write_text("\n".join(TOFU_WORLD_FACTS.read_text().splitlines()[:12]) + "\n")
    result = evaluate(root, [(forget, None), (retain, "retain")], generate=True, baselines=["refuse", "system-prompt"],
                      engine=engine, max_new_tokens=16)
    hp = result.groups["harry_potter"] if "harry_potter" in result.groups else None
    opt = result.groups["harry_potter_optimize"]
    assert opt.flag_rate >= 0.5 and opt.mcq_acc_rails < opt.mcq_acc_plain
    world = result.groups["world_facts"]
    assert world.kind == "retain" and world.n == 12
    if world.flag_rate == 0:
        assert world.mcq_acc_rails == world.mcq_acc_plain and world.answer_prob_rails == world.answer_prob_plain
    assert opt.leak_plain is not None and opt.leak_rails is not None
    assert opt.perplexity_rails is not None and set(opt.baselines) == {"refuse", "system-prompt"}
    assert opt.empty_rails == 0.0 and opt.loop_rails is not None, "corrupted answers are measured, and never empty"
    assert hp is None or hp.n == 1
    summary = markdown_summary(result)
    assert "| world_facts | retain | 12 |" in summary
    write_chart(result, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_strict_mode_fails_on_malformed_rows(optimized, tmp_path):
    root, _ = optimized
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Q?", "kind": "forget", "choices": ["a"], "answer": 0}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1"):
        evaluate(root, [(bad, None)], strict=True)


def test_cli_eval_writes_json_markdown_and_png(optimized, tmp_path):
    root, _ = optimized
    data = tmp_path / "hp.jsonl"
    data.write_text("\n".join((REPO / "rails_configs/harry_potter/data/eval_harry_potter.jsonl").read_text().splitlines()[:3]) + "\n{broken\n")
    retain = tmp_path / "world_facts_perturbed.jsonl"  # the TOFU sample, under the TOFU file's name
    retain.write_text(TOFU_WORLD_FACTS.read_text())
    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "eco_rails.cli", "eval", "--config", str(root), "--data", str(data),
                          "--data", f"{retain}:retain", "--out", str(out)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["groups"]) == {"harry_potter", "world_facts_perturbed"}
    assert report["groups"]["world_facts_perturbed"]["n"] == 12 and report["groups"]["harry_potter"]["leak_rails"] is None
    assert report["skipped_rows"][0]["line"] == 4
    assert out.with_suffix(".md").read_text().startswith("# eco-rails evaluation")
    assert out.with_suffix(".png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "eco_rails.cli", "eval", "--config", str(root), "--data", str(data),
                          "--out", str(out), "--baseline", "pray"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1 and "Unknown baseline" in bad.stderr
