"""What an unlearning method is: how each training row's loss is made, whether retention rows take part,
and whether training is restricted to localised tensors. The training loop (:mod:`eco_rails.unlearn.train`)
is shared, so methods differ only here and compare under the same data and budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RowBatch:
    """Per-row quantities of one micro-batch (torch tensors of shape [B])."""

    nll: Any  # mean answer-token NLL of the current model
    nll_sum: Any  # summed answer-token NLL of the current model
    reference_nll_sum: Any | None  # summed NLL of the model before unlearning (NPO)
    is_forget: Any  # bool


@dataclass(frozen=True)
class UnlearnMethod:
    """An unlearning method.

    Attributes:
        name: registry name (``eco-rails unlearn --method``).
        summary: one line for ``--help`` and reports.
        learning_rate: default learning rate (MemFlex 3e-4; baselines 5e-5, the KnowUnDo code's values).
        forget_weight, retain_weight: ``w`` in ``mean(w * nll)`` for the two kinds of rows.
        trains_on_retain: retention rows are part of the training list (else they only choose checkpoints).
        needs_retain: refuse to run without retention rows.
        localised: train only the tensors MemFlex's localisation selects.
        npo: forget rows use the NPO loss instead of ``forget_weight * nll``.
    """

    name: str
    summary: str
    learning_rate: float
    forget_weight: float = -1.0
    retain_weight: float = 0.0
    trains_on_retain: bool = False
    needs_retain: bool = False
    localised: bool = False
    npo: bool = False

    def row_losses(self, rows: RowBatch, *, beta: float = 0.1, forget_weight: float | None = None,
                   retain_weight: float | None = None):
        """Loss of each row; the step's loss is their sum over the accumulation group divided by its size."""
        import torch

        from eco_rails.unlearn.losses import npo_loss

        fw = self.forget_weight if forget_weight is None else forget_weight
        rw = self.retain_weight if retain_weight is None else retain_weight
        if self.npo:
            if rows.reference_nll_sum is None:
                raise ValueError("NPO needs the reference model's NLL of every forget row")
            forget = npo_loss(rows.nll_sum, rows.reference_nll_sum, beta)
        else:
            forget = fw * rows.nll
        return torch.where(rows.is_forget, forget, rw * rows.nll)
