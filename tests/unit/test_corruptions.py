"""The corruption functions' math, on small hand-checkable tensors."""

from __future__ import annotations

import pytest
import torch

from eco_rails.engine.corruption.functions import (
    apply_corruption,
    contiguous_segments,
    flip_sign,
    rand_noise,
    reverse,
    shuffle,
    zero_out,
)
from eco_rails.engine.corruption.spec import CorruptionSpec, seed_from_text
from eco_rails.errors import ConfigError

BLOCK = torch.tensor([[1.0, -4.0, 2.0, 0.5], [-3.0, 0.1, 0.2, 5.0], [0.0, 1.0, -1.0, 2.0]])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_rand_noise_all_dims_has_requested_std_and_is_seeded():
    x = torch.zeros(400, 64)
    y = rand_noise(x, strength=0.7, generator=gen(1))
    assert y.std().item() == pytest.approx(0.7, rel=0.03)
    assert abs(y.mean().item()) < 0.01
    assert torch.equal(y, rand_noise(x, strength=0.7, generator=gen(1)))
    assert not torch.equal(y, rand_noise(x, strength=0.7, generator=gen(2)))
    assert torch.equal(x, torch.zeros(400, 64)), "input must not be modified in place"


def test_rand_noise_first_n_touches_only_first_n_dims():
    y = rand_noise(BLOCK, strength=10.0, generator=gen(), dims=1)
    assert torch.equal(y[:, 1:], BLOCK[:, 1:])
    assert not torch.equal(y[:, 0], BLOCK[:, 0])


def test_rand_noise_zero_strength_is_identity():
    assert torch.equal(rand_noise(BLOCK, strength=0.0, generator=gen()), BLOCK)


def test_zero_out_first_n_and_top_k():
    first = zero_out(BLOCK, dims=2)
    assert torch.equal(first[:, :2], torch.zeros(3, 2)) and torch.equal(first[:, 2:], BLOCK[:, 2:])
    top = zero_out(BLOCK, dims=1, select="top_k")
    # the largest |value| of each row: -4.0 (col 1), 5.0 (col 3), 2.0 (col 3)
    expected = BLOCK.clone()
    expected[0, 1] = 0.0
    expected[1, 3] = 0.0
    expected[2, 3] = 0.0
    assert torch.equal(top, expected)


def test_flip_sign_first_n_and_top_k():
    assert torch.equal(flip_sign(BLOCK), -BLOCK)
    first = flip_sign(BLOCK, dims=1)
    assert torch.equal(first[:, 0], -BLOCK[:, 0]) and torch.equal(first[:, 1:], BLOCK[:, 1:])
    top = flip_sign(BLOCK, dims=2, select="top_k")
    assert top[0].tolist() == [1.0, 4.0, -2.0, 0.5]
    assert top[1].tolist() == pytest.approx([3.0, 0.1, 0.2, -5.0])


def test_reverse_and_shuffle_reorder_tokens_only():
    assert torch.equal(reverse(BLOCK), BLOCK[[2, 1, 0]])
    big = torch.arange(40.0).reshape(10, 4)
    shuffled = shuffle(big, generator=gen(3))
    assert not torch.equal(shuffled, big)
    assert sorted(shuffled[:, 0].tolist()) == big[:, 0].tolist()  # a permutation of whole rows
    assert torch.equal(shuffled, shuffle(big, generator=gen(3)))


def test_dims_wider_than_embedding_is_a_clear_error():
    with pytest.raises(ConfigError, match="exceeds the model's embedding width 4"):
        zero_out(BLOCK, dims=5)


def test_apply_corruption_changes_only_masked_rows_per_segment():
    x = torch.arange(24.0).reshape(6, 4)
    mask = torch.tensor([False, True, True, False, True, False])
    y = apply_corruption(x, mask, CorruptionSpec(method="reverse"), seed=0)
    assert contiguous_segments(mask) == [(1, 3), (4, 5)]
    # reversal happens inside each contiguous span, never across the unmasked token between them
    assert torch.equal(y, x[[0, 2, 1, 3, 4, 5]])
    noisy = apply_corruption(x, mask, CorruptionSpec(strength=1.0), seed=7)
    assert torch.equal(noisy[~mask], x[~mask]) and not torch.equal(noisy[mask], x[mask])
    assert torch.equal(noisy, apply_corruption(x, mask, CorruptionSpec(strength=1.0), seed=7))


def test_seed_from_text_is_stable_and_text_sensitive():
    assert seed_from_text("abc") == seed_from_text("abc")
    assert seed_from_text("abc") != seed_from_text("abd")
    assert 0 <= seed_from_text("x") < 2**63


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"method": "gaussian"}, "Valid methods: rand_noise, zero_out, flip_sign, reverse, shuffle"),
        ({"strength": -1}, "corruption.strength: Input should be greater than or equal to 0"),
        ({"strength": float("nan")}, "corruption.strength"),
        ({"dims": 0}, "corruption.dims"),
        ({"method": "rand_noise", "sigma": 1}, "corruption.sigma: Extra inputs are not permitted"),
        (3, "expected a mapping"),
    ],
)
def test_bad_corruption_settings_name_the_field(value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        CorruptionSpec.parse(value)


def test_corruption_accepts_method_shorthand():
    assert CorruptionSpec.parse("flip_sign").method == "flip_sign"


def test_noise_keeps_its_direction_across_strengths_so_the_search_sees_a_smooth_objective():
    import torch

    from eco_rails.engine.corruption.functions import apply_corruption
    from eco_rails.engine.corruption.spec import corruption_seed

    weak, strong = CorruptionSpec(strength=0.5), CorruptionSpec(strength=2.0)
    assert corruption_seed("prompt", weak) == corruption_seed("prompt", strong)
    assert corruption_seed("prompt", weak) != corruption_seed("prompt", CorruptionSpec(strength=0.5, dims=8))
    assert corruption_seed("prompt", weak) != corruption_seed("other prompt", weak)
    embeds, mask = torch.randn(5, 16), torch.tensor([False, True, True, True, False])
    delta_weak = apply_corruption(embeds, mask, weak, corruption_seed("prompt", weak)) - embeds
    delta_strong = apply_corruption(embeds, mask, strong, corruption_seed("prompt", strong)) - embeds
    assert torch.allclose(delta_strong, 4 * delta_weak, atol=1e-5)
