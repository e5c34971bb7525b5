"""Forget policies: what a model must forget, written as YAML by a compliance team.

A policy names one or more forget **targets** (each with a plain-language description, example prompts,
key terms, and **entities**: the people, places and things in scope, with their other names in other
languages and plain-word descriptions of who or what they are), what must *not* be flagged (**keep**
examples of near neighbours, **keep_entities** described like the targets' entities, and **homonyms**:
real things that share a word with the policy), and settings for the prompt classifier and the corruption.
Long lists can live in their own files: give a file name (``entities: entities.yml``,
``homonyms: homonyms.txt``) instead of the list; it is read relative to the policy file. A ``.yml`` file
holds a mapping with one key whose value is the list (``entities: [...]``): NeMo Guardrails reads every
``.yml`` file in a rails config folder and merges it into the config, and a top-level list would break that. ``eco-rails fit`` turns it into a calibrated ONNX classifier.
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


class Entity(_Strict):
    """A person, place or thing: its name, its other names, and who or what it is in plain words."""

    name: Example = Field(description="The name, as the policy's language writes it.")
    aliases: list[Example] = Field(
        default_factory=list,
        description="Other names: translated editions' names, native scripts (Гарри Поттер, 哈利·波特), nicknames. "
        "Matched like key terms.")
    descriptions: list[Example] = Field(
        default_factory=list,
        description="Who or what it is, as noun phrases without its name ('the boy wizard with a lightning-bolt scar'); "
        "indirect prompts are built from them.")


class ForgetTarget(_Strict):
    """One body of knowledge to forget."""

    id: Slug = Field(description="Short identifier, lowercase letters, digits, '-' and '_' (e.g. harry-potter).")
    description: Example = Field(description="Plain-language description of what is in scope.")
    examples: list[Example] = Field(min_length=1, description="Prompts that are in scope (the more varied, the better).")
    key_terms: list[Example] = Field(
        default_factory=list,
        description="Names and terms that point at the target. A term that is also an ordinary word or the name of "
        "something real (it matches keep or homonym prompts, or is a common word) is evidence that needs the "
        "classifier's agreement; a coined name flags on its own. Put into question templates in many languages.",
    )
    entities: list[Entity] = Field(
        default_factory=list,
        description="People, places and things in scope; their names and aliases count as key terms and their "
        "descriptions become indirect training prompts. A file name (entities.yml) reads the list from that file.")

    def all_terms(self) -> list[str]:
        """Key terms plus every entity's name and aliases, without duplicates."""
        names = [*self.key_terms, *(n for e in self.entities for n in (e.name, *e.aliases))]
        return list(dict.fromkeys(names))


class ClassifierSettings(_Strict):
    """How the prompt classifier is trained and calibrated."""

    backbone: str = Field(default=DEFAULT_BACKBONE, description="all-minilm-l6-v2 (embedded) or a local HF encoder directory.")
    target_fpr: float = Field(default=0.01, gt=0.0, le=0.5, description="False-positive rate the threshold is calibrated to, in (0, 0.5].")
    max_length: int = Field(default=128, ge=16, le=512, description="Tokens per classifier window.")
    context_turns: int = Field(
        default=3, ge=0, le=10,
        description="Earlier user turns a follow-up can refer to: a latest message that refers back (pronouns, "
        "ellipsis) to an in-scope turn among them is in scope too.")
    homonym_fpr: float = Field(
        default=0.05, gt=0.0, le=0.5,
        description="False-positive rate allowed on prompts that contain an ambiguous key term (a homonym): the "
        "encoder must agree above a threshold calibrated on the homonym negatives.")
    context_fpr: float = Field(
        default=0.1, gt=0.0, le=0.9,
        description="A message right after an in-scope turn is a follow-up if it refers back, or if it scores above "
        "the threshold that flags this share of out-of-scope prompts (a looser bar: it only applies after an in-scope turn).")
    max_views: int = Field(default=48, ge=1, le=512,
                           description="At most this many encoder passes per prompt (views, sentence windows).")
    label_smoothing: float = Field(default=0.1, ge=0.0, lt=0.5,
                                   description="Keeps scores from saturating, so in- and out-of-scope separate with a margin.")
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
    objective: Literal["surrogate", "chance", "retain"] = Field(
        default="surrogate",
        description="surrogate: the weakest corruption under which the forget questions are answered no more confidently "
        "than the same questions about invented names (a model that never saw them); chance: the weakest under which "
        "multiple-choice accuracy falls to chance + target_margin (ECO's objective for multiple-choice benchmarks); "
        "retain: the corruption under which the forget questions' truth ratios are most like those of retain_model "
        "(the KS p-value, ECO's forget quality), within the fluency bound.")
    retain_model: str | None = Field(
        default=None,
        description="retain objective: a model that never learned the forget data, as a PEFT adapter folder (served on "
        "the config's main model) or a full model folder; relative to the policy file, or absolute.")
    surrogate_seeds: int = Field(default=3, ge=1, le=10, description="Invented-name draws; the strength is their median.")
    target_margin: float = Field(default=0.02, ge=0.0, le=0.5, description="chance objective: stop once accuracy <= chance + this.")
    init_strength: float = Field(default=0.05, gt=0.0)
    max_strength: float = Field(default=20.0, gt=0.0)
    budget: int = Field(default=24, ge=3, le=500, description="Objective evaluations (each: one forward pass per question).")
    fluency_prompts: int = Field(default=4, ge=0, le=50, description="Forget questions whose corrupted answers are checked for fluency.")
    max_perplexity_ratio: float = Field(default=5.0, gt=1.0, description="Fluency bound: corrupted / clean answer perplexity under the clean model.")

    def content(self) -> dict:
        """The settings as hashed for staleness checks (the policy's hash, the learned strength's key):
        ``retain_model`` stays out while unset, so what was fitted or learned before it existed stays fresh."""
        return self.model_dump(mode="json", exclude={"retain_model"} if self.retain_model is None else None)

    @model_validator(mode="after")
    def _retain_needs_a_model(self) -> OptimizationSettings:
        if self.objective == "retain" and not self.retain_model:
            raise ValueError("objective: retain needs optimization.retain_model, a model that never learned the forget "
                             "data (a PEFT adapter folder or a model folder). Name one, or use objective: surrogate.")
        if self.retain_model and self.objective != "retain":
            raise ValueError(f"optimization.retain_model is used by objective: retain only (objective is {self.objective}). "
                             "Set objective: retain, or remove retain_model.")
        return self


