"""One object for "this rails config": its ECO settings, policy, classifier artifact (and whether that is
ok, missing or stale) and main model. The CLI, the rail, the strength search, the evaluation and the
benchmarks all resolve a config folder through :func:`resolve_config`, so the rules live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eco_rails.classifier.artifact import ArtifactManifest, ArtifactStatus, artifact_status, ensure_fresh, read_manifest
from eco_rails.engine.model_store import EMBEDDED_MODEL
from eco_rails.errors import ConfigError
from eco_rails.policy import ForgetPolicy, load_policy
from eco_rails.rails.rail_config import EcoRailSettings, config_file, parse_eco_settings, read_config_yml

if TYPE_CHECKING:
    from eco_rails.engine.generation import EcoEngine


@dataclass(frozen=True)
class MainModel:
    """The ``type: main`` entry of ``models:`` (the embedded default when there is none)."""

    engine: str | None
    model: str
    parameters: dict[str, Any]

    @classmethod
    def from_config_yml(cls, data: dict[str, Any], config_dir: Path | None = None) -> MainModel:
        models = data.get("models") or []
        main = next((m for m in models if isinstance(m, dict) and m.get("type") == "main"), {})
        parameters = dict(main.get("parameters") or {})
        if config_dir is not None and parameters.get("adapter"):
            parameters["adapter"] = config_relative(parameters["adapter"], config_dir)
        return cls(engine=main.get("engine"), model=main.get("model") or EMBEDDED_MODEL, parameters=parameters)

    def engine_instance(self) -> EcoEngine:
        """The shared engine for this model (``device`` and ``dtype`` from its parameters)."""
        from eco_rails.engine.generation import get_engine

        return get_engine(self.model, device=self.parameters.get("device"), dtype=self.parameters.get("dtype"),
                          adapter=self.parameters.get("adapter"), merge_adapter=bool(self.parameters.get("merge_adapter")))


@dataclass(frozen=True)
class ResolvedConfig:
    """A rails config folder that uses the ECO rail, resolved: settings, policy, artifact, main model."""

    config_dir: Path
    settings: EcoRailSettings
    policy: ForgetPolicy
    main_model: MainModel

    @property
    def policy_path(self) -> Path:
        return self.settings.policy_path

    @property
    def artifact_path(self) -> Path:
        return self.settings.artifact_path(self.policy.name)

    def status(self) -> ArtifactStatus:
        """``ok``, ``missing`` or ``stale`` (fitted for other policy content, or for another policy)."""
        return artifact_status(self.artifact_path, self.policy.content_hash())

    def manifest(self) -> ArtifactManifest:
        """The artifact's manifest, refused unless it was fitted for exactly this policy."""
        manifest = read_manifest(self.artifact_path)
        ensure_fresh(manifest, self.policy, self.artifact_path, str(self.config_dir))
        return manifest

    def engine(self) -> EcoEngine:
        """The engine of the main model."""
        return self.main_model.engine_instance()


def config_relative(path: str, config_dir: Path) -> str:
    """A path from a rails config, read relative to the config folder (as ``custom_data.eco`` paths are);
    absolute paths and ``~`` stay as they are."""
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (config_dir / candidate).resolve())


def uses_eco_rail(config_dir: str | Path) -> bool:
    """Whether the rails config in ``config_dir`` has a ``custom_data.eco`` section."""
    return "eco" in (read_config_yml(Path(config_dir).resolve()).get("custom_data") or {})


def resolve_config(config_dir: str | Path) -> ResolvedConfig:
    """Resolve a rails config folder. Raises :class:`ConfigError` naming the file and field when the folder,
    its ``config.yml``, its ``custom_data.eco`` or its policy is missing or invalid."""
    config_dir = Path(config_dir).resolve()
    if not config_dir.is_dir():
        raise ConfigError(f"Rails config folder {config_dir} does not exist.")
    data = read_config_yml(config_dir)
    source = config_file(config_dir)
    settings = parse_eco_settings(data.get("custom_data"), config_dir, source.name if source else "config.yml")
    return ResolvedConfig(config_dir, settings, load_policy(settings.policy_path), MainModel.from_config_yml(data, config_dir))


__all__ = ["MainModel", "ResolvedConfig", "config_relative", "resolve_config", "uses_eco_rail"]
