"""Forget policies: what a model must forget, written as YAML by a compliance team.

A policy names one or more forget **targets** (each with a plain-language description and example
prompts in scope), **keep** examples (near neighbours that must *not* be flagged), and settings for the
prompt classifier and the corruption. ``eco-rails fit`` turns it into a calibrated ONNX classifier.
The JSON schema (``eco-rails policy-schema``, shipped as ``eco_rails/schemas/forget_policy.schema.json``)
lets editors validate a policy while it is written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from eco_rails.engine.corruption.spec import CorruptionSpec, DimSelection, MethodField, method_hint, validate_method_name
from eco_rails.errors import ConfigError
from eco_rails.validation import format_validation_error

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
Example = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]

DEFAULT_BACKBONE = "all-minilm-l6-v2"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "forget_policy.schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ForgetTarget(_Strict):
    """One body of knowledge to forget."""

    id: Slug = Field(description="Short identifier, lowercase letters, digits, '-' and '_' (e.g. harry-potter).")
    description: Example = Field(description="Plain-language description of what is in scope.")
    examples: list[Example] = Field(min_length=1, description="Prompts that are in scope (the more varied, the better).")
    key_terms: list[Example] = Field(
        default_factory=list,
        description="Names and terms that on their own put a prompt in scope; augmentation puts them into "
        "paraphrase templates in several languages.",
    )


class ClassifierSettings(_Strict):
    """How the prompt classifier is trained and calibrated."""

    backbone: str = Field(default=DEFAULT_BACKBONE, description="all-minilm-l6-v2 (embedded) or a local HF encoder directory.")
    target_fpr: float = Field(default=0.01, gt=0.0, le=0.5, description="False-positive rate the threshold is calibrated to, in (0, 0.5].")
    max_length: int = Field(default=128, ge=16, le=512, description="Tokens per classifier window.")
    context_turns: int = Field(default=1, ge=0, le=10, description="Previous user turns classified together with the latest one.")
    max_prompt_chars: int = Field(default=200_000, ge=1000, description="Longer prompts are refused (the rail then fails closed).")
    epochs: int = Field(default=3, ge=1, le=50)
    learning_rate: float = Field(default=5e-5, gt=0.0, lt=1.0)
    batch_size: int = Field(default=32, ge=1, le=512)
    seed: int = 0
    general_negatives: int | None = Field(
        default=None, ge=0, description="How many of the shipped general negative prompts to train with (default: all).")


class CorruptionSettings(_Strict):
    """How flagged prompts are corrupted. ``strength: auto`` uses the value learned by ``eco-rails optimize``."""

    method: str = MethodField
    strength: Union[float, Literal["auto"]] = Field(default="auto", description="A number >= 0, or auto.")
    dims: int | None = Field(default=None, ge=1)
    select: DimSelection = "first"
    scope: Literal["span", "whole_prompt"] = Field(default="span", description="Corrupt the flagged user text only, or the whole prompt.")

    @field_validator("method")
    @classmethod
    def _registered_method(cls, value: str) -> str:
        return validate_method_name(value)  # type: ignore[return-value]

    @field_validator("strength")
    @classmethod
    def _non_negative(cls, value: Union[float, str]) -> Union[float, str]:
        if isinstance(value, float) and value < 0:
            raise ValueError("must be >= 0 (or auto)")
        return value

    def spec(self, learned_strength: float | None = None) -> CorruptionSpec:
        """The concrete corruption: ``auto`` takes ``learned_strength`` (or the library default if none)."""
        strength = self.strength if self.strength != "auto" else learned_strength
        values: dict[str, object] = {"method": self.method, "dims": self.dims, "select": self.select}
        if strength is not None:
            values["strength"] = strength
        return CorruptionSpec.model_validate(values)


class OptimizationSettings(_Strict):
    """How ``eco-rails optimize`` learns the corruption strength (``corruption.strength: auto``)."""

    data: str | None = Field(default=None, description="JSONL of multiple-choice forget questions (ours format), relative to the policy file.")
    target_margin: float = Field(default=0.02, ge=0.0, le=0.5, description="Stop once accuracy <= chance + this.")
    init_strength: float = Field(default=0.05, gt=0.0)
    max_strength: float = Field(default=20.0, gt=0.0)
    budget: int = Field(default=24, ge=3, le=500, description="Objective evaluations (each: one forward pass per question).")
    fluency_prompts: int = Field(default=4, ge=0, le=50, description="Forget questions whose corrupted answers are checked for fluency.")
    max_perplexity_ratio: float = Field(default=5.0, gt=1.0, description="Fluency bound: corrupted / clean answer perplexity under the clean model.")


class ForgetPolicy(_Strict):
    """A forget policy. See ``rails_configs/harry_potter/policy.yml`` for a complete example."""

    name: Slug = Field(description="Policy name; also the artifact folder name under onnx/.")
    version: str = Field(min_length=1, max_length=64, description="Bump on every edit; recorded in audit logs.")
    description: str = ""
    targets: list[ForgetTarget] = Field(min_length=1)
    keep: list[Example] = Field(default_factory=list, description="Near-neighbour prompts that must NOT be flagged.")
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    corruption: CorruptionSettings = Field(default_factory=CorruptionSettings)
    optimization: OptimizationSettings = Field(default_factory=OptimizationSettings)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) else value

    @model_validator(mode="after")
    def _unique_ids(self) -> ForgetPolicy:
        ids = [t.id for t in self.targets]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate target ids {dupes}: give every target its own id")
        if any(t.id == "none" for t in self.targets):
            raise ValueError("target id 'none' is reserved for prompts outside the policy")
        return self

    def content_hash(self) -> str:
        """SHA-256 of the policy's content (not its formatting): artifacts record it to detect staleness."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def target_ids(self) -> list[str]:
        return [t.id for t in self.targets]


def _policy_hint(err: dict) -> str | None:
    if err["type"] == "string_type" and isinstance(err.get("input"), dict):
        return "quote the line: in YAML an unquoted 'text: more text' is a mapping, not a string"
    return method_hint(err)


def _policy_error(path: Path, exc: ValidationError) -> ConfigError:
    return ConfigError(format_validation_error(exc, title=f"Invalid forget policy {path}", hint=_policy_hint))


def load_policy(path: str | Path) -> ForgetPolicy:
    """Read and validate a policy file. Errors name the file, the field and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Forget policy {path} does not exist. Check custom_data.eco.policy in config.yml.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Forget policy {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Forget policy {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Forget policy {path} must be a YAML mapping with name, version and targets.")
    try:
        return ForgetPolicy.model_validate(raw)
    except ValidationError as exc:
        raise _policy_error(path, exc) from None


def policy_json_schema() -> dict:
    """The JSON schema of policy files (draft 2020-12), for editors and ``eco-rails policy-schema``."""
    schema = ForgetPolicy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "eco-rails forget policy"
    return schema