class EvaluationSettings(_Strict):
    """A held-out suite ``eco-rails fit`` reports on (never trained on, never used to calibrate)."""

    suite: str | None = Field(
        default=None,
        description="JSONL rows {id, category, in_scope, prompt | turns}, relative to the policy file.")


class ForgetPolicy(_Strict):
    """A forget policy. See ``rails_configs/harry_potter/policy.yml`` for a complete example."""

    name: Slug = Field(description="Policy name; also the artifact folder name under onnx/.")
    version: str = Field(min_length=1, max_length=64, description="Bump on every edit; recorded in audit logs.")
    description: str = ""
    targets: list[ForgetTarget] = Field(min_length=1)
    keep: list[Example] = Field(default_factory=list, description="Near-neighbour prompts that must NOT be flagged.")
    keep_entities: list[Entity] = Field(
        default_factory=list,
        description="Neighbouring entities (other fantasy, real people) described like the targets' entities: their "
        "descriptions become negatives, so the classifier learns the target's content, not its vocabulary.")
    homonyms: list[Example] = Field(
        default_factory=list,
        description="Prompts about real things that share a word or a near-spelling with the policy (pottery, the "
        "star Sirius): negatives the ambiguous-term threshold is calibrated on.")
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
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
        content = {**self.model_dump(mode="json"), "optimization": self.optimization.content()}
        canonical = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def target_ids(self) -> list[str]:
        return [t.id for t in self.targets]


def _policy_hint(err: dict) -> str | None:
    if err["type"] == "string_type" and isinstance(err.get("input"), dict):
        return "quote the line: in YAML an unquoted 'text: more text' is a mapping, not a string"
    return method_hint(err)


def _policy_error(path: Path, exc: ValidationError) -> ConfigError:
    return ConfigError(format_validation_error(exc, title=f"Invalid forget policy {path}", hint=_policy_hint, model=ForgetPolicy))


# Fields whose list may instead be a file name, read relative to the policy file.
_INCLUDABLE_TOP = ("keep", "keep_entities", "homonyms")
_INCLUDABLE_TARGET = ("examples", "key_terms", "entities")


def _read_include(policy_path: Path, field: str, name: str) -> list:
    path = (policy_path.parent / name).resolve()
    if not path.is_file():
        raise ConfigError(f"Invalid forget policy {policy_path}:\n  {field}: the file {name!r} does not exist "
                          f"(looked for {path}); fix the name or give the list inline.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} (named by {field} in {policy_path}) is not UTF-8 text ({exc.reason}); save it as UTF-8.") from None
    if path.suffix.lower() == ".txt":
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} (named by {field} in {policy_path}) is not valid YAML: {exc}") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        return next(iter(data.values()))  # `entities: [...]`: the form a rails config folder needs
    if not isinstance(data, list):
        raise ConfigError(f"{path} (named by {field} in {policy_path}) must hold a YAML mapping with one key whose "
                          f"value is the list (`{field.rsplit('.', 1)[-1]}: [...]`).")
    return data


def _resolve_includes(raw: dict, policy_path: Path) -> dict:
    raw = dict(raw)
    for field in _INCLUDABLE_TOP:
        if isinstance(raw.get(field), str):
            raw[field] = _read_include(policy_path, field, raw[field])
    targets = raw.get("targets")
    if isinstance(targets, list):
        resolved = []
        for i, target in enumerate(targets):
            if isinstance(target, dict):
                target = dict(target)
                for field in _INCLUDABLE_TARGET:
                    if isinstance(target.get(field), str):
                        target[field] = _read_include(policy_path, f"targets.{i}.{field}", target[field])
            resolved.append(target)
        raw["targets"] = resolved
    return raw


def load_policy(path: str | Path) -> ForgetPolicy:
    """Read and validate a policy file (and the files it names). Errors name the file, the field and the fix."""
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
    raw = _resolve_includes(raw, path)
    try:
        return ForgetPolicy.model_validate(raw)
    except ValidationError as exc:
        raise _policy_error(path, exc) from None


def policy_json_schema() -> dict:
    """The JSON schema of policy files (draft 2020-12), for editors and ``eco-rails policy-schema``."""
    schema = ForgetPolicy.model_json_schema()
    include = {"type": "string", "description": "A file holding the list (.txt: one per line; .yml: a mapping with "
               "one key whose value is the list), relative to the policy file."}
    for props in (schema["properties"], schema["$defs"]["ForgetTarget"]["properties"]):
        for field in (*_INCLUDABLE_TOP, *_INCLUDABLE_TARGET):
            if field in props:
                entry = props[field]
                props[field] = {"anyOf": [{k: v for k, v in entry.items() if k not in ("title", "description", "default")},
                                          include], **{k: v for k, v in entry.items() if k in ("title", "description", "default")}}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "eco-rails forget policy"
    return schema
