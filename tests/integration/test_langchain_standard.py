"""LangChain's standard chat-model tests (``langchain-tests``), run against EcoChatModel on the real SmolLM2.

The integration suite needs no network here: the model is local. Capabilities the engine does not have
(tool calling, structured output, images, audio, PDFs, per-call model override) are declared off, so
those tests are skipped by the suite itself.
"""

from __future__ import annotations

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from eco_rails import EcoChatModel

PARAMS = {"model": "smollm2-135m", "device": "cpu", "max_new_tokens": 24}


class _EcoChatModelUnderTest:
    """What both suites need to know: the class, its parameters, and what it does not support."""

    @property
    def chat_model_class(self) -> type[EcoChatModel]:
        return EcoChatModel

    @property
    def chat_model_params(self) -> dict:
        return dict(PARAMS)

    @property
    def supports_model_override(self) -> bool:
        return False  # one local model per instance; build another EcoChatModel for another model


class TestEcoChatModelUnit(_EcoChatModelUnderTest, ChatModelUnitTests):
    pass


class TestEcoChatModelIntegration(_EcoChatModelUnderTest, ChatModelIntegrationTests):
    pass
