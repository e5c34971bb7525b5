"""Settings of the ECO rail, read from a rails config's ``custom_data.eco`` section.

NeMo Guardrails silently drops unknown keys under ``rails.config``, so eco-rails keeps its settings under
``custom_data`` and validates them itself: unknown keys and bad values fail loudly, naming the file.
Paths are relative to the rails config folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eco_rails.errors import ConfigError
from eco_rails.policy import ForgetPolicy


class EcoRailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str = Field(default="policy.yml", description="Forget policy file, relative to the rails config folder.")
    artifact: str | None = Field(default=None, description="Classifier artifact folder (default: onnx/<policy name> in the config folder).")
    on_flag: Literal["corrupt", "refuse", "log-only"] = "corrupt"
    audit_prompts: bool = Field(default=False, description="Include the raw prompt in audit records.")

    config_dir: Path = Field(default=Path("."), exclude=True)

    @property
    def policy_path(self) -> Path:
        return (self.config_dir / self.policy).resolve()

    def artifact_path(self, policy: ForgetPolicy) -> Path:
        if self.artifact:
            return (self.config_dir / self.artifact).resolve()
        return (self.config_dir / "onnx" / policy.name).resolve()


def read_config_yml(config_dir: Path) -> dict[str, Any]:
    for name in ("config.yml", "config.yaml"):
        path = config_dir / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path} is not valid YAML: {exc}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path} must be a YAML mapping.")
            return data
    raise ConfigError(f"{config_dir} is not a rails config folder: it has no config.yml.")


def parse_eco_settings(custom_data: dict[str, Any] | None, config_dir: Path, source: str = "config.yml") -> EcoRailSettings:
    section = (custom_data or {}).get("eco")
    if section is None:
        raise ConfigError(f"{config_dir / source}: custom_data.eco is missing. Add it with at least `policy: policy.yml`.")
    if not isinstance(section, dict):
        raise ConfigError(f"{config_dir / source}: custom_data.eco must be a mapping (policy, artifact, on_flag, ...).")
    try:
        return EcoRailSettings.model_validate({**section, "config_dir": config_dir})
    except ValidationError as exc:
        lines = [f"custom_data.eco.{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()]
        raise ConfigError(f"Invalid eco rail settings in {config_dir / source}:\n  " + "\n  ".join(lines)) from None


def load_eco_settings(config_dir: str | Path) -> EcoRailSettings:
    config_dir = Path(config_dir).resolve()
    if not config_dir.is_dir():
        raise ConfigError(f"Rails config folder {config_dir} does not exist.")
    return parse_eco_settings(read_config_yml(config_dir).get("custom_data"), config_dir)
