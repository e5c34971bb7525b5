"""eco_rails.caches: one hook that clears the process caches (engines, rail runtimes) by name."""

from __future__ import annotations

import pytest

from eco_rails import caches
from eco_rails.caches import register_cache, reset_caches
from tests.conftest import WIZARD_SCHOOL


@pytest.fixture
def counting_cache():
    """A cache of this test's own, registered through the public hook and removed afterwards."""
    calls: list[int] = []
    register_cache("test-counting-cache", lambda: calls.append(1))
    yield calls
    del caches._CLEARERS["test-counting-cache"]


def test_an_unknown_cache_name_raises_key_error_and_clears_nothing(counting_cache):
    with pytest.raises(KeyError, match="no-such-cache"):
        reset_caches("no-such-cache")
    with pytest.raises(KeyError, match="no-such-cache"):
        reset_caches("test-counting-cache", "no-such-cache")
    assert counting_cache == [], "nothing is cleared when any name is unknown"


def test_named_caches_are_cleared_and_reported(counting_cache):
    assert reset_caches("test-counting-cache") == ["test-counting-cache"]
    assert counting_cache == [1]


def test_resetting_rail_runtimes_gives_a_fresh_runtime(fresh_caches):
    from nemoguardrails import RailsConfig

    from eco_rails.rails.runtime import runtime_for

    config = RailsConfig.from_path(str(WIZARD_SCHOOL))  # reads the config only: no classifier or model is loaded
    first = runtime_for(config)
    assert runtime_for(config) is first, "one runtime per rails config per process"
    assert reset_caches("rail_runtimes") == ["rail_runtimes"]
    assert runtime_for(config) is not first
