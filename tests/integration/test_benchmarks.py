"""`eco-rails benchmark tofu|knowundo --quick` end to end: real LoRA injection, a classifier fitted by the
normal fit, every method scored, the report written; and the benchmark's rails config is a working config
whose rail and provider give the answers the benchmark scored."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow

TOFU_FIELDS = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_rouge", "forget_prob")


@pytest.fixture(scope="module")
def tofu_report(tmp_path_factory):
    from eco_rails.benchmarks.tofu import TofuOptions, run_tofu

    work = tmp_path_factory.mktemp("tofu")
    # The prompt-side methods only: weight unlearning runs (and is checked) in the KnowUnDo test and test_unlearn.py,
    # the system-prompt baseline in the KnowUnDo test and test_forgetting.py (left out to keep CI in its time budget).
    methods = ("target", "retain", "eco", "refuse")
    return run_tofu(TofuOptions(preset="quick", work_dir=work, device="cpu", methods=methods)), work


def test_tofu_quick_reports_every_method_with_tofu_metrics(tofu_report):
    report, _ = tofu_report
    methods = report["methods"]
    assert list(methods) == ["target", "retain", "eco", "refuse"]
    for name, m in methods.items():
        for field in TOFU_FIELDS:
            assert m[field] is not None and not math.isnan(m[field]), (name, field)
        assert 0.0 <= m["model_utility"] <= 1.0 and 0.0 <= m["forget_quality"] <= 1.0
        assert len(m["utility_components"]) == 9
    # The retain model's forget-set truth ratios compared with themselves: KS p-value exactly 1.
    assert methods["retain"]["forget_quality"] == pytest.approx(1.0)
    # Refusing and corrupting both take probability away from the forget answers the target learned.
    assert methods["refuse"]["forget_prob"] < methods["target"]["forget_prob"]
    assert methods["eco"]["forget_prob"] < methods["target"]["forget_prob"]
    # The held-out half (never a policy example) is reported on its own.
    assert methods["eco"]["held_out"]["n"] == 10


def test_tofu_quick_injection_check_and_classifier_rates(tofu_report):
    report, _ = tofu_report
    check = report["injection"]["check"]
    assert check["target"]["forget_prob"] > check["retain"]["forget_prob"]
    assert 0.0 <= check["ks_p_value"] <= 1.0
    clf = report["classifier"]
    assert clf["tpr_forget_held_out"] >= 0.8  # the forget authors' names are key terms
    assert clf["fpr_world_facts"] == 0.0
    assert clf["learned_strength"]


def test_tofu_learns_ecos_strength_against_its_retain_model(tofu_report):
    """TOFU has a retain model, so the strength maximises forget quality against it (ECO's objective): the
    search's best p-value is at least the clean target's, and the record names the retain adapter."""
    report, work = tofu_report
    opt = report["classifier"]["optimization"]
    assert opt["objective"] == "retain" and opt["retain_model"] == report["injection"]["retain"]["adapter"]
    assert opt["forget_quality"] == max(h["value"] for h in opt["history"]) >= opt["clean_forget_quality"]
    assert {h["phase"] for h in opt["history"]} <= {"grid", "golden"} and opt["evaluations"] <= 3  # the quick budget
    assert opt["strength"] == report["classifier"]["learned_strength"]["tofu-forget"]
    record = json.loads((work / "tofu-quick-eco" / "policy.learned.json").read_text())
    assert [e["objective"] for e in record["models"].values()] == ["retain"]


def test_optimize_loads_the_retain_model_the_policy_names_relative_to_the_policy_file(tofu_report, tmp_path):
    """`eco-rails optimize` on a config whose policy names its retain adapter by a relative path: the adapter is
    loaded on the config's main model; a path that does not exist is an error naming the field."""
    import os
    import shutil
    import statistics

    import yaml

    from eco_rails.engine.generation import get_engine
    from eco_rails.errors import ConfigError
    from eco_rails.policy import load_policy
    from eco_rails.strength.optimize import load_optimization_rows, optimize_strength, truth_ratios

    report, work = tofu_report
    config = tmp_path / "cfg"
    shutil.copytree(work / "tofu-quick-eco", config)
    raw = yaml.safe_load((config / "policy.yml").read_text())
    raw["optimization"]["retain_model"] = os.path.relpath(report["injection"]["retain"]["adapter"], config)
    raw["optimization"]["budget"] = 3
    (config / "policy.yml").write_text(yaml.safe_dump(raw))
    rows = (config / "optimize.jsonl").read_text().splitlines()[:5]  # the fewest the objective takes: a cheap search
    (config / "optimize.jsonl").write_text("\n".join(rows) + "\n")
    found = optimize_strength(config)
    assert found["objective"] == "retain" and found["evaluations"] == 3 and found["searched_questions"] == 5
    # the reference is the retain adapter itself: its truth ratios on those questions, computed here directly
    retain = get_engine("smollm2-135m", device="cpu", adapter=report["injection"]["retain"]["adapter"], merge_adapter=True)
    ratios = truth_ratios(retain, load_optimization_rows(load_policy(config / "policy.yml"), config / "policy.yml"), None)
    assert found["reference_truth_ratio"] == pytest.approx(statistics.median(ratios))
    assert found["reference_truth_ratio"] != pytest.approx(found["clean_truth_ratio"])
    raw["optimization"]["retain_model"] = "no-such-adapter"
    (config / "policy.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="optimization.retain_model 'no-such-adapter' does not exist"):
        optimize_strength(config)


def test_tofu_report_files_are_written_as_strict_json_markdown_and_png(tofu_report, tmp_path):
    from eco_rails.benchmarks.report import write_report

    report, _ = tofu_report
    md, png = write_report(report, tmp_path / "tofu.json", "eco-rails benchmark tofu --quick")
    data = json.loads((tmp_path / "tofu.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["command"] == "eco-rails benchmark tofu --quick"
    assert "| eco |" in md.read_text() and png.stat().st_size > 1000


def test_benchmark_rails_config_answers_like_the_benchmark_scored(tofu_report, fresh_caches):
    """The folder the benchmark wrote is a real rails config: through LLMRails, a flagged forget question is
    answered from corrupted embeddings and an unflagged one exactly like the target model."""
    import yaml
    from nemoguardrails import LLMRails, RailsConfig

    from eco_rails.benchmarks.eco_config import prepare_eco
    from eco_rails.engine.generation import GenerationSettings, get_engine

    report, work = tofu_report
    config = work / "tofu-quick-eco"
    # the benchmark serves its adapters merged, and the config it writes says so
    assert yaml.safe_load((config / "config.yml").read_text())["models"][0]["parameters"]["merge_adapter"] is True
    engine = get_engine("smollm2-135m", device="cpu", adapter=report["injection"]["target"]["adapter"], merge_adapter=True)
    decide, _ = prepare_eco(config, engine=engine)
    rails = LLMRails(RailsConfig.from_path(str(config)))
    samples = [s["question"] for s in report["methods"]["eco"]["samples"]]
    forget = next((q for q in samples if decide(q)[0]), None)
    assert forget is not None, f"none of the sampled forget questions was flagged: {samples}"
    keep = "What is the capital of France?"
    for question, should_flag in ((forget, True), (keep, False)):
        flagged, flag, spec = decide(question)
        assert flagged is should_flag
        direct = engine.generate(question, flag=flag if flagged else None, corruption=spec,
                                 settings=GenerationSettings(max_new_tokens=24)).text
        served = rails.generate(messages=[{"role": "user", "content": question}])["content"]
        assert served.strip().strip('"') == direct.strip().strip('"')


def test_knowundo_quick_reports_unlearn_and_retention_success(tmp_path):
    from eco_rails.benchmarks.knowundo import KnowUnDoOptions, run_knowundo

    # ga, gd and npo run the same weight-method path as memflex here (and each is trained in test_unlearn.py): left
    # out to keep CI under its time budget.
    chosen = ("target", "eco", "refuse", "system-prompt", "memflex", "memflex+eco")
    report = run_knowundo(KnowUnDoOptions(preset="quick", work_dir=tmp_path, device="cpu", methods=chosen))
    methods = report["methods"]
    assert "retain" not in methods  # KnowUnDo has no retain model
    assert set(methods) == set(chosen)
    for m in methods.values():
        assert 0.0 <= m["unlearn_success"] <= 100.0 and 0.0 <= m["retention_success"] <= 100.0
    # Weight methods carry their cost against ECO's fit; MemFlex trains a strict subset of the LoRA tensors.
    eco_seconds = methods["eco"]["cost"]["seconds"]
    assert eco_seconds > 0
    for name in ("memflex",):
        cost = methods[name]["cost"]
        assert cost["optimizer_steps"] >= 1 and cost["backward_rows"] >= 40
        assert cost["seconds_vs_eco_fit"] == pytest.approx(cost["seconds"] / eco_seconds)
    assert 0.0 < methods["memflex"]["localisation"]["selected_fraction"] < 1.0
    assert methods["memflex+eco"]["cost"]["seconds"] == pytest.approx(methods["memflex"]["cost"]["seconds"] + eco_seconds)
    # Unlearning moved the weights: the unlearned models answer the unlearn questions differently from the target.
    assert methods["memflex"]["unlearn_perplexity"] != methods["target"]["unlearn_perplexity"]
    target, refuse = methods["target"], methods["refuse"]
    # Refusing flagged questions can only raise unlearn success (their answer tokens are never produced).
    assert refuse["unlearn_success"] >= target["unlearn_success"]
    check = report["injection"]["check"]
    assert check["target_unlearn_val_accuracy"] > check["base_unlearn_val_accuracy"]
