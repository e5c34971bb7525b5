"""EcoChatModel's settings are validated before any model is loaded."""

from __future__ import annotations

import pytest

from eco_rails import EcoChatModel


def test_bad_settings_are_rejected():
    # pydantic wraps our ConfigError in its ValidationError (a ValueError), as for any LangChain model
    with pytest.raises(ValueError, match=r"EcoChatModel\.top_p: Input should be less than or equal to 1"):
        EcoChatModel(model="smollm2-135m", top_p=1.5)
