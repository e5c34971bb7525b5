"""The classifier artifact on disk (``onnx/<policy-name>/``) and its ``manifest.json``.

An artifact is written with :func:`eco_rails.atomic.atomic_directory` (a temporary sibling directory,
then one rename), so readers see either the old complete artifact or the new complete one, never a mix.
The manifest's JSON schema ships as ``eco_rails/schemas/artifact_manifest.schema.json``
(``eco-rails manifest-schema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eco_rails.errors import ArtifactError, StaleArtifactError
from eco_rails.policy import ForgetPolicy

__all__ = [
    "FORMAT_VERSION", "MANIFEST", "ONNX_FILE", "SCHEMA_PATH", "ArtifactError", "ArtifactManifest", "ArtifactStatus",
    "SplitMetrics", "StaleArtifactError", "artifact_status", "ensure_fresh", "manifest_json_schema", "read_manifest",
]

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "artifact_manifest.schema.json"

ArtifactStatus = Literal["ok", "missing", "stale"]


class GroupRate(BaseModel):
    """How many prompts of one group there were, whether they are in scope, and the share flagged."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(description="Prompts in the group.")
    in_scope: bool = Field(description="True: the rate is a TPR; false: an FPR.")
    rate: float = Field(description="Fraction flagged.")


class SplitMetrics(BaseModel):
    """How the shipped (int8) classifier did on one held-out split, under the calibrated threshold."""

    model_config = ConfigDict(extra="forbid")

    n_negative: int = Field(description="Prompts outside the policy in this split.")
    n_positive: int = Field(description="Prompts inside the policy in this split.")
    fpr: float | None = Field(description="Fraction of negatives flagged (key-term hits included); null without negatives.")
    tpr: float | None = Field(description="Fraction of positives flagged; null without positives.")
    tpr_per_target: dict[str, float | None] = Field(default_factory=dict, description="TPR for each target id.")
    n_per_target: dict[str, int] = Field(default_factory=dict, description="Positives for each target id.")
    key_term_hits_negative: int = Field(default=0, description="Negatives flagged by a distinctive key term (counted in fpr).")
    by_group: dict[str, GroupRate] = Field(
        default_factory=dict,
        description="Flag rate per source group: positives (direct, language, indirect, ...) give TPR, negatives "
        "(neighbour, homonym, general) give FPR.")
    score_quantiles: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Encoder-score quantiles (5, 25, 50, 75, 95 %) of positives and negatives without a distinctive "
        "key term: how far both sides sit from the threshold.")


class ArtifactManifest(BaseModel):
    """``manifest.json``: what was fitted, from which policy, with what results. Written by ``eco-rails fit``
    (and updated by ``eco-rails optimize``); read by the classifier runtime and the rail."""

    model_config = ConfigDict(extra="forbid", title="eco-rails classifier artifact manifest")

    format_version: int = Field(default=FORMAT_VERSION, description="Layout version of the artifact folder.")
    policy_name: str = Field(description="The policy's `name`.")
    policy_version: str = Field(description="The policy's `version` when it was fitted.")
    policy_hash: str = Field(description="SHA-256 of the policy's content; a different hash means the artifact is stale.")
    labels: list[str] = Field(description="Classifier output labels: index 0 is 'none', then the target ids in policy order.")
    threshold: float = Field(description="Calibrated flag threshold on the encoder score (1 - P(none)); flag when score > threshold.")
    target_fpr: float = Field(description="False-positive rate the threshold was calibrated to (split conformal).")
    max_length: int = Field(description="Tokens per classifier window.")
    context_turns: int = Field(description="Earlier user turns classified together with the latest one.")
    max_prompt_chars: int = Field(description="Longer prompts are refused (the rail fails closed).")
    backbone: str = Field(description="Encoder the classifier was fine-tuned from.")
    onnx_file: str = Field(default=ONNX_FILE, description="The quantised ONNX model, relative to the artifact folder.")
    quantization: Literal["int8-static", "int8-dynamic"] = Field(
        default="int8-dynamic",
        description="How the ONNX model was quantised: int8-static (scores in batches) or int8-dynamic (older fits: "
        "activation scales measured per call, so prompts are scored one at a time).")
    metrics: dict[str, SplitMetrics] = Field(description="Held-out results: `calibration`, `test`, and the `train_size` counts.")
    key_terms: dict[str, list[str]] = Field(
        default_factory=dict, description="Target id -> key terms matched lexically (entity names and aliases included).")
    ambiguous_terms: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Target id -> the key terms that are ordinary words or match negatives: evidence that needs the "
        "encoder's agreement (ambiguous_threshold) instead of flagging on its own.")
    exception_names: list[str] = Field(
        default_factory=list,
        description="Names of other things (the policy's keep_entities) that contain a key term ('Snape Maltings' for "
        "'Snape'): where one occurs, the key term inside it is no evidence.")
    ambiguous_threshold: float | None = Field(
        default=None, description="Encoder threshold for prompts with an ambiguous key term, calibrated on the homonym "
        "negatives to classifier.homonym_fpr (null: the plain threshold applies).")
    ambiguous_threshold_set_by: list[str] = Field(
        default_factory=list, description="The held-out homonym prompts at or above ambiguous_threshold, highest score "
        "first (at most 5): the other meanings the encoder still reads as in scope, which set that threshold.")
    context_threshold: float | None = Field(
        default=None, description="Looser encoder threshold (calibrated to classifier.context_fpr): a message right after "
        "an in-scope turn that scores above it stays on that turn's topic and is in scope too.")
    max_views: int = Field(default=48, description="At most this many encoder passes per prompt (views, sentences).")
    learned_strength: dict[str, float] = Field(
        default_factory=dict, description="Target id -> corruption strength learned by `eco-rails optimize` (strength: auto).")
    optimization: dict[str, Any] | None = Field(
        default=None, description="The strength search's report (objective values, fluency, budget, history).")
    fit_cost: dict[str, float] | None = Field(
        default=None, description="What the fit spent: wall `seconds`, `optimizer_steps` and `training_rows` (rows x epochs).")
    versions: dict[str, str] = Field(description="Python and library versions the artifact was built with.")
    created_at: str = Field(description="UTC time the artifact was written (ISO 8601).")
    seed: int = Field(description="Seed of data splits, augmentation and training.")

    @property
    def target_ids(self) -> list[str]:
        return self.labels[1:]


