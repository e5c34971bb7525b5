"""The classifier artifact on disk (``onnx/<policy-name>/``) and its ``manifest.json``.

An artifact is written to a temporary sibling directory and renamed into place, so readers see either
the old complete artifact or the new complete one, never a mix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eco_rails.errors import EcoRailsError

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
FORMAT_VERSION = 1


class ArtifactError(EcoRailsError):
    """A classifier artifact is missing, stale, corrupt or unreadable."""


class StaleArtifactError(ArtifactError):
    """The artifact was built from a different version of the policy."""


class SplitMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_negative: int
    n_positive: int
    fpr: float | None
    tpr: float | None
    tpr_per_target: dict[str, float | None] = Field(default_factory=dict)
    n_per_target: dict[str, int] = Field(default_factory=dict)
    key_term_hits_negative: int = 0  # negatives flagged by a key term alone (counted in fpr)


class ArtifactManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    policy_name: str
    policy_version: str
    policy_hash: str
    labels: list[str]  # index 0 is "none"; then the target ids in policy order
    threshold: float
    target_fpr: float
    max_length: int
    context_turns: int
    max_prompt_chars: int
    backbone: str
    onnx_file: str = ONNX_FILE
    quantization: str = "int8-dynamic"
    metrics: dict[str, SplitMetrics]
    key_terms: dict[str, list[str]] = Field(default_factory=dict)  # target id -> terms matched lexically
    learned_strength: dict[str, float] = Field(default_factory=dict)
    optimization: dict | None = None  # the optimize run's report (objective values, fluency, budget)
    versions: dict[str, str]
    created_at: str
    seed: int

    @property
    def target_ids(self) -> list[str]:
        return self.labels[1:]


def read_manifest(artifact_dir: Path) -> ArtifactManifest:
    path = artifact_dir / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"No classifier artifact at {artifact_dir} (missing {MANIFEST}). Run `eco-rails fit <rails-config-dir>`.")
    try:
        return ArtifactManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} is corrupt or from an incompatible eco-rails version ({exc}). Re-run `eco-rails fit`.") from None


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``target``; on success it replaces ``target`` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that readers never see it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
