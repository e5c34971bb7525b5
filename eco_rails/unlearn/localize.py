"""MemFlex's knowledge localisation, as pure functions of gradients (Tian et al. 2024, section 3).

For each LoRA tensor k, two averaged gradients are given: ``G_UL[k]`` from the unlearn rows and ``G_RT[k]``
from the retention rows, each taken with *randomised* answers (half the answer tokens replaced by random
ids), so the gradient points at where the model stores those facts rather than at a particular wording.
A tensor is selected, whole, when the two directions disagree (``cos_k < mu``: updating it for the unlearn
rows does not drag the retention rows along) and the unlearn gradient is strong there (``mag_k > sigma``:
the knowledge actually lives there). Only selected tensors are later trained.

The paper's thresholds (Llama-2-7B: mu 0.96, sigma 4e-4) do not transfer between models (gradient
magnitudes scale with width and depth), so :func:`thresholds_from_quantiles` states them as quantiles of
the model's own statistics, computed on training rows only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["TensorStats", "randomise_answer", "select_tensors", "tensor_stats", "thresholds_from_quantiles"]


@dataclass(frozen=True)
class TensorStats:
    """Localisation statistics of one tensor."""

    name: str
    cosine: float  # cosine between the unlearn and retention gradients (1: same direction)
    magnitude: float  # mean absolute unlearn gradient
    numel: int


def tensor_stats(unlearn_grads: Mapping[str, object], retention_grads: Mapping[str, object]) -> list[TensorStats]:
    """Per-tensor cosine and magnitude from averaged gradients (torch tensors keyed by parameter name).

    A tensor whose gradients are all zero on either side gets cosine 0 (no shared direction) and its real
    magnitude; names must match on both sides.
    """
    import torch

    if set(unlearn_grads) != set(retention_grads):
        missing = sorted(set(unlearn_grads) ^ set(retention_grads))
        raise ValueError(f"unlearn and retention gradients cover different tensors: {missing[:3]}")
    out = []
    for name in unlearn_grads:
        g_ul = torch.as_tensor(unlearn_grads[name]).detach().double().flatten()
        g_rt = torch.as_tensor(retention_grads[name]).detach().double().flatten()
        norm = float(g_ul.norm() * g_rt.norm())
        cosine = float(g_ul @ g_rt) / norm if norm > 0 else 0.0
        out.append(TensorStats(name, cosine, float(g_ul.abs().mean()) if g_ul.numel() else 0.0, int(g_ul.numel())))
    return out


def select_tensors(stats: Sequence[TensorStats], mu: float, sigma: float) -> list[str]:
    """Names of tensors with ``cosine < mu`` and ``magnitude > sigma`` (whole tensors; order kept)."""
    return [s.name for s in stats if s.cosine < mu and s.magnitude > sigma]


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without numpy."""
    if not values:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def thresholds_from_quantiles(stats: Sequence[TensorStats], cosine_quantile: float, magnitude_quantile: float) -> tuple[float, float]:
    """``(mu, sigma)`` at quantiles of the model's own statistics.

    ``mu`` at the ``cosine_quantile`` of the cosines (0.5: the half of tensors whose two gradients agree
    least pass), ``sigma`` at the ``magnitude_quantile`` of the magnitudes (0.5: the stronger half pass).
    Selection is strict (``<``, ``>``), so a tensor exactly at a threshold stays frozen.
    """
    if not stats:
        raise ValueError("no tensors to localise: the model has no trainable LoRA tensors")
    return _quantile([s.cosine for s in stats], cosine_quantile), _quantile([s.magnitude for s in stats], magnitude_quantile)


def randomise_answer(answer_ids: Sequence[int], vocab_size: int, rng: random.Random, protect_last: bool = True) -> list[int]:
    """A copy of the answer with about half its tokens replaced by random vocabulary ids.

    ``n = len // 2`` positions are drawn *with replacement* (so slightly fewer than half change), as in the
    MemFlex recipe. The final token (EOS) is kept when ``protect_last``, so the copy still ends an answer.
    """
    ids = list(answer_ids)
    span = len(ids) - 1 if protect_last and len(ids) > 1 else len(ids)
    for _ in range(len(ids) // 2):
        if span <= 0:
            break
        ids[rng.randrange(span)] = rng.randrange(vocab_size)
    return ids
