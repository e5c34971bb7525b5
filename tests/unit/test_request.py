"""eco_rails.providers.request: how both providers read `eco_flag` and decide whether a call is corrupted."""

from __future__ import annotations

import pytest

from eco_rails import FlagDecision
from eco_rails.engine.corruption import CorruptionSpec
from eco_rails.errors import ConfigError
from eco_rails.providers.markers import mark_span
from eco_rails.providers.request import explicit_flag, resolve_request
from eco_rails.providers.settings import ProviderFields

QUESTION = "Who is Dumbledore?"


def test_no_eco_flag_means_not_given():
    assert explicit_flag(None) is None


def test_a_flag_decision_is_used_as_it_is():
    decision = FlagDecision.flag("Dumbledore", score=0.9)
    assert explicit_flag(decision) is decision


def test_true_and_false_mean_corrupt_and_clean():
    assert explicit_flag(True) == FlagDecision.flag() and explicit_flag(True).flagged
    assert explicit_flag(False) == FlagDecision.clean() and not explicit_flag(False).flagged


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, 0.0, [], {"flagged": True}])
def test_anything_else_is_a_config_error(value):
    # truthy strings and numbers are not guessed at: a typo must not silently corrupt or skip corruption
    with pytest.raises(ConfigError, match=r"eco_flag must be a FlagDecision, True or False, got " + type(value).__name__):
        explicit_flag(value)


def test_a_bad_eco_flag_fails_the_request():
    with pytest.raises(ConfigError, match="eco_flag must be"):
        resolve_request(QUESTION, ProviderFields(), call_kwargs={"eco_flag": "yes"})


class KeywordDecider:
    def decide(self, messages):
        return FlagDecision(flagged="Dumbledore" in messages[-1]["content"])


def test_eco_flag_comes_before_rail_markers_and_the_decider():
    settings = ProviderFields()
    marked = f"User: {mark_span(QUESTION)}"
    forced_clean = resolve_request(marked, settings, call_kwargs={"eco_flag": False}, flag_decider=KeywordDecider())
    assert not forced_clean.flag.flagged and forced_clean.prompt == f"User: {QUESTION}", "markers are stripped anyway"
    by_markers = resolve_request(marked, settings, flag_decider=None)
    assert by_markers.flag.flagged and by_markers.flag.spans == (QUESTION,)
    by_decider = resolve_request(QUESTION, settings, flag_decider=KeywordDecider())
    assert by_decider.flag.flagged and by_decider.prompt == QUESTION
    clean = resolve_request("What is 2 plus 2?", settings, flag_decider=KeywordDecider())
    assert not clean.flag.flagged
    assert not resolve_request(QUESTION, settings).flag.flagged, "no flag source: a clean call"


def test_call_parameters_merge_into_the_settings_and_unknown_ones_are_ignored():
    settings = ProviderFields(max_new_tokens=64, temperature=0.7, corruption=CorruptionSpec(strength=0.3))
    request = resolve_request([{"role": "user", "content": QUESTION}], settings, stop=["\n"],
                              call_kwargs={"max_tokens": 8, "temperature": 0.1, "logprobs": True, "eco_flag": True})
    assert request.settings.max_new_tokens == 8 and request.settings.temperature == pytest.approx(0.1)
    assert request.settings.stop == ("\n",) and request.corruption.strength == 0.3
    assert request.engine_kwargs()["flag"].flagged
