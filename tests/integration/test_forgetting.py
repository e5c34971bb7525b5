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


def test_optimization_lowers_forget_accuracy_with_forward_passes_only(optimized):
    root, report = optimized
    assert report["plain_accuracy"] >= 0.5, "precondition: the plain model knows these"
    assert report["accuracy"] < report["plain_accuracy"]
    assert report["reached_target"] and report["accuracy"] <= report["target_accuracy"]
    assert report["evaluations"] <= 12 and report["forward_passes"] == report["evaluations"] * report["questions"]
    manifest = json.loads((root / "onnx" / "wizard_school" / "manifest.json").read_text())
    assert manifest["learned_strength"] == {"wizard-school": report["strength"]}
    assert manifest["optimization"]["history"][0]["phase"] == "start"
    assert report["fluency"]["ratio"] > 0


def test_auto_strength_is_used_by_the_rail_and_a_number_overrides_it(optimized, fresh_caches):
    from nemoguardrails import RailsConfig

    from eco_rails.rails.runtime import runtime_for

    root, report = optimized
    runtime = runtime_for(RailsConfig.from_path(str(root)))  # the rail's own runtime, fresh (fresh_caches)
    runtime.classifier()
    assert runtime.corruption("wizard-school").spec.strength == pytest.approx(report["strength"])


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
