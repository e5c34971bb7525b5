"""ECO corruption functions: pure, seeded transforms of a block of prompt token embeddings.

Every function takes a ``(T, d)`` block (T tokens of one contiguous flagged span, d embedding dims) and
returns a *new* tensor; inputs are never modified in place, so a caller's embeddings cannot leak state
between requests. Randomness comes only from the ``torch.Generator`` passed in, which callers seed from the
prompt text (:func:`~eco_rails.engine.corruption.seed_from_text`) so that the same prompt is always
corrupted the same way.

The menu follows the ECO paper's reference code: additive Gaussian noise (the main method), zeroing or
sign-flipping embedding dimensions (either the first ``n`` or each token's top-``k`` by magnitude), and
reversing or shuffling the token order inside a span. Each is registered by name in
:mod:`eco_rails.engine.corruption.registry`.
"""

from __future__ import annotations

import torch

from eco_rails.engine.corruption.spec import CorruptionSpec, DimSelection
from eco_rails.errors import ConfigError


def _check_block(block: torch.Tensor) -> None:
    if block.dim() != 2:
        raise ValueError(f"expected a (tokens, dims) embedding block, got shape {tuple(block.shape)}")


def _dim_mask(block: torch.Tensor, dims: int | None, select: DimSelection) -> torch.Tensor:
    """Boolean (T, d) mask of the dimensions a dimension-wise corruption touches."""
    width = block.shape[1]
    if dims is None or dims == width:
        return torch.ones_like(block, dtype=torch.bool)
    if dims > width:
        raise ConfigError(f"corruption.dims={dims} exceeds the model's embedding width {width}; use at most {width}.")
    mask = torch.zeros_like(block, dtype=torch.bool)
    if select == "first":
        mask[:, :dims] = True
    else:
        top = block.abs().topk(dims, dim=1).indices
        mask.scatter_(1, top, True)
    return mask


def rand_noise(
    block: torch.Tensor,
    *,
    strength: float,
    generator: torch.Generator,
    dims: int | None = None,
    select: DimSelection = "first",
) -> torch.Tensor:
    """Add N(0, strength^2) noise to the selected dimensions of every token."""
    _check_block(block)
    if strength < 0:
        raise ConfigError(f"corruption.strength must be >= 0, got {strength}.")
    # Noise is drawn in float32 on the CPU so a seed gives the same noise on every device and dtype.
    noise = torch.randn(tuple(block.shape), generator=generator, dtype=torch.float32) * strength
    noise = noise.to(device=block.device, dtype=block.dtype)
    return torch.where(_dim_mask(block, dims, select), block + noise, block)


def zero_out(block: torch.Tensor, *, dims: int | None = None, select: DimSelection = "first") -> torch.Tensor:
    """Set the selected dimensions of every token to zero."""
    _check_block(block)
    return block.masked_fill(_dim_mask(block, dims, select), 0.0)


def flip_sign(block: torch.Tensor, *, dims: int | None = None, select: DimSelection = "first") -> torch.Tensor:
    """Negate the selected dimensions of every token."""
    _check_block(block)
    return torch.where(_dim_mask(block, dims, select), -block, block)


def reverse(block: torch.Tensor) -> torch.Tensor:
    """Reverse the token order inside the span."""
    _check_block(block)
    return block.flip(0)


def shuffle(block: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Permute the token order inside the span (seeded)."""
    _check_block(block)
    order = torch.randperm(block.shape[0], generator=generator).to(block.device)
    return block[order]


def corrupt_block(block: torch.Tensor, spec: CorruptionSpec, generator: torch.Generator) -> torch.Tensor:
    """Apply ``spec`` to one contiguous span block (dispatched through the method registry)."""
    return spec.registered.apply(block, spec, generator)


def contiguous_segments(mask: torch.Tensor) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges of the runs of True in a 1-D boolean mask."""
    flags = mask.to(torch.bool).tolist()
    segments: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            segments.append((start, i))
            start = None
    if start is not None:
        segments.append((start, len(flags)))
    return segments


def apply_corruption(embeds: torch.Tensor, mask: torch.Tensor, spec: CorruptionSpec, seed: int) -> torch.Tensor:
    """Corrupt the rows of a ``(T, d)`` embedding matrix where ``mask`` is True; other rows are untouched.

    Each contiguous run of masked rows is corrupted as one span (so ``reverse``/``shuffle`` reorder
    tokens only inside a span). Returns a new tensor.
    """
    _check_block(embeds)
    if mask.shape != (embeds.shape[0],):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match {embeds.shape[0]} tokens")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    out = embeds.clone()
    for start, end in contiguous_segments(mask):
        out[start:end] = corrupt_block(embeds[start:end], spec, generator)
    return out
