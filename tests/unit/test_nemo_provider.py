"""The `eco` engine's registration with NeMo Guardrails and its parameter checks (no model is loaded)."""

from __future__ import annotations

import pytest

import eco_rails
from eco_rails import EcoLLM
from eco_rails.errors import ConfigError


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temprature": 0.1}, r"models\[\]\.parameters\.temprature: Extra inputs are not permitted"),
        ({"corruption": {"method": "noise"}}, r"models\[\]\.parameters\.corruption\.method.*Valid methods"),
        ({"corruption": {"strength": -0.5}}, r"corruption\.strength: Input should be greater than or equal to 0"),
        ({"max_new_tokens": 0}, r"max_new_tokens"),
    ],
)
def test_bad_provider_parameters_fail_at_construction(params, message):
    with pytest.raises(ConfigError, match=message):
        EcoLLM("smollm2-135m", **params)


def test_import_registers_the_engine():
    from nemoguardrails.llm.providers import get_provider_names

    eco_rails.register_nemo_provider()
    assert "eco" in get_provider_names()
