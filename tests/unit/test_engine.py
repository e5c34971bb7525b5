"""The engine's generation settings, checked without loading a model."""

from __future__ import annotations

import pytest

from eco_rails import GenerationSettings


def test_min_new_tokens_above_max_is_a_clear_error():
    from eco_rails.errors import ConfigError

    with pytest.raises(ConfigError, match="min_new_tokens"):
        GenerationSettings.parse({"max_new_tokens": 4, "min_new_tokens": 8})


def test_anti_repetition_settings_reach_hugging_face_generate_only_when_set():
    plain = GenerationSettings().hf_kwargs()
    assert "repetition_penalty" not in plain and "no_repeat_ngram_size" not in plain
    tuned = GenerationSettings(repetition_penalty=1.3, no_repeat_ngram_size=4).hf_kwargs()
    assert tuned["repetition_penalty"] == 1.3 and tuned["no_repeat_ngram_size"] == 4


def test_repetition_penalty_below_one_is_refused_naming_the_field():
    from eco_rails.errors import ConfigError

    with pytest.raises(ConfigError, match="repetition_penalty"):
        GenerationSettings.parse({"repetition_penalty": 0.5})


def test_provider_parameters_carry_anti_repetition_settings_into_every_call():
    from eco_rails.providers.settings import ProviderSettings

    settings = ProviderSettings.parse({"repetition_penalty": 1.2, "no_repeat_ngram_size": 3}).generation(temperature=0.001)
    assert (settings.repetition_penalty, settings.no_repeat_ngram_size, settings.greedy) == (1.2, 3, True)


def test_flagged_answers_get_the_repetition_guard_by_default_and_it_can_be_turned_off():
    from eco_rails.engine.generation import FLAGGED_NO_REPEAT_NGRAM
    from eco_rails.providers.settings import ProviderSettings

    assert GenerationSettings().flagged_no_repeat_ngram_size == FLAGGED_NO_REPEAT_NGRAM >= 2
    assert "flagged_no_repeat_ngram_size" not in GenerationSettings().hf_kwargs(), "never reaches unflagged generate"
    off = ProviderSettings.parse({"flagged_no_repeat_ngram_size": 0}).generation()
    assert off.flagged_no_repeat_ngram_size == 0


def test_every_configured_decoding_field_reaches_each_call():
    """A decoding field declared in GenerationFields must not be dropped between models[].parameters and a call."""
    from eco_rails.engine.generation import GenerationFields
    from eco_rails.providers.settings import ProviderSettings

    configured = {"max_new_tokens": 40, "min_new_tokens": 2, "temperature": 0.7, "top_p": 0.9, "stop": ["END"], "seed": 7,
                  "repetition_penalty": 1.3, "no_repeat_ngram_size": 5, "flagged_no_repeat_ngram_size": 6,
                  "flagged_repetition_ignore_case": True, "flagged_repetition_penalty": 1.2}
    assert set(configured) == set(GenerationFields.model_fields), "a new decoding field needs a value here"
    call = ProviderSettings.parse(configured).generation()
    assert {name: getattr(call, name) for name in configured} == {**configured, "stop": ("END",)}


def test_a_configs_decoding_settings_leave_its_other_provider_keys_out_and_take_overrides():
    from eco_rails.errors import ConfigError

    params = {"max_new_tokens": 128, "repetition_penalty": 1.2, "corruption": {"method": "rand_noise"}, "device": "cpu"}
    gen = GenerationSettings.from_parameters(params, source="cfg: models[].parameters", max_new_tokens=16, stop=())
    assert (gen.max_new_tokens, gen.repetition_penalty, gen.stop) == (16, 1.2, ())
    with pytest.raises(ConfigError, match=r"cfg: models\[\]\.parameters"):
        GenerationSettings.from_parameters({"top_p": 2.0}, source="cfg: models[].parameters")
