"""The vllm backend against a real vLLM server started with ``--api-key`` (the deployment README asks for):
the provider sends the token named by ``vllm.api_key_env``, and a missing or wrong token fails clearly.

Its own module, so its server starts after tests/integration/test_vllm.py's has stopped (one at a time).
`pytest -k vllm` selects it.
"""

from __future__ import annotations

import secrets

import pytest

from eco_rails.engine.corruption import CorruptionSpec
from eco_rails.engine.flags import FlagDecision
from eco_rails.engine.generation import GenerationSettings
from eco_rails.errors import BackendError
from tests.integration.test_vllm import _engine, serve_vllm

TOKEN = secrets.token_hex(16)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SHORT = GenerationSettings(max_new_tokens=8)


@pytest.fixture(scope="module")
def authed_vllm_server(tmp_path_factory):
    # /v1/* needs the key; /version does not, so readiness is probed there
    yield from serve_vllm(tmp_path_factory, "--api-key", TOKEN, ready_path="/version")


def test_vllm_backend_sends_the_api_key_from_the_named_environment_variable(authed_vllm_server, monkeypatch):
    base, model_dir = authed_vllm_server
    monkeypatch.setenv("ECO_TEST_VLLM_KEY", TOKEN)
    engine = _engine(base, model_dir, api_key_env="ECO_TEST_VLLM_KEY")
    assert engine.generate(QUESTION, settings=SHORT).text  # plain chat completion, authenticated
    flagged = engine.generate(QUESTION, flag=FlagDecision.flag(), corruption=CorruptionSpec(strength=0.5), settings=SHORT)
    assert flagged.flagged and flagged.text  # prompt embeddings, authenticated
    assert "".join(engine.stream(QUESTION, settings=SHORT))


@pytest.mark.parametrize("key", [None, "wrong-token"])
def test_vllm_server_refusing_the_key_fails_the_request_with_the_fix(authed_vllm_server, monkeypatch, key):
    base, model_dir = authed_vllm_server
    if key is None:
        engine = _engine(base, model_dir)  # no api_key_env: the server answers 401
    else:
        monkeypatch.setenv("ECO_TEST_VLLM_KEY", key)
        engine = _engine(base, model_dir, api_key_env="ECO_TEST_VLLM_KEY")
    for flag in (None, FlagDecision.flag()):
        with pytest.raises(BackendError, match=r"HTTP 401.*api_key_env"):
            engine.generate(QUESTION, flag=flag, corruption=CorruptionSpec(strength=0.5), settings=SHORT)
