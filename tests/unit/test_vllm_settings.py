"""The vllm backend's settings and pure request pieces (no server, no model): `pytest -k vllm`."""

from __future__ import annotations

import pytest

from eco_rails.engine.generation import GenerationSettings
from eco_rails.engine.vllm_backend import VllmSettings, is_loopback, sampling_body
from eco_rails.errors import ConfigError
from eco_rails.providers.settings import ProviderSettings


def test_merge_adapter_without_an_adapter_names_the_fix():
    with pytest.raises(ConfigError, match=r"merge_adapter is set but there is no adapter to merge; add `adapter: <folder>`"):
        ProviderSettings.parse({"merge_adapter": True})
    assert ProviderSettings.parse({"adapter": "bot", "merge_adapter": True}).merge_adapter is True


def test_vllm_backend_needs_its_server_settings_and_names_the_fix():
    with pytest.raises(ConfigError, match=r"backend: vllm needs the server"):
        ProviderSettings.parse({"backend": "vllm"})
    with pytest.raises(ConfigError, match=r"add `backend: vllm`"):
        ProviderSettings.parse({"vllm": {"url": "http://127.0.0.1:8000"}})
    with pytest.raises(ConfigError, match=r"not an http\(s\) URL"):
        ProviderSettings.parse({"backend": "vllm", "vllm": {"url": "127.0.0.1:8000"}})
    with pytest.raises(ConfigError, match=r"did you mean `served_model`"):
        ProviderSettings.parse({"backend": "vllm", "vllm": {"url": "http://h:1", "served_modle": "x"}})
    with pytest.raises(ConfigError, match=r"adapter is not supported with backend: vllm"):
        ProviderSettings.parse({"backend": "vllm", "vllm": {"url": "http://h:1"}, "adapter": "some/dir"})
    with pytest.raises(ConfigError, match=r"no_repeat_ngram_size is not supported"):
        ProviderSettings.parse({"backend": "vllm", "vllm": {"url": "http://h:1"}, "no_repeat_ngram_size": 3})
    ok = ProviderSettings.parse({"backend": "vllm", "vllm": {"url": "http://10.0.0.5:8000/v1/", "timeout_s": 30}})
    assert ok.vllm is not None and ok.vllm.url == "http://10.0.0.5:8000" and ok.vllm.api_base == "http://10.0.0.5:8000/v1"


def test_vllm_api_key_comes_from_the_named_environment_variable(monkeypatch):
    settings = VllmSettings(url="http://10.0.0.5:8000", api_key_env="ECO_TEST_VLLM_KEY")
    monkeypatch.delenv("ECO_TEST_VLLM_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"ECO_TEST_VLLM_KEY.*not set"):
        settings.api_key()
    monkeypatch.setenv("ECO_TEST_VLLM_KEY", "s3cret")
    assert settings.api_key() == "s3cret"
    assert VllmSettings(url="http://h:1").api_key() is None


@pytest.mark.parametrize("url, loopback", [
    ("http://127.0.0.1:8000", True), ("http://127.8.9.1:8000", True), ("http://[::1]:8000", True),
    ("http://localhost:8000", True), ("http://10.0.0.5:8000", False), ("https://203.0.113.7", False),
    ("http://no-such-host.invalid:8000", False),
])
def test_vllm_loopback_detection_decides_the_start_up_warning(url, loopback):
    assert is_loopback(url) is loopback


def test_vllm_sampling_fields_express_the_generation_settings():
    greedy = sampling_body(GenerationSettings(max_new_tokens=20, stop=("\n\n",), seed=3), flagged=False)
    assert greedy == {"max_tokens": 20, "temperature": 0.0, "stop": ["\n\n"], "seed": 3}
    sampled = sampling_body(GenerationSettings(temperature=0.7, top_p=0.9, repetition_penalty=1.2), flagged=False)
    assert sampled["temperature"] == 0.7 and sampled["top_p"] == 0.9 and sampled["repetition_penalty"] == 1.2
    # As on the local engine, a flagged answer gets a few tokens at least (never longer than max_new_tokens).
    assert sampling_body(GenerationSettings(max_new_tokens=20), flagged=True)["min_tokens"] == 8
    assert sampling_body(GenerationSettings(max_new_tokens=3), flagged=True)["min_tokens"] == 3
    assert "min_tokens" not in sampling_body(GenerationSettings(max_new_tokens=20), flagged=False)


def test_a_flagged_request_on_vllm_says_once_that_the_answer_only_penalty_does_not_run_there(caplog):
    from eco_rails.engine.vllm_backend import _warn_local_only

    _warn_local_only.cache_clear()
    settings = GenerationSettings(max_new_tokens=20, flagged_repetition_penalty=1.2)
    with caplog.at_level("WARNING", logger="eco_rails.engine.vllm_backend"):
        unflagged = sampling_body(settings, flagged=False)
        assert not caplog.records, "an unflagged answer never uses it: nothing to say"
        for _ in range(3):
            flagged = sampling_body(settings, flagged=True)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "flagged_repetition_penalty" in said[0] and "local engine" in said[0], said
    # and the server is not sent vLLM's own repetition_penalty in its place (it would penalise the prompt too)
    assert "repetition_penalty" not in flagged and "repetition_penalty" not in unflagged
