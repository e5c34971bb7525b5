"""Pure statistics for benchmarks: summaries of timing samples and noise-robust ratios.

Benchmarks on a shared machine drift (thermal state, other processes). The runners therefore interleave
the variants they compare, round by round, and the ratios here are taken between *paired* samples, so a
slow minute slows both sides of a pair instead of one variant.
"""

from __future__ import annotations

import math
from typing import Sequence

from pydantic import BaseModel, ConfigDict


class Summary(BaseModel):
    """Median and 95th percentile of a measurement (``unit`` says of what)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str
    median: float
    p95: float
    n: int


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in [0, 100]), as numpy's default; pure Python."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    xs = sorted(float(x) for x in samples)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(samples: Sequence[float], unit: str) -> Summary:
    return Summary(unit=unit, median=percentile(samples, 50), p95=percentile(samples, 95), n=len(samples))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of the per-pair ratios ``numerator_i / denominator_i`` (pairs measured back to back)."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError("paired_ratio needs two equally long, non-empty sample lists")
    if any(d <= 0 for d in denominators):
        raise ValueError("paired_ratio: denominators must be positive")
    return percentile([n / d for n, d in zip(numerators, denominators)], 50)


def rotated(variants: Sequence[str], round_index: int) -> list[str]:
    """The run order of the variants in a round: rotated each round so no variant always runs first."""
    k = round_index % len(variants)
    return list(variants[k:]) + list(variants[:k])