def read_manifest(artifact_dir: Path) -> ArtifactManifest:
    """Read and validate ``artifact_dir/manifest.json``; :class:`ArtifactError` with the fix otherwise."""
    path = Path(artifact_dir) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"No classifier artifact at {artifact_dir} (missing {MANIFEST}). Run `eco-rails fit <rails-config-dir>`.")
    try:
        return ArtifactManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} is corrupt or from an incompatible eco-rails version ({exc}). Re-run `eco-rails fit`.") from None


def artifact_status(artifact_dir: Path, policy_hash: str) -> ArtifactStatus:
    """``ok`` (fitted for this policy content), ``stale`` (fitted for other content) or ``missing``."""
    try:
        manifest = read_manifest(artifact_dir)
    except ArtifactError:
        return "missing"
    return "ok" if manifest.policy_hash == policy_hash else "stale"


def ensure_fresh(manifest: ArtifactManifest, policy: ForgetPolicy, artifact_dir: Path, fix: str = "<rails-config-dir>") -> None:
    """Refuse an artifact fitted for other policy content: :class:`StaleArtifactError` saying which policy
    and version it was fitted for, and the command that re-fits it."""
    if manifest.policy_hash == policy.content_hash():
        return
    if manifest.policy_name != policy.name:
        what = f"for another policy, {manifest.policy_name!r} (version {manifest.policy_version}), not {policy.name!r}"
    else:
        what = (f"for another version of policy {manifest.policy_name!r} (fitted: version {manifest.policy_version}; "
                f"current: version {policy.version}, content changed)")
    raise StaleArtifactError(f"The classifier in {artifact_dir} was fitted {what}. Run `eco-rails fit {fix}` to re-fit it.")


def refuse_other_policy(artifact_dir: Path, policy: ForgetPolicy, policy_path: Path | str, fix: str = "<rails-config-dir>") -> None:
    """Refuse to write ``policy``'s classifier over an artifact that belongs to a *different* policy.

    Why: copying a rails config for a new policy keeps its ``artifact:`` path, and fitting the copy would
    silently replace the other policy's classifier (which then fails as "stale" in every config that uses it).
    An artifact of an older version of the same policy is replaced as usual.
    """
    try:
        manifest = read_manifest(artifact_dir)
    except ArtifactError:
        return
    if manifest.policy_name != policy.name:
        raise ArtifactError(
            f"{artifact_dir} holds the classifier of another policy, {manifest.policy_name!r} (version "
            f"{manifest.policy_version}); fitting policy {policy.name!r} ({policy_path}) there would replace it. Give this "
            f"policy its own folder: set custom_data.eco.artifact in the rails config (e.g. artifact: ../../onnx/{policy.name}), "
            f"or run `eco-rails fit {fix} --replace-other-policy` to overwrite it on purpose."
        )


def manifest_json_schema() -> dict[str, Any]:
    """The JSON schema of ``manifest.json`` (draft 2020-12)."""
    schema = ArtifactManifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
