"""Unlearning losses as pure functions of logits and labels (torch), one per row so weights can differ.

- :func:`sequence_nll`: per-row mean NLL over the answer tokens (labels != -100), the quantity gradient
  ascent raises and descent lowers.
- :func:`weighted_loss`: ``mean(w * nll)`` over a batch; MemFlex uses w = -0.4 on unlearn rows (ascent) and
  +2.0 on retention rows; gradient ascent is w = -1; gradient difference -1 / +1.
- :func:`npo_loss`: Negative Preference Optimisation (Zhang et al. 2024): ``2/beta * softplus(beta * (log
  pi_theta - log pi_ref))`` on forget rows; bounded below, so unlike ascent it slows down instead of
  diverging once the model stops assigning the answer high probability.
"""

from __future__ import annotations

__all__ = ["npo_loss", "sequence_nll", "sequence_token_counts", "weighted_loss"]


def _shifted(logits, labels):
    return logits[:, :-1, :], labels[:, 1:]


def sequence_nll(logits, labels, *, reduction: str = "mean"):
    """Per-row NLL of the answer tokens: ``mean`` over a row's tokens (default) or their ``sum``.

    ``logits`` [B, T, V] predict position t+1 from t; ``labels`` [B, T] hold -100 where nothing is scored.
    A row with no scored token gets 0.
    """
    import torch

    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    logits, labels = _shifted(logits, labels)
    mask = labels != -100
    safe = labels.masked_fill(~mask, 0)
    # (B*T, V) rows: log-softmax over contiguous vocabulary rows (a transposed (B, V, T) view is several
    # times slower on CPU).
    flat = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), safe.reshape(-1), reduction="none")
    token_nll = flat.view(labels.shape) * mask
    total = token_nll.sum(dim=1)
    if reduction == "sum":
        return total
    return total / mask.sum(dim=1).clamp(min=1)


def sequence_token_counts(labels):
    """Scored tokens per row (after the one-position shift)."""
    return (labels[:, 1:] != -100).sum(dim=1)


def weighted_loss(nll, weights):
    """``mean(weights * nll)`` over the rows of a batch (weights: a tensor or a list of floats)."""
    import torch

    w = torch.as_tensor(weights, dtype=nll.dtype, device=nll.device)
    if w.shape != nll.shape:
        raise ValueError(f"{w.numel()} weights for {nll.numel()} rows")
    return (w * nll).mean()


def npo_loss(nll, reference_nll, beta: float = 0.1):
    """Per-row NPO loss from summed NLLs of the current and the reference model.

    ``log pi_theta - log pi_ref = reference_nll - nll``; the loss is ``2/beta * softplus(beta * that)``.
    At the start (theta = ref) it is ``2/beta * log 2`` and its gradient equals gradient ascent's on the summed NLL;
    as the forget answers become unlikely the softplus flattens and the push fades.
    """
    import torch

    if beta <= 0:
        raise ValueError(f"NPO's beta must be positive, not {beta}")
    return 2.0 / beta * torch.nn.functional.softplus(beta * (reference_nll - nll))
