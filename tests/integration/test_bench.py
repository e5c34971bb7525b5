"""`eco-rails bench --quick` on the real components: it runs every section and writes a valid report.

Benchmarks are not timed tests: nothing here asserts a speed, only that the measurements exist and the
report has the documented shape. (Argument errors, which run no benchmark: tests/unit/test_bench.py.)
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import yaml

from eco_rails.bench import BenchReport
from tests.conftest import REPO

RATIO_KEYS = {"classifier_int8_speedup_vs_torch", "rail_overhead", "corrupted_vs_clean_tokens_per_s",
              "provider_vs_hf_generate_tokens_per_s", "vllm_corrupted_vs_clean_tokens_per_s",
              "classifier_batch_vs_one_by_one"}


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eco_rails.cli", "bench", *args], capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def rail_config(fitted, tmp_path_factory):
    """A Colang 1 rails config with the eco rail over the session's small fitted policy (fitted with --keep-fp32)."""
    root, _ = fitted
    cfg = tmp_path_factory.mktemp("bench_cfg")
    (cfg / "policy.yml").write_text((root / "policy.yml").read_text())
    (cfg / "config.yml").write_text(yaml.safe_dump({
        "models": [{"type": "main", "engine": "eco", "model": "smollm2-135m", "parameters": {"max_new_tokens": 24}}],
        "import_paths": ["eco_rails/rails"],
        "rails": {"input": {"flows": ["eco check input"]}},
        "custom_data": {"eco": {"policy": "policy.yml", "artifact": str(root / "onnx" / "wizard_school")}},
    }))
    return cfg


def test_quick_bench_writes_a_valid_report(rail_config, tmp_path):
    out = tmp_path / "bench.json"
    run = bench("--quick", "--config", str(rail_config), "--json", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    raw = json.loads(out.read_text())
    report = BenchReport.model_validate(raw)
    assert set(raw["ratios"]) == RATIO_KEYS
    for key, value in raw["ratios"].items():
        if key == "vllm_corrupted_vs_clean_tokens_per_s":
            assert value is None  # no --vllm-url: the vllm section is not run (tests/integration/test_vllm.py runs it)
            continue
        assert isinstance(value, (int, float)) and math.isfinite(value), key
    assert report.quick and report.sections == ["classifier", "rail", "provider", "cold-start"]
    for name in ("classifier.torch.batch1_ms", "classifier.fp32_onnx.batch1_ms", "classifier.int8_onnx.batch1_ms",
                 "classifier.int8_onnx.batch32_prompts_per_s", "classifier.int8_onnx.end_to_end_ms",
                 "classifier.int8_onnx.one_by_one_prompts_per_s", "classifier.int8_onnx.classify_batch32_prompts_per_s",
                 "classifier.int8_onnx.concurrent32_prompts_per_s",
                 "rail.with_rail.request_ms", "rail.without_rail.request_ms", "provider.clean.tokens_per_s",
                 "provider.corrupted.tokens_per_s", "provider.hf_generate.tokens_per_s", "provider.cold_start.process_s"):
        s = report.measurements[name]
        assert 0 < s.median <= s.p95, name
    assert report.ratios.rail_overhead > -1 and report.settings["rail_prompts_flagged"] == 1  # one in scope, one kept
    assert {"torch", "transformers", "onnxruntime", "nemoguardrails"} <= set(report.versions)
    assert report.machine["cpu_count"] >= 1 and report.command.startswith("eco-rails bench --quick")
    assert {t.name for t in report.targets} >= {"ratios.rail_overhead", "fit.wall_s", "ratios.classifier_batch_vs_one_by_one"}
    assert "32 of 32 prompts scored bit for bit the same" in " ".join(report.notes)  # batching changed no score
    table = out.with_suffix(".md").read_text()
    assert "| ratio / target | value | target | met |" in table and "provider.clean.tokens_per_s" in table


def test_gpu_path_on_a_random_model_runs_on_cpu(tmp_path):
    """The GPU recipe (--random-model, provider only, no policy) exercised with the tiny preset on the CPU."""
    out = tmp_path / "random.json"
    run = bench("--quick", "--only", "provider,cold-start", "--random-model", "tiny", "--device", "cpu", "--json", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    report = BenchReport.model_validate_json(out.read_text())
    assert report.settings["random_model_parameters"] < 10_000_000
    assert report.ratios.corrupted_vs_clean_tokens_per_s > 0 and report.ratios.classifier_int8_speedup_vs_torch is None
    assert "provider.cold_start.process_s" not in report.measurements
    assert any("random" in n for n in report.notes) and any("cold-start skipped" in n for n in report.notes)
