"""Zeroth-order search for the corruption strength (forward passes only).

The ECO reference code estimates the derivative of the forget metric with a two-point central finite
difference on the scalar strength and takes gradient steps, ``s <- max(s - lr * g, s_min)``, stopping once
the metric reaches its target. Here the same estimator drives the search, made robust for any model:

* it works on ``log s``, and steps are normalised (a fixed fraction of an e-fold, halved when a step makes
  things worse), so no learning rate has to be tuned to a model's embedding scale;
* multiple-choice accuracy is piecewise constant, so the finite difference is often exactly zero: then
  the search brackets instead, growing the strength geometrically until the target is met;
* once a strength that meets the target is known, bisection (in log space) between the largest strength
  that fails and the smallest that succeeds returns the *weakest* corruption that forgets, which keeps
  the output as fluent as possible;
* every evaluation is counted against a budget; the result says whether the target was reached.

Pure: the objective is any function of the strength; nothing here touches a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal


@dataclass
class Evaluation:
    strength: float
    value: float
    phase: Literal["start", "gradient", "bracket", "bisect"]


@dataclass
class SearchResult:
    strength: float  # the weakest strength found that meets the target (or the best seen if none does)
    value: float
    reached_target: bool
    evaluations: int
    history: list[Evaluation] = field(default_factory=list)


def minimal_strength_search(
    objective: Callable[[float], float],
    *,
    target: float,
    init: float,
    min_strength: float = 1e-3,
    max_strength: float = 1e3,
    budget: int = 40,
    step: float = 0.5,
    bisect_tolerance: float = 0.05,
    on_evaluation: Callable[[Evaluation], None] | None = None,
) -> SearchResult:
    """Find the smallest strength ``s`` with ``objective(s) <= target``; ``objective`` should fall as ``s`` grows.

    ``budget`` counts objective evaluations. ``step`` is the gradient step in e-folds of the strength;
    ``bisect_tolerance`` is the relative width at which bisection stops.
    """
    if not (min_strength > 0 and max_strength > min_strength and min_strength <= init <= max_strength):
        raise ValueError("need 0 < min_strength <= init <= max_strength")
    history: list[Evaluation] = []
    cache: dict[float, float] = {}

    def f(s: float, phase: str) -> float:
        s = float(min(max(s, min_strength), max_strength))
        if s not in cache:
            if len(history) >= budget:
                raise _BudgetSpent
            cache[s] = float(objective(s))
            history.append(Evaluation(s, cache[s], phase))  # type: ignore[arg-type]
            if on_evaluation:
                on_evaluation(history[-1])
        return cache[s]

    def best() -> SearchResult:
        ok = [e for e in history if e.value <= target]
        if ok:
            pick = min(ok, key=lambda e: e.strength)
            return SearchResult(pick.strength, pick.value, True, len(history), history)
        pick = min(history, key=lambda e: (e.value, e.strength))
        return SearchResult(pick.strength, pick.value, False, len(history), history)

    try:
        theta, lo_log, hi_log = math.log(init), math.log(min_strength), math.log(max_strength)
        value = f(init, "start")
        eps = step / 2
        # Phase 1: move towards more corruption until the target is met. The central difference sets the
        # step: a secant step to the target (clipped to [step/4, 2*step] e-folds) when the metric falls
        # with strength as expected; when it is flat or rises (noise), bracket upwards by `step`. Every
        # iteration moves strictly upwards, so the search ends at max_strength at the latest.
        while value > target:
            if theta >= hi_log:
                return best()
            up, down = f(math.exp(min(theta + eps, hi_log)), "gradient"), f(math.exp(max(theta - eps, lo_log)), "gradient")
            slope = (up - down) / (2 * eps)  # d metric / d log(strength)
            if slope < 0.0:
                move, phase = min(max((value - target) / -slope, step / 4), 2 * step), "gradient"
            else:
                move, phase = step, "bracket"
            theta = min(theta + move, hi_log)
            value = f(math.exp(theta), phase)
        # Phase 2: bisection between the strongest failing and the weakest succeeding strength.
        good = min(e.strength for e in history if e.value <= target)
        failing = [e.strength for e in history if e.value > target and e.strength < good]
        bad = max(failing) if failing else min_strength
        if not failing and good > min_strength:
            if f(min_strength, "bisect") <= target:
                return best()
        while good / bad > 1 + bisect_tolerance:
            mid = math.sqrt(good * bad)
            if f(mid, "bisect") <= target:
                good = mid
            else:
                bad = mid
        return best()
    except _BudgetSpent:
        return best()


class _BudgetSpent(Exception):
    pass
