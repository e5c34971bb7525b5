"""resolve_config: one rails config folder -> settings, policy, artifact status, main model; and the manifest schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from eco_rails.atomic import write_text_atomic
from eco_rails.classifier.artifact import (
    MANIFEST,
    SCHEMA_PATH,
    ArtifactManifest,
    SplitMetrics,
    manifest_json_schema,
)
from eco_rails.errors import ConfigError, StaleArtifactError
from eco_rails.rails.resolved import resolve_config, uses_eco_rail

REPO = Path(__file__).resolve().parents[2]
WIZARD = REPO / "tests" / "configs" / "wizard_school"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    root = tmp_path / "wizard_school"
    shutil.copytree(WIZARD, root)
    return root


def manifest_for(resolved, **overrides) -> ArtifactManifest:
    policy = resolved.policy
    values = dict(
        policy_name=policy.name, policy_version=policy.version, policy_hash=policy.content_hash(),
        labels=["none", *policy.target_ids], threshold=0.9, target_fpr=0.05, max_length=128, context_turns=1,
        max_prompt_chars=200_000, backbone="all-minilm-l6-v2",
        metrics={"test": SplitMetrics(n_negative=10, n_positive=10, fpr=0.0, tpr=1.0)},
        versions={"python": "3"}, created_at="2026-01-01T00:00:00+00:00", seed=0,
    )
    values.update(overrides)
    return ArtifactManifest(**values)


def test_a_config_resolves_to_its_policy_artifact_and_main_model(config):
    resolved = resolve_config(config)
    assert resolved.policy.name == "wizard_school"
    assert resolved.policy_path == (config / "policy.yml").resolve()
    assert resolved.artifact_path == (config / "onnx" / "wizard_school").resolve()
    assert resolved.main_model.engine == "eco" and resolved.main_model.model == "smollm2-135m"
    assert resolved.main_model.parameters == {"max_new_tokens": 24}
    assert uses_eco_rail(config) and not uses_eco_rail(REPO / "rails_configs" / "smollm2_plain")


def test_artifact_status_is_missing_then_ok_then_stale_when_the_policy_changes(config):
    resolved = resolve_config(config)
    assert resolved.status() == "missing"
    write_text_atomic(resolved.artifact_path / MANIFEST, manifest_for(resolved).model_dump_json())
    assert resolved.status() == "ok"
    assert resolved.manifest().policy_name == "wizard_school"
    policy = (config / "policy.yml").read_text().replace('version: "1"', 'version: "2"')
    (config / "policy.yml").write_text(policy)
    changed = resolve_config(config)
    assert changed.status() == "stale"
    with pytest.raises(StaleArtifactError, match="another version of policy 'wizard_school'.*eco-rails fit"):
        changed.manifest()


def test_an_artifact_of_another_policy_is_named_as_such(config):
    resolved = resolve_config(config)
    other = manifest_for(resolved, policy_name="star_wars", policy_hash="0" * 64)
    write_text_atomic(resolved.artifact_path / MANIFEST, other.model_dump_json())
    assert resolved.status() == "stale"
    with pytest.raises(StaleArtifactError, match="for another policy, 'star_wars'"):
        resolved.manifest()


def test_bad_folders_and_settings_are_clear_errors(tmp_path, config):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no config.yml"):
        resolve_config(tmp_path)
    text = (config / "config.yml").read_text().replace("policy: policy.yml", "policy: policy.yml\n    on_flg: refuse")
    (config / "config.yml").write_text(text)
    with pytest.raises(ConfigError, match=r"custom_data\.eco\.on_flg: Extra inputs are not permitted.*did you mean `on_flag`\?"):
        resolve_config(config)


def test_the_shipped_manifest_schema_is_current_and_validates_a_manifest(config):
    assert json.loads(SCHEMA_PATH.read_text()) == manifest_json_schema(), \
        "run `eco-rails manifest-schema --out eco_rails/schemas/artifact_manifest.schema.json`"
    manifest = json.loads(manifest_for(resolve_config(config)).model_dump_json())
    jsonschema.validate(manifest, manifest_json_schema())
    described = manifest_json_schema()["properties"]
    assert all("description" in field for field in described.values()), "every manifest field has a description"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**manifest, "threshold": "high"}, manifest_json_schema())


def test_fitting_a_copied_config_never_overwrites_another_policys_artifact(config):
    """A copy of a demo config keeps its artifact path: fit must refuse (before any work) rather than replace
    the other policy's classifier, and say what happened and how to fix it."""
    from eco_rails.classifier.fit import fit_policy
    from eco_rails.errors import ArtifactError

    resolved = resolve_config(config)
    other = manifest_for(resolved, policy_name="harry_potter", policy_version="3")
    write_text_atomic(resolved.artifact_path / MANIFEST, other.model_dump_json())
    before = (resolved.artifact_path / MANIFEST).read_bytes()
    with pytest.raises(ArtifactError) as caught:
        fit_policy(resolved.policy_path, resolved.artifact_path, fix=str(config))
    message = str(caught.value)
    assert "another policy, 'harry_potter'" in message and "'wizard_school'" in message
    assert "custom_data.eco.artifact" in message and f"eco-rails fit {config} --replace-other-policy" in message
    assert (resolved.artifact_path / MANIFEST).read_bytes() == before, "the other policy's artifact is untouched"


def test_an_older_version_of_the_same_policy_is_not_refused(config):
    from eco_rails.classifier.artifact import refuse_other_policy

    resolved = resolve_config(config)
    write_text_atomic(resolved.artifact_path / MANIFEST, manifest_for(resolved, policy_hash="0" * 64, policy_version="0").model_dump_json())
    refuse_other_policy(resolved.artifact_path, resolved.policy, resolved.policy_path)  # no error: a normal re-fit
