"""What `eco-rails optimize` prints for each objective: the learned strength and the numbers that justify it."""

from __future__ import annotations

import pytest

from eco_rails.cli.app import console
from eco_rails.cli.policy import _print_optimization

COMMON = {"strength": 0.731, "evaluations": 12, "forward_passes": 264, "seconds": 41.0, "reached_target": True,
          "recorded": "cfg/policy.learned.json"}
REPORTS = {
    "retain": {"objective": "retain", "retain_model": "adapters/retain", "clean_forget_quality": 0.0123,
               "forget_quality": 0.6548, "clean_truth_ratio": 0.41, "truth_ratio": 0.66, "reference_truth_ratio": 0.68,
               "fluency": {"corrupted_perplexity": 7.5, "clean_perplexity": 3.0, "ratio": 2.5, "empty_rate": 0.0,
                           "loop_rate": 0.25, "paraphrase_loop_rate": 0.5}, "fluent": True},
    "chance": {"objective": "chance", "plain_accuracy": 0.62, "accuracy": 0.27, "target_accuracy": 0.27},
    "surrogate": {"objective": "surrogate", "seed_strengths": [0.5, 0.731, 0.9], "plain_answer_probability": 0.61,
                  "answer_probability": 0.38, "reference_answer_probability": 0.39, "ks_pvalue": 0.87,
                  "plain_accuracy": 0.59, "accuracy": 0.41},
}


@pytest.mark.parametrize("objective", sorted(REPORTS))
def test_optimize_prints_the_learned_strength_with_its_objectives_evidence(objective):
    with console.capture() as captured:
        _print_optimization({**COMMON, **REPORTS[objective]})
    out = captured.get()
    assert "Learned strength 0.7310" in out and "cfg/policy.learned.json" in out
    expected = {"retain": ("0.012 -> 0.655", "retain model adapters/retain", "0.41 -> 0.66", "within the bound", "loops 25%",
                            "paraphrase loops 50%"),
                "chance": ("0.62 -> 0.27", "target <= 0.27"),
                "surrogate": ("0.61 -> 0.38", "never-seen reference 0.39", "KS p = 0.87")}[objective]
    for text in expected:
        assert text in out, (text, out)
