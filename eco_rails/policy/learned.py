"""The learned corruption, recorded beside the policy (``policy.learned.json``), so a fresh clone uses it.

``eco-rails optimize`` learns the corruption strength once, offline; the result belongs to the policy (a
compliance team reviews and commits it with the policy), not to the classifier artifact, which is rebuilt on
every fit and is not committed. One file per policy holds one entry per model, because a strength is
learned *for a model* (its embedding scale and its knowledge).

Every entry carries a key: the SHA-256 of everything the strength was learned from (the corruption
settings, the optimisation settings, the optimisation questions' bytes, the policy's key terms and
entities, which build the surrogate reference). The rail uses an entry only while its key matches; a
stale entry is reported with the fix (``eco-rails optimize <config>``) and the library default is used.

Pure (hashlib and pydantic): readable without torch, so the CLI can say which corruption a chat will use
before loading anything.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eco_rails.atomic import write_text_atomic
from eco_rails.errors import ConfigError
from eco_rails.policy.model import ForgetPolicy
from eco_rails.validation import format_validation_error

__all__ = ["ARTIFACT_DETAIL", "LearnedCorruption", "LearnedEntry", "LearnedLookup", "learned_key", "learned_path",
           "lookup_learned", "model_identity", "new_entry", "read_learned", "strength_source", "write_learned"]

# The detail of a lookup whose strengths come from the classifier artifact rather than the record.
ARTIFACT_DETAIL = "learned into the classifier artifact"

SCHEMA_VERSION: Literal[1] = 1


class LearnedEntry(BaseModel):
    """What ``eco-rails optimize`` learned for one model."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="SHA-256 of the inputs the strength was learned from; a mismatch makes the entry stale.")
    policy_version: str
    strengths: dict[str, float] = Field(description="Target id -> learned noise strength.")
    objective: str = Field(description="What the search matched: surrogate (never-seen questions), chance or retain (a retain model).")
    learned_at: str
    report: dict[str, Any] = Field(default_factory=dict, description="The search's summary (evaluations, reference, fluency).")


class LearnedCorruption(BaseModel):
    """The file: the policy's name and one entry per model identity."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    policy: str
    models: dict[str, LearnedEntry] = Field(default_factory=dict)


class LearnedLookup(BaseModel):
    """Which strength a rail uses and why: ``learned`` (fresh entry), ``stale``, ``missing`` (no entry)."""

    model_config = ConfigDict(frozen=True)

    status: Literal["learned", "stale", "missing"]
    strengths: dict[str, float] = Field(default_factory=dict)
    path: str
    detail: str = ""


def learned_path(policy_path: Path) -> Path:
    """``policy.yml`` -> ``policy.learned.json`` in the same folder."""
    return policy_path.with_name(f"{policy_path.stem}.learned.json")


def model_identity(model: str, adapter: str | Path | None = None) -> str:
    """A model as the record names it: the name from ``config.yml``, plus the adapter's weights digest (an
    adapter changes what the model knows, so it gets its own strength)."""
    if not adapter:
        return model
    folder = Path(adapter)
    weights = sorted(folder.glob("adapter_model.*"))
    digest = hashlib.sha256()
    for path in weights:
        digest.update(path.read_bytes())
    return f"{model}+adapter:{digest.hexdigest()[:16] if weights else folder.name}"


def learned_key(policy: ForgetPolicy, data_bytes: bytes) -> str:
    """SHA-256 of what a learned strength depends on (not the policy's examples: a re-fit keeps it valid)."""
    payload = {
        "corruption": policy.corruption.model_dump(mode="json", exclude={"strength"}),
        "optimization": policy.optimization.content(),
        "data": hashlib.sha256(data_bytes).hexdigest(),
        "terms": {t.id: sorted(t.all_terms()) for t in policy.targets},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def read_learned(path: Path) -> LearnedCorruption | None:
    """The record at ``path`` (None when there is none); a broken file is a :class:`ConfigError` naming it."""
    if not path.is_file():
        return None
    try:
        return LearnedCorruption.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path)) + f" Delete {path.name} and run `eco-rails optimize` "
                          "on the rails config to learn it again.") from None


def write_learned(path: Path, policy: ForgetPolicy, model: str, entry: LearnedEntry) -> LearnedCorruption:
    """Add or replace ``model``'s entry (other models' entries stay), atomically."""
    try:
        record = read_learned(path) or LearnedCorruption(policy=policy.name)
    except ConfigError:  # a broken record is replaced, not merged
        record = LearnedCorruption(policy=policy.name)
    record = record.model_copy(update={"policy": policy.name, "models": {**record.models, model: entry}})
    write_text_atomic(path, record.model_dump_json(indent=2) + "\n")
    return record


def new_entry(policy: ForgetPolicy, data_bytes: bytes, strengths: dict[str, float], objective: str,
              report: dict[str, Any]) -> LearnedEntry:
    return LearnedEntry(key=learned_key(policy, data_bytes), policy_version=policy.version, strengths=strengths,
                        objective=objective, learned_at=datetime.now(UTC).isoformat(timespec="seconds"), report=report)


def lookup_learned(policy: ForgetPolicy, policy_path: Path, model: str) -> LearnedLookup:
    """The strengths a rail may use for ``model``, with the reason when there are none."""
    path = learned_path(policy_path)
    record = read_learned(path)
    entry = record.models.get(model) if record is not None else None
    if entry is None:
        known = ", ".join(sorted(record.models)) if record is not None and record.models else "none"
        return LearnedLookup(status="missing", path=str(path), detail=f"no strength learned for {model} (learned for: {known})")
    data = policy.optimization.data
    data_path = policy_path.parent / data if data else None
    data_bytes = data_path.read_bytes() if data_path is not None and data_path.is_file() else b""
    if entry.key != learned_key(policy, data_bytes):
        return LearnedLookup(status="stale", path=str(path),
                             detail=f"learned for policy v{entry.policy_version}; the corruption, optimization settings, "
                             "optimization data or key terms changed since")
    return LearnedLookup(status="learned", strengths=entry.strengths, path=str(path),
                         detail=f"learned {entry.learned_at} ({entry.objective})")


def strength_source(policy: ForgetPolicy, policy_path: Path, model: str, artifact_strengths: dict[str, float],
                    artifact_dir: Path | str) -> LearnedLookup:
    """Where ``strength: auto`` comes from, in this order: a fresh entry for ``model`` in the record beside the
    policy; else the strengths learned into the classifier artifact; else none (the record's lookup says why, and
    the library default applies). The one rule the rail and ``eco-rails chat`` both follow."""
    lookup = lookup_learned(policy, policy_path, model)
    if lookup.status == "learned" or not artifact_strengths:
        return lookup
    return LearnedLookup(status="learned", strengths=artifact_strengths, path=str(artifact_dir), detail=ARTIFACT_DETAIL)
