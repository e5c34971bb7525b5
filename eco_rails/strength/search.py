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
    phase: Literal["start", "gradient", "bracket", "bisect", "grid", "golden"]


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
    evaluate = _Evaluator(objective, budget, on_evaluation)
    history = evaluate.history

    def f(s: float, phase: str) -> float:
        return evaluate(min(max(s, min_strength), max_strength), phase)

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


class _Evaluator:
    """The objective, evaluated at most once per strength and at most ``budget`` times (then
    :class:`_BudgetSpent`), every evaluation recorded in ``history`` and reported to ``on_evaluation``."""

    def __init__(self, objective: Callable[[float], float], budget: int,
                 on_evaluation: Callable[[Evaluation], None] | None) -> None:
        self.objective, self.budget, self.on_evaluation = objective, budget, on_evaluation
        self.history: list[Evaluation] = []
        self.cache: dict[float, float] = {}

    def __call__(self, strength: float, phase: str) -> float:
        s = float(strength)
        if s not in self.cache:
            if len(self.history) >= self.budget:
                raise _BudgetSpent
            self.cache[s] = float(self.objective(s))
            self.history.append(Evaluation(s, self.cache[s], phase))  # type: ignore[arg-type]
            if self.on_evaluation:
                self.on_evaluation(self.history[-1])
        return self.cache[s]


def best_strength_search(
    objective: Callable[[float], float],
    *,
    init: float,
    max_strength: float,
    budget: int = 16,
    grid_points: int | None = None,
    on_evaluation: Callable[[Evaluation], None] | None = None,
) -> SearchResult:
    """Find the strength in ``[init, max_strength]`` that *maximises* ``objective`` (ECO's forget quality:
    the KS p-value between the corrupted model's and a retain model's truth ratios), forward passes only.

    Such an objective rises while the corruption removes what the model knows, and falls again once the
    corruption is so strong that the model no longer prefers anything (a retain model still does). It is
    also piecewise constant (a KS statistic moves in steps of 1/n), so a finite difference is mostly zero:

    * a geometric grid of ``grid_points`` strengths (default: half the budget) from ``init`` to
      ``max_strength`` finds the region of the peak;
    * golden-section search in ``log s`` between the best grid point's neighbours spends the rest;
    * ties go to the *weaker* strength (a plateau of equal p-values: the least corruption that reaches it,
      which keeps answers fluent). ``reached_target`` is always True (there is no target to miss).

    Pure: the objective is any function of the strength; nothing here touches a model.
    """
    if not (0 < init < max_strength):
        raise ValueError("need 0 < init < max_strength")
    if budget < 3:
        raise ValueError("best_strength_search needs a budget of at least 3 evaluations")
    points = min(max(grid_points or budget // 2, 3), budget)
    evaluate = _Evaluator(objective, budget, on_evaluation)
    history = evaluate.history

    def f(theta: float, phase: str) -> float:
        return evaluate(math.exp(theta), phase)

    def rank(e: Evaluation) -> tuple[float, float]:
        return (-e.value, e.strength)

    lo, hi = math.log(init), math.log(max_strength)
    grid = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
    for theta in grid:
        f(theta, "grid")
    best_index = min(range(points), key=lambda i: rank(history[i]))
    a, b = grid[max(best_index - 1, 0)], grid[min(best_index + 1, points - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    try:
        while b - a > 1e-3:
            if f(c, "golden") >= f(d, "golden"):  # ties: keep the weaker side
                b, d = d, c
                c = b - ratio * (b - a)
            else:
                a, c = c, d
                d = a + ratio * (b - a)
    except _BudgetSpent:
        pass
    pick = min(history, key=rank)
    return SearchResult(pick.strength, pick.value, True, len(history), history)
