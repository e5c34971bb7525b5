"""ECO corruption functions: pure, seeded transforms of a block of prompt token embeddings.

Every function takes a ``(T, d)`` block (T tokens of one contiguous flagged span, d embedding dims) and
returns a *new* tensor; inputs are never modified in place, so a caller's embeddings cannot leak state
between requests. Randomness comes only from the ``torch.Generator`` passed in, which callers seed from the
prompt text (:func:`seed_from_text`) so that the same prompt is always corrupted the same way.

The menu follows the ECO paper's reference code: additive Gaussian noise (the main method), zeroing or
sign-flipping embedding dimensions (either the first ``n`` or each token's top-``k`` by magnitude), and
reversing or shuffling the token order inside a span.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from eco_rails.errors import ConfigError

CorruptionMethod = Literal["rand_noise", "zero_out", "flip_sign", "reverse", "shuffle"]
DimSelection = Literal["first", "top_k"]

CORRUPTION_METHODS: tuple[str, ...] = ("rand_noise", "zero_out", "flip_sign", "reverse", "shuffle")

# Noise std for `rand_noise` when nothing else is configured. The embedded SmolLM2-135M has embedding
# std 0.136 (mean row norm 3.2); sigma 0.5 buries the token identity while leaving the template intact.
# A policy's learned strength (eco-rails optimize) replaces it.
DEFAULT_NOISE_STRENGTH = 0.5


class CorruptionSpec(BaseModel):
    """What corruption to apply to flagged tokens, and how strong.

    ``strength`` is the noise standard deviation for ``rand_noise`` and is ignored by the other methods.
    ``dims`` is how many embedding dimensions are touched (``None``: all of them); ``select`` says
    which: the first ``dims`` (``first``) or each token's ``dims`` largest by magnitude (``top_k``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    method: CorruptionMethod = "rand_noise"
    strength: float = Field(default=DEFAULT_NOISE_STRENGTH, ge=0.0)
    dims: PositiveInt | None = None
    select: DimSelection = "first"

    @classmethod
    def parse(cls, value: object, *, source: str = "corruption") -> "CorruptionSpec":
        """Validate user input (a mapping, a method name, or a spec) into a spec.

        Raises :class:`ConfigError` naming ``source`` and the offending field.
        """
        if isinstance(value, CorruptionSpec):
            return value
        if isinstance(value, str):
            value = {"method": value}
        if not isinstance(value, dict):
            raise ConfigError(
                f"{source}: expected a mapping like {{method: rand_noise, strength: 0.5}}, "
                f"got {type(value).__name__}."
            )
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One readable line per pydantic error, each prefixed with the dotted field path under ``source``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in (source, *err["loc"]))
        got = err.get("input")
        hint = ""
        if err["type"] == "literal_error" and "method" in err["loc"]:
            hint = f" Valid methods: {', '.join(CORRUPTION_METHODS)}."
        elif err["type"] == "extra_forbidden":
            hint = " Remove it or check its spelling."
        lines.append(f"{loc}: {err['msg']} (got {got!r}).{hint}")
    return "Invalid configuration:\n  " + "\n  ".join(lines)


def seed_from_text(*parts: str) -> int:
    """A stable 63-bit seed from text, identical across processes and machines (unlike ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


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
    """Apply ``spec`` to one contiguous span block."""
    if spec.method == "rand_noise":
        return rand_noise(block, strength=spec.strength, generator=generator, dims=spec.dims, select=spec.select)
    if spec.method == "zero_out":
        return zero_out(block, dims=spec.dims, select=spec.select)
    if spec.method == "flip_sign":
        return flip_sign(block, dims=spec.dims, select=spec.select)
    if spec.method == "reverse":
        return reverse(block)
    if spec.method == "shuffle":
        return shuffle(block, generator=generator)
    raise ConfigError(f"Unknown corruption method {spec.method!r}. Valid methods: {', '.join(CORRUPTION_METHODS)}.")


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
