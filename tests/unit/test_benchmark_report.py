"""The benchmark report's sentences: what they claim must follow from the numbers."""

from __future__ import annotations

from eco_rails.benchmarks.report import average_success, comparison_with_eco, paper_ordering


def _m(unlearn: float, retention: float) -> dict[str, float]:
    return {"unlearn_success": unlearn, "retention_success": retention}


def test_average_success_is_the_mean_of_unlearn_and_retention():
    assert average_success(_m(20.0, 80.0)) == 50.0
    assert average_success({"unlearn_success": float("nan"), "retention_success": 1.0}) is None


def test_paper_ordering_states_the_gaps_and_the_distance_from_the_target():
    methods = {"target": _m(22.0, 76.0), "memflex": _m(23.0, 76.0), "gd": _m(22.5, 76.0), "ga": _m(22.0, 75.0)}
    (line,) = paper_ordering(methods)
    assert "holds here: memflex 49.500 > gd 49.250 > ga 48.500" in line
    assert "gaps memflex - gd +0.250, gd - ga +0.750 points" in line
    assert "target model's 49.000: memflex +0.500, gd +0.250, ga -0.500 points" in line


def test_paper_ordering_says_when_it_does_not_hold_and_is_silent_without_the_three():
    methods = {"memflex": _m(10.0, 10.0), "gd": _m(90.0, 60.0), "ga": _m(96.0, 2.0)}
    assert "does NOT hold" in paper_ordering(methods)[0]
    assert paper_ordering({"memflex": _m(1.0, 1.0), "ga": _m(1.0, 1.0)}) == []


def test_eco_comparison_names_wins_and_losses_per_headline_number():
    report = {"benchmark": "knowundo", "methods": {"eco": _m(40.0, 70.0), "memflex": _m(20.0, 75.0)}}
    lines = comparison_with_eco(report)
    assert "- vs **memflex**: ECO wins on unlearn success 40.000 vs 20.000; loses on retention success 70.000 vs 75.000." in lines
