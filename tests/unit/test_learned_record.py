"""The learned corruption recorded beside the policy (policy.learned.json): written, found, and refused when stale."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from eco_rails.errors import ConfigError
from eco_rails.policy import load_policy
from eco_rails.policy.learned import learned_path, lookup_learned, model_identity, new_entry, read_learned, write_learned
from tests.conftest import WIZARD_SCHOOL


@pytest.fixture
def policy_dir(tmp_path):
    shutil.copytree(WIZARD_SCHOOL, tmp_path / "cfg", ignore=shutil.ignore_patterns("onnx", "__pycache__"))
    return tmp_path / "cfg"


def _record(policy_dir, model="smollm2-135m", strength=0.7):
    path = policy_dir / "policy.yml"
    policy = load_policy(path)
    data = (policy_dir / str(policy.optimization.data)).read_bytes()
    write_learned(learned_path(path), policy, model, new_entry(policy, data, {"wizard-school": strength}, "surrogate", {"evaluations": 5}))
    return path


def test_a_recorded_strength_is_found_for_its_model_only(policy_dir):
    path = _record(policy_dir)
    assert learned_path(path).name == "policy.learned.json"
    found = lookup_learned(load_policy(path), path, "smollm2-135m")
    assert found.status == "learned" and found.strengths == {"wizard-school": 0.7}
    other = lookup_learned(load_policy(path), path, "qwen2-0.5b")
    assert other.status == "missing" and "smollm2-135m" in other.detail


def test_a_second_model_adds_an_entry_and_keeps_the_first(policy_dir):
    _record(policy_dir, model="a", strength=0.3)
    path = _record(policy_dir, model="b", strength=0.9)
    record = read_learned(learned_path(path))
    assert {m: e.strengths["wizard-school"] for m, e in record.models.items()} == {"a": 0.3, "b": 0.9}


def test_editing_examples_keeps_the_strength_but_new_key_terms_or_data_make_it_stale(policy_dir):
    path = _record(policy_dir)
    raw = yaml.safe_load(path.read_text())
    raw["targets"][0]["examples"].append("Who teaches potions at the wizard school?")
    path.write_text(yaml.safe_dump(raw))
    assert lookup_learned(load_policy(path), path, "smollm2-135m").status == "learned", "a re-fit does not need a new strength"
    raw["targets"][0]["key_terms"].append("Gringotts")
    path.write_text(yaml.safe_dump(raw))
    stale = lookup_learned(load_policy(path), path, "smollm2-135m")
    assert stale.status == "stale" and not stale.strengths and "changed" in stale.detail
    path = _record(policy_dir)  # re-learned: fresh again
    data = policy_dir / "optimize.jsonl"
    data.write_text(data.read_text() + data.read_text().splitlines()[0] + "\n")
    assert lookup_learned(load_policy(path), path, "smollm2-135m").status == "stale"


def test_a_broken_record_is_a_clear_error_naming_the_file_and_the_fix(policy_dir):
    path = policy_dir / "policy.yml"
    learned_path(path).write_text('{"schema_version": 1, "policy": "x", "models": {"m": {"key": 3}}}')
    with pytest.raises(ConfigError, match=r"policy\.learned\.json.*eco-rails optimize"):
        lookup_learned(load_policy(path), path, "m")


def test_an_adapter_gets_its_own_identity_from_its_weights(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"one")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "adapter_model.safetensors").write_bytes(b"two")
    assert model_identity("smollm2-135m") == "smollm2-135m"
    assert model_identity("smollm2-135m", tmp_path / "a") != model_identity("smollm2-135m", tmp_path / "b")
    assert model_identity("smollm2-135m", tmp_path / "a").startswith("smollm2-135m+adapter:")


def test_the_demo_ships_a_fresh_learned_strength_and_the_chat_says_which_it_uses(tmp_path):
    """The committed policy.learned.json matches the demo policy (else a fresh clone falls back to the default)."""
    from eco_rails.cli.chat import corruption_line
    from eco_rails.rails.resolved import resolve_config
    from tests.conftest import REPO

    demo = REPO / "rails_configs" / "harry_potter"
    found = lookup_learned(load_policy(demo / "policy.yml"), demo / "policy.yml", "smollm2-135m")
    assert found.status == "learned", f"{found.detail}: run `eco-rails optimize rails_configs/harry_potter` and commit policy.learned.json"
    assert "learned" in corruption_line(resolve_config(demo)) and "policy.learned.json" in corruption_line(resolve_config(demo))
    copy = tmp_path / "hp"
    shutil.copytree(demo, copy)
    raw = yaml.safe_load((copy / "policy.yml").read_text())
    raw["targets"][0]["key_terms"].append("Grubbly-Plank Academy")
    (copy / "policy.yml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    line = corruption_line(resolve_config(copy))
    assert "DEFAULT strength 0.5" in line and "eco-rails optimize" in line and "changed" in line


def test_the_strength_source_is_the_record_then_the_artifact_then_none(policy_dir):
    from eco_rails.policy.learned import ARTIFACT_DETAIL, strength_source

    path = policy_dir / "policy.yml"
    policy = load_policy(path)
    none = strength_source(policy, path, "smollm2-135m", {}, policy_dir / "onnx")
    assert none.status == "missing"
    artifact = strength_source(policy, path, "smollm2-135m", {"wizard-school": 0.2}, policy_dir / "onnx")
    assert (artifact.status, artifact.strengths, artifact.detail) == ("learned", {"wizard-school": 0.2}, ARTIFACT_DETAIL)
    _record(policy_dir, strength=0.7)
    record = strength_source(policy, path, "smollm2-135m", {"wizard-school": 0.2}, policy_dir / "onnx")
    assert record.strengths == {"wizard-school": 0.7} and record.path.endswith("policy.learned.json"), "the record wins"


def test_the_retain_objective_needs_a_retain_model_and_a_new_reference_makes_the_strength_stale(policy_dir):
    path = policy_dir / "policy.yml"
    raw = yaml.safe_load(path.read_text())
    raw["optimization"]["objective"] = "retain"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="retain_model") as missing:
        load_policy(path)
    assert "policy.yml" in str(missing.value) and "objective: surrogate" in str(missing.value)
    raw["optimization"] = {**raw["optimization"], "objective": "surrogate", "retain_model": "retain-adapter"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="objective: retain only"):
        load_policy(path)
    raw["optimization"]["objective"] = "retain"
    path.write_text(yaml.safe_dump(raw))
    _record(policy_dir)
    assert lookup_learned(load_policy(path), path, "smollm2-135m").status == "learned"
    raw["optimization"]["retain_model"] = "another-retain-adapter"
    path.write_text(yaml.safe_dump(raw))
    assert lookup_learned(load_policy(path), path, "smollm2-135m").status == "stale", "matched to another reference"



def test_the_policy_hash_counts_retain_model_only_when_it_is_set(policy_dir):
    """Fitted artifacts record the policy's hash; a field added later must not make every one of them stale while
    unset, and must count once set."""
    path = policy_dir / "policy.yml"
    policy = load_policy(path)
    assert "retain_model" not in json.dumps(policy.model_dump(exclude={"optimization"}))
    unset = policy.content_hash()
    with_model = policy.model_copy(update={"optimization": policy.optimization.model_copy(
        update={"objective": "retain", "retain_model": "retain-adapter"})})
    retain_only = policy.model_copy(update={"optimization": policy.optimization.model_copy(update={"objective": "retain"})})
    assert with_model.content_hash() != retain_only.content_hash() != unset
