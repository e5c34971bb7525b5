"""The zeroth-order strength search on synthetic objectives with known optima."""

from __future__ import annotations

import math
import random

import pytest

from eco_rails.strength.search import minimal_strength_search


def smooth(s: float) -> float:
    """Accuracy falling from 0.85 to chance (0.25) as the noise grows."""
    return 0.25 + 0.6 * math.exp(-s / 0.3)


def test_finds_the_weakest_strength_that_meets_the_target():
    target = 0.27
    optimum = -0.3 * math.log((target - 0.25) / 0.6)  # smooth(optimum) == target, ~1.02
    result = minimal_strength_search(smooth, target=target, init=0.01, budget=60)
    assert result.reached_target and result.value <= target
    assert optimum <= result.strength <= optimum * 1.06
    assert result.evaluations <= 60


def test_flat_steps_are_bracketed():
    """Piecewise-constant accuracy: the finite difference is zero almost everywhere."""
    def steps(s: float) -> float:
        return 0.75 if s < 0.8 else (0.5 if s < 2.0 else 0.25)

    result = minimal_strength_search(steps, target=0.27, init=0.05, budget=60)
    assert result.reached_target and 2.0 <= result.strength <= 2.0 * 1.06
    assert any(e.phase == "bracket" for e in result.history)


def test_noisy_objective_still_converges_near_the_optimum():
    rng = random.Random(0)
    result = minimal_strength_search(lambda s: smooth(s) + rng.uniform(-0.005, 0.005), target=0.28, init=0.02, budget=80)
    optimum = -0.3 * math.log((0.28 - 0.25) / 0.6)
    assert result.reached_target and abs(math.log(result.strength / optimum)) < 0.3


def test_budget_is_respected_and_reported():
    result = minimal_strength_search(smooth, target=0.27, init=0.001, budget=4)
    assert result.evaluations == 4 and len(result.history) == 4
    assert not result.reached_target and result.value == min(e.value for e in result.history)


def test_unreachable_target_stops_at_the_maximum():
    result = minimal_strength_search(smooth, target=0.1, init=1.0, max_strength=50.0, budget=100)
    assert not result.reached_target and result.strength <= 50.0


def test_already_satisfied_returns_a_weaker_strength_if_one_works():
    result = minimal_strength_search(smooth, target=0.27, init=5.0, budget=60)
    optimum = -0.3 * math.log((0.27 - 0.25) / 0.6)
    assert result.reached_target and optimum <= result.strength <= optimum * 1.06


@pytest.mark.parametrize("bad", [dict(init=0.0), dict(min_strength=2.0, init=1.0), dict(max_strength=0.0001)])
def test_bad_arguments(bad):
    args = dict(target=0.3, init=1.0) | bad
    with pytest.raises(ValueError):
        minimal_strength_search(smooth, **args)


def test_a_metric_that_rises_locally_does_not_stall_the_search():
    """Noise can make accuracy rise with strength locally; the search must still end, within budget."""
    def bumpy(s: float) -> float:
        return 0.9 if s < 0.05 else (0.95 if s < 0.5 else (0.6 if s < 3 else 0.25))

    result = minimal_strength_search(bumpy, target=0.27, init=0.01, budget=40)
    assert result.reached_target and 3.0 <= result.strength <= 3.0 * 1.06
    result = minimal_strength_search(lambda s: 0.9, target=0.27, init=0.01, max_strength=10.0, budget=1000)
    assert not result.reached_target and result.evaluations < 100


# best_strength_search: maximise a forget-quality-like objective (rises, peaks, falls)

def peaked(s: float) -> float:
    """A p-value-like curve with its peak at s = 2.0 (log-normal bump in log s)."""
    return math.exp(-(math.log(s / 2.0) ** 2) / 0.5)


def test_best_strength_search_finds_the_peak_of_a_rise_and_fall_objective():
    from eco_rails.strength.search import best_strength_search

    result = best_strength_search(peaked, init=0.05, max_strength=20.0, budget=16)
    assert abs(math.log(result.strength / 2.0)) < 0.1
    assert result.evaluations <= 16 and len(result.history) == result.evaluations
    assert {e.phase for e in result.history} == {"grid", "golden"}
    assert result.value == max(e.value for e in result.history)


def test_best_strength_search_takes_the_weakest_strength_on_a_plateau():
    """KS p-values are piecewise constant: of equal values, the least corruption wins (fluency)."""
    from eco_rails.strength.search import best_strength_search

    def plateau(s: float) -> float:
        return 1.0 if 1.0 <= s <= 6.0 else (0.2 if s < 1.0 else 0.05)

    result = best_strength_search(plateau, init=0.05, max_strength=20.0, budget=16)
    assert result.value == 1.0
    assert result.strength == min(e.strength for e in result.history if e.value == 1.0)
    assert result.strength < 3.0


def test_best_strength_search_respects_its_budget_and_its_range():
    from eco_rails.strength.search import best_strength_search

    calls: list[float] = []

    def counted(s: float) -> float:
        calls.append(s)
        return peaked(s)

    result = best_strength_search(counted, init=0.1, max_strength=10.0, budget=5)
    assert len(calls) == result.evaluations == 5
    assert all(0.1 * (1 - 1e-9) <= s <= 10.0 * (1 + 1e-9) for s in calls)
    # a peak at the end of the range is found there, not past it
    edge = best_strength_search(lambda s: s, init=0.1, max_strength=10.0, budget=10)
    assert edge.strength == pytest.approx(10.0)


def test_best_strength_search_rejects_a_bad_range_or_budget():
    from eco_rails.strength.search import best_strength_search

    with pytest.raises(ValueError, match="init < max_strength"):
        best_strength_search(peaked, init=5.0, max_strength=5.0)
    with pytest.raises(ValueError, match="budget"):
        best_strength_search(peaked, init=0.1, max_strength=5.0, budget=2)
