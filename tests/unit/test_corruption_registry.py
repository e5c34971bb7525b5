"""eco_rails.engine.corruption.registry: corruption methods registered by name, built in or the user's own."""

from __future__ import annotations

import pytest
import torch

from eco_rails.engine.corruption import (
    CorruptionSpec,
    apply_corruption,
    corruption_method_names,
    get_corruption_method,
    register_corruption_method,
    registry,
)
from eco_rails.errors import ConfigError

BUILT_IN = ("rand_noise", "zero_out", "flip_sign", "reverse", "shuffle")


@pytest.fixture
def custom_names():
    """Names this test registers; removed from the registry afterwards so other tests see only the built-ins."""
    names: list[str] = []
    yield names
    for name in names:
        registry._METHODS.pop(name, None)


def scale(block: torch.Tensor, *, strength: float) -> torch.Tensor:
    return block * strength


def test_a_custom_method_is_applied_to_flagged_rows_only(custom_names):
    custom_names.append("test_scale")
    register_corruption_method("test_scale", scale, uses_strength=True, description="multiply by strength")
    x = torch.arange(12.0).reshape(4, 3)
    mask = torch.tensor([False, True, True, False])
    y = apply_corruption(x, mask, CorruptionSpec(method="test_scale", strength=3.0), seed=0)
    assert torch.equal(y[mask], x[mask] * 3.0) and torch.equal(y[~mask], x[~mask])
    assert torch.equal(x, torch.arange(12.0).reshape(4, 3)), "the input is not modified in place"


def test_a_method_gets_only_the_settings_it_declares(custom_names):
    seen: list[dict] = []

    def record(block: torch.Tensor, **kwargs) -> torch.Tensor:
        seen.append(kwargs)
        return block

    custom_names += ["test_plain", "test_everything"]
    register_corruption_method("test_plain", record)
    register_corruption_method("test_everything", record, uses_strength=True, uses_dims=True, seeded=True)
    x, mask = torch.ones(3, 4), torch.tensor([True, False, True])  # two segments: the method runs twice
    apply_corruption(x, mask, CorruptionSpec(method="test_plain"), seed=0)
    assert seen == [{}, {}]
    seen.clear()
    apply_corruption(x, mask, CorruptionSpec(method="test_everything", strength=0.2, dims=2, select="top_k"), seed=0)
    assert len(seen) == 2 and set(seen[0]) == {"strength", "dims", "select", "generator"}
    assert (seen[0]["strength"], seen[0]["dims"], seen[0]["select"]) == (0.2, 2, "top_k")
    assert isinstance(seen[0]["generator"], torch.Generator)


def test_a_registered_method_is_valid_in_settings_and_listed(custom_names):
    custom_names.append("test_listed")
    register_corruption_method("test_listed", scale, uses_strength=True)
    assert corruption_method_names()[: len(BUILT_IN)] == BUILT_IN and "test_listed" in corruption_method_names()
    assert CorruptionSpec.parse({"method": "test_listed", "strength": 2}).method == "test_listed"
    with pytest.raises(ConfigError, match="Valid methods: rand_noise, zero_out, flip_sign, reverse, shuffle, test_listed"):
        CorruptionSpec.parse({"method": "test_unlisted"})


def test_registering_a_taken_name_is_a_config_error(custom_names):
    with pytest.raises(ConfigError, match="'rand_noise' is already registered; pass replace=True"):
        register_corruption_method("rand_noise", scale)
    custom_names.append("test_twice")
    register_corruption_method("test_twice", scale, uses_strength=True)
    with pytest.raises(ConfigError, match="already registered"):
        register_corruption_method("test_twice", scale)
    register_corruption_method("test_twice", lambda block: -block, replace=True)
    x = torch.ones(2, 2)
    assert torch.equal(apply_corruption(x, torch.tensor([True, True]), CorruptionSpec(method="test_twice"), seed=0), -x)
    with pytest.raises(ConfigError, match="use letters, digits and '_'"):
        register_corruption_method("bad name!", scale)


@pytest.mark.parametrize("value", [{"method": "gaussian"}, "gaussian", {"method": "Rand_Noise"}])
def test_an_unknown_method_name_lists_the_valid_methods(value):
    with pytest.raises(ConfigError, match=r"corruption\.method: .*Valid methods: rand_noise, zero_out, flip_sign, reverse, shuffle"):
        CorruptionSpec.parse(value)
    with pytest.raises(ConfigError, match="Unknown corruption method 'gaussian'. Valid methods: rand_noise"):
        get_corruption_method("gaussian")


def test_built_in_methods_are_registered_by_import_path():
    # so that reading settings (policies, rails configs) does not import torch; the function loads on use
    method = get_corruption_method("rand_noise")
    assert method.function == "eco_rails.engine.corruption.functions:rand_noise"
    assert (method.uses_strength, method.uses_dims, method.seeded) == (True, True, True)
    from eco_rails.engine.corruption.functions import rand_noise

    assert method.resolve() is rand_noise
