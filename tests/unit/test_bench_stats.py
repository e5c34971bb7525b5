"""The pure parts of the benchmarks: statistics, targets, the report schema and the option rules."""

from __future__ import annotations

import numpy as np
import pytest

from eco_rails.bench.report import BenchReport, Ratios, evaluate_targets, markdown_table
from eco_rails.bench.runner import SECTIONS, BenchOptions
from eco_rails.bench.stats import Summary, paired_ratio, percentile, rotated, summarize
from eco_rails.errors import ConfigError


@pytest.mark.parametrize("q", [0, 5, 50, 95, 100])
def test_percentile_matches_numpy(q):
    samples = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_has_median_and_p95():
    s = summarize(list(range(1, 101)), "ms")
    assert (s.median, s.n, s.unit) == (50.5, 100, "ms") and s.p95 == pytest.approx(95.05)


def test_paired_ratio_ignores_drift_that_hits_both_sides():
    # The machine slows down 10x halfway; each pair still shows B twice as fast as A.
    a = [2.0, 2.0, 20.0, 20.0]
    b = [1.0, 1.0, 10.0, 10.0]
    assert paired_ratio(a, b) == 2.0
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        paired_ratio([1.0], [0.0])


def test_rotation_gives_every_variant_the_first_slot():
    firsts = {rotated(("a", "b", "c"), r)[0] for r in range(3)}
    assert firsts == {"a", "b", "c"} and sorted(rotated(("a", "b", "c"), 7)) == ["a", "b", "c"]


def _report(**ratios) -> BenchReport:
    base = dict.fromkeys(Ratios.model_fields)
    base.update(ratios)
    report = BenchReport(eco_rails_version="0", created_at="now", command="eco-rails bench", quick=False, sections=list(SECTIONS),
                         machine={"cpu": "x", "cpu_count": 2}, versions={}, settings={},
                         measurements={"classifier.int8_onnx.end_to_end_ms": Summary(unit="ms", median=2.0, p95=4.0, n=10),
                                       "fit.wall_s": Summary(unit="s", median=400.0, p95=400.0, n=1)},
                         ratios=Ratios(**base))
    return report.model_copy(update={"targets": evaluate_targets(report)})


def test_targets_compare_in_the_right_direction():
    report = _report(classifier_int8_speedup_vs_torch=5.0, rail_overhead=0.05, corrupted_vs_clean_tokens_per_s=0.99)
    met = {t.name: t.met for t in report.targets}
    assert met["ratios.classifier_int8_speedup_vs_torch"] is True
    assert met["ratios.rail_overhead"] is False  # lower is better
    assert met["ratios.corrupted_vs_clean_tokens_per_s"] is True
    assert met["ratios.provider_vs_hf_generate_tokens_per_s"] is None  # not measured
    assert met["classifier.int8_onnx.end_to_end_ms"] is True and met["fit.wall_s"] is False
    table = markdown_table(report)
    assert "| rail overhead (extra wall time) | +5.0% | <= 3% | **no** |" in table
    assert "| fit.wall_s | s | 400 | 400 | 1 |" in table


def test_ratios_have_exactly_the_documented_keys():
    assert set(Ratios.model_fields) == {"classifier_int8_speedup_vs_torch", "rail_overhead",
                                        "corrupted_vs_clean_tokens_per_s", "provider_vs_hf_generate_tokens_per_s",
                                        "vllm_corrupted_vs_clean_tokens_per_s", "classifier_batch_vs_one_by_one"}
    with pytest.raises(ValueError):
        Ratios(classifier_int8_speedup_vs_torch=1, rail_overhead=0, corrupted_vs_clean_tokens_per_s=1,
               provider_vs_hf_generate_tokens_per_s=1, speed=3)


def test_quick_options_shrink_every_section_and_skip_the_fit(tmp_path):
    quick = BenchOptions.build(config=tmp_path, quick=True)
    full = BenchOptions.build(config=tmp_path)
    assert "fit" not in quick.sections and full.sections == tuple(s for s in SECTIONS if s != "vllm")
    assert quick.provider_new_tokens < full.provider_new_tokens and quick.classifier_rounds == 1
    assert BenchOptions.build(config=tmp_path, quick=True, sections=["fit"]).sections == ("fit",)
    with pytest.raises(ConfigError, match="--only: unknown section.*speed"):
        BenchOptions.build(config=tmp_path, sections=["classifier", "speed"])


def test_vllm_bench_section_runs_only_with_a_server_and_says_how_to_give_one(tmp_path):
    assert "vllm" not in BenchOptions.build(config=tmp_path).sections
    assert "vllm" in BenchOptions.build(config=tmp_path, vllm_url="http://127.0.0.1:8000").sections
    with pytest.raises(ConfigError, match=r"vllm section needs a running server: pass --vllm-url"):
        BenchOptions.build(config=tmp_path, sections=["vllm"])
    quick = BenchOptions.build(config=tmp_path, quick=True, vllm_url="http://127.0.0.1:8000")
    assert quick.vllm_levels == (1, 2) and BenchOptions.build(config=tmp_path).vllm_levels == (1, 8, 32)
