"""Split conformal calibration of the classifier's threshold, and the rates it is judged by. Pure functions."""

from __future__ import annotations

import math
from typing import Sequence

from eco_rails.errors import ConfigError


def conformal_threshold(negative_scores: Sequence[float], target_fpr: float) -> float:
    """Threshold t such that a new negative (exchangeable with the calibration negatives) has
    P(score > t) <= target_fpr.

    Split conformal prediction: with n calibration scores, t is the ceil((n + 1)(1 - alpha))-th smallest.
    That needs n >= 1/alpha - 1 negatives; with fewer, no threshold can promise the rate.
    """
    if not 0.0 < target_fpr <= 0.5:
        raise ConfigError(f"classifier.target_fpr must be in (0, 0.5], got {target_fpr}.")
    scores = sorted(float(s) for s in negative_scores)
    n = len(scores)
    rank = math.ceil((n + 1) * (1.0 - target_fpr))
    if rank > n:
        need = math.ceil(1.0 / target_fpr - 1.0)
        raise ConfigError(
            f"{n} calibration negatives cannot certify a false-positive rate of {target_fpr}: at least {need} are "
            "needed. Add keep examples to the policy or raise classifier.target_fpr."
        )
    return scores[rank - 1]


def minimum_calibration_size(target_fpr: float) -> int:
    """The fewest negatives that can certify ``target_fpr`` by split conformal prediction."""
    return math.ceil(1.0 / target_fpr - 1.0)


def flag_rate(scores: Sequence[float], threshold: float) -> float:
    """Fraction of scores strictly above the threshold (the classifier's flag rule)."""
    if not scores:
        return float("nan")
    return sum(1 for s in scores if s > threshold) / len(scores)
