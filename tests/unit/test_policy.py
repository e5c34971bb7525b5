"""Forget policies: validation with errors that name file, field and fix; the shipped JSON schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from eco_rails.errors import ConfigError
from eco_rails.policy import SCHEMA_PATH, ForgetPolicy, load_policy, policy_json_schema
from tests.conftest import REPO

HP_POLICY = REPO / "rails_configs" / "harry_potter" / "policy.yml"
VALID = {
    "name": "demo",
    "version": "1",
    "targets": [{"id": "topic", "description": "A topic.", "examples": ["What is the topic?"]}],
}


def write(tmp_path, data, name="policy.yml"):
    """Write a policy next to copies of the demo policy's included files (entities, homonyms, ...)."""
    import shutil

    for included in ("entities.yml", "neighbour_entities.yml", "homonyms.txt"):
        if not (tmp_path / included).exists():
            shutil.copy(HP_POLICY.parent / included, tmp_path / included)
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def test_demo_policy_loads_and_hash_ignores_formatting(tmp_path):
    policy = load_policy(HP_POLICY)
    assert policy.name == "harry_potter" and policy.targets[0].id == "harry-potter"
    assert len(policy.targets[0].examples) > 150 and len(policy.keep) > 40
    reformatted = write(tmp_path, yaml.safe_dump(yaml.safe_load(HP_POLICY.read_text()), sort_keys=True))
    assert load_policy(reformatted).content_hash() == policy.content_hash()
    edited = yaml.safe_load(HP_POLICY.read_text())
    edited["keep"].append("Who wrote Beowulf?")
    assert load_policy(write(tmp_path, edited)).content_hash() != policy.content_hash()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(targets=[]), r"targets: List should have at least 1 item.*add at least one entry"),
        (lambda d: d["targets"].append(dict(d["targets"][0])), r"duplicate target ids \['topic'\]"),
        (lambda d: d["targets"][0].update(examples=[]), r"targets\.0\.examples: List should have at least 1 item"),
        (lambda d: d["targets"][0].update(examples=["  "]), r"targets\.0\.examples\.0: String should have at least 1 character"),
        (lambda d: d.update(classifier={"target_fpr": 0}), r"classifier\.target_fpr: Input should be greater than 0"),
        (lambda d: d.update(classifier={"target_fpr": 0.6}), r"classifier\.target_fpr: Input should be less than or equal to 0\.5"),
        (lambda d: d.update(classifer={}), r"classifer: Extra inputs are not permitted.*did you mean `classifier`\? valid keys here: classifier, "),
        (lambda d: d["targets"][0].update(id="Harry Potter"), r"targets\.0\.id: String should match pattern"),
        (lambda d: d.update(corruption={"strength": -1}), r"corruption\.strength"),
        (lambda d: d.update(corruption={"method": "blur"}), r"corruption\.method"),
        (lambda d: d.pop("version"), r"version: Field required"),
    ],
)
def test_bad_policies_name_file_field_and_fix(tmp_path, mutate, message):
    data = json.loads(json.dumps(VALID))
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_unquoted_colon_gets_a_yaml_hint(tmp_path):
    text = "name: demo\nversion: 1\ntargets:\n  - id: t\n    description: d\n    examples:\n      - HP books: who is it?\n"
    with pytest.raises(ConfigError, match="quote the line"):
        load_policy(write(tmp_path, text))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"name: demo\n\xff\xfe bad", "is not UTF-8"), (b"name: [unclosed", "is not valid YAML"), (b"- a\n- b\n", "must be a YAML mapping")],
)
def test_unreadable_policy_files(tmp_path, content, message):
    path = tmp_path / "policy.yml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_policy(path)


def test_missing_policy_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nope.yml")


def test_shipped_json_schema_is_current_and_validates_the_demo():
    assert json.loads(SCHEMA_PATH.read_text()) == policy_json_schema(), "run `eco-rails policy-schema --out eco_rails/schemas/forget_policy.schema.json`"
    jsonschema.validate(yaml.safe_load(HP_POLICY.read_text()), policy_json_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "version": "1", "targets": []}, policy_json_schema())


def test_corruption_settings_auto_and_number():
    policy = ForgetPolicy.model_validate(VALID)
    assert policy.corruption.strength == "auto"
    assert policy.corruption.spec(learned_strength=0.8).strength == 0.8
    fixed = ForgetPolicy.model_validate({**VALID, "corruption": {"strength": 0.3}})
    assert fixed.corruption.spec(learned_strength=0.8).strength == 0.3
