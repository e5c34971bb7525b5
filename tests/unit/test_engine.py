"""The engine's generation settings, checked without loading a model."""

from __future__ import annotations

import pytest

from eco_rails import GenerationSettings


def test_min_new_tokens_above_max_is_a_clear_error():
    from eco_rails.errors import ConfigError

    with pytest.raises(ConfigError, match="min_new_tokens"):
        GenerationSettings.parse({"max_new_tokens": 4, "min_new_tokens": 8})
