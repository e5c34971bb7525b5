"""Settings of the ECO rail, read from a rails config's ``custom_data.eco`` section (NeMo's
``library/<rail>/rail_config.py`` role).

NeMo Guardrails silently drops unknown keys under ``rails.config``, so eco-rails keeps its settings under
``custom_data`` and validates them itself: unknown keys and bad values fail loudly, naming the file.
Paths are relative to the rails config folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from eco_rails.errors import ConfigError
from eco_rails.validation import format_validation_error

CONFIG_FILES = ("config.yml", "config.yaml")


class EcoRailSettings(BaseModel):
    """``custom_data.eco`` in a rails config's ``config.yml``."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field(default="policy.yml", description="Forget policy file, relative to the rails config folder.")
    artifact: str | None = Field(default=None, description="Classifier artifact folder (default: onnx/<policy name> in the config folder).")
    on_flag: Literal["corrupt", "refuse", "log-only"] = Field(
        default="corrupt", description="corrupt (ECO), refuse (classic NeMo block) or log-only (shadow mode).")
    audit_prompts: bool = Field(default=False, description="Include the raw prompt in audit records.")

    config_dir: SkipJsonSchema[Path] = Field(default=Path("."), exclude=True)  # set by the loader, not a user key

    @property
    def policy_path(self) -> Path:
        return (self.config_dir / self.policy).resolve()

    def artifact_path(self, policy_name: str) -> Path:
        """The classifier artifact folder for the policy called ``policy_name``."""
        if self.artifact:
            return (self.config_dir / self.artifact).resolve()
        return (self.config_dir / "onnx" / policy_name).resolve()


def config_file(config_dir: Path) -> Path | None:
    """``config.yml`` (or ``config.yaml``) in a folder, if there is one."""
    return next((config_dir / name for name in CONFIG_FILES if (config_dir / name).is_file()), None)


def read_config_yml(config_dir: Path) -> dict[str, Any]:
    """The parsed ``config.yml`` of a rails config folder; :class:`ConfigError` naming the file otherwise."""
    path = config_file(config_dir)
    if path is None:
        raise ConfigError(f"{config_dir} is not a rails config folder: it has no config.yml.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a YAML mapping.")
    return data


def parse_eco_settings(custom_data: dict[str, Any] | None, config_dir: Path, source: str = "config.yml") -> EcoRailSettings:
    """Validate ``custom_data.eco``; :class:`ConfigError` naming the file, the field and the fix."""
    section = (custom_data or {}).get("eco")
    if section is None:
        raise ConfigError(f"{config_dir / source}: custom_data.eco is missing. Add it with at least `policy: policy.yml`.")
    if not isinstance(section, dict):
        raise ConfigError(f"{config_dir / source}: custom_data.eco must be a mapping (policy, artifact, on_flag, ...).")
    try:
        return EcoRailSettings.model_validate({**section, "config_dir": config_dir})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "custom_data.eco", title=f"Invalid eco rail settings in {config_dir / source}", model=EcoRailSettings)) from None


def load_eco_settings(config_dir: str | Path) -> EcoRailSettings:
    """``custom_data.eco`` of the rails config in ``config_dir``."""
    config_dir = Path(config_dir).resolve()
    if not config_dir.is_dir():
        raise ConfigError(f"Rails config folder {config_dir} does not exist.")
    return parse_eco_settings(read_config_yml(config_dir).get("custom_data"), config_dir)
