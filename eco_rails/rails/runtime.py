"""Per-rails-config state of the ECO rail: validated settings, the classifier, and audit records.

One runtime per rails config folder per process. The classifier is loaded on first use and reloaded
when the policy file or the artifact changes on disk, so a re-fit takes effect without a restart. A
classifier that cannot be loaded raises on every request, and the rail blocks (fails closed).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eco_rails.caches import register_cache
from eco_rails.classifier.artifact import MANIFEST
from eco_rails.classifier.runtime import PromptClassifier
from eco_rails.engine.flags import FlagDecision, RailCorruption
from eco_rails.errors import ConfigError
from eco_rails.policy import ForgetPolicy, load_policy
from eco_rails.providers import ECO_ENGINE
from eco_rails.rails.rail_config import EcoRailSettings, parse_eco_settings

log = logging.getLogger(__name__)
audit_log = logging.getLogger("eco_rails.audit")


def config_dir_of(config: Any) -> Path:
    """The folder a RailsConfig was loaded from (the first one, for combined configs); else the CWD."""
    raw = getattr(config, "config_path", None) or ""
    first = next((p.strip() for p in raw.split(",") if p.strip()), None)
    if first is None:
        return Path.cwd()
    path = Path(first)
    return (path if path.is_dir() else path.parent).resolve()


class EcoRailRuntime:
    """The rail's state for one rails config: its settings, the current classifier and audit records."""

    def __init__(self, config_dir: Path, settings: EcoRailSettings) -> None:
        self.config_dir = config_dir
        self.settings = settings
        self._lock = threading.Lock()
        self._classifier: PromptClassifier | None = None
        self._policy: ForgetPolicy | None = None
        self._stamp: tuple[float, float] | None = None

    def _disk_stamp(self, policy: ForgetPolicy | None) -> tuple[float, float]:
        policy_mtime = self.settings.policy_path.stat().st_mtime if self.settings.policy_path.exists() else -1.0
        manifest = self.settings.artifact_path(policy.name) / MANIFEST if policy else None
        manifest_mtime = manifest.stat().st_mtime if manifest is not None and manifest.exists() else -1.0
        return policy_mtime, manifest_mtime

    def classifier(self) -> PromptClassifier:
        """The current classifier; raises an EcoRailsError if it cannot be used (the rail then blocks)."""
        with self._lock:
            if self._classifier is not None and self._disk_stamp(self._policy) == self._stamp:
                return self._classifier
            self._classifier = None
            policy = load_policy(self.settings.policy_path)
            stamp = self._disk_stamp(policy)
            classifier = PromptClassifier(self.settings.artifact_path(policy.name), policy)
            self._classifier, self._policy, self._stamp = classifier, policy, stamp
            log.info("eco rail: loaded classifier for policy %s v%s (threshold %.4f, providers %s)",
                     policy.name, policy.version, classifier.threshold, classifier.providers)
            return classifier

    @property
    def policy(self) -> ForgetPolicy | None:
        return self._policy

    def corruption(self, target: str | None) -> RailCorruption:
        """The policy's corruption for a target; ``strength: auto`` takes the strength learned by
        ``eco-rails optimize`` (stored in the artifact manifest), or the library default if none was."""
        policy = self._policy
        if policy is None:
            raise ConfigError("the eco rail has no policy loaded")
        learned = self._classifier.manifest.learned_strength if self._classifier is not None else {}
        strength = learned[target] if target in learned else next(iter(learned.values()), None)
        return RailCorruption(spec=policy.corruption.spec(learned_strength=strength),
                              whole_prompt=policy.corruption.scope == "whole_prompt")

    def audit(self, decision: FlagDecision, action: str, prompt: str | None) -> None:
        """One record per flagged request: enough for compliance to prove enforcement, no raw prompt
        unless ``audit_prompts`` is on."""
        record: dict[str, Any] = {
            "event": "eco_flag",
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "policy": self._policy.name if self._policy else None,
            "policy_version": self._policy.version if self._policy else None,
            "target": decision.target,
            "score": round(decision.score, 6) if decision.score is not None else None,
            "threshold": round(decision.threshold, 6) if decision.threshold is not None else None,
            "action": action,
            "flagged_turns": len(decision.spans),
        }
        if self.settings.audit_prompts and prompt is not None:
            record["prompt"] = prompt
        audit_log.info(json.dumps(record, ensure_ascii=False))


_RUNTIMES: dict[tuple[str, str], EcoRailRuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(config: Any) -> EcoRailRuntime:
    """The runtime for a RailsConfig (validated ``custom_data.eco``); raises ConfigError on bad settings."""
    config_dir = config_dir_of(config)
    custom = getattr(config, "custom_data", None) or {}
    key = (str(config_dir), json.dumps(custom.get("eco"), sort_keys=True, default=str))
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is None:
            settings = parse_eco_settings(custom, config_dir)
            runtime = _RUNTIMES[key] = EcoRailRuntime(config_dir, settings)
        return runtime


register_cache("rail_runtimes", _RUNTIMES.clear)


def resolve_model_paths(config: Any) -> None:
    """Read ``adapter`` paths of ``engine: eco`` models relative to the rails config folder, like every other
    path in a rails config (NeMo hands ``parameters`` to the provider as they are written). Runs in the
    config's ``init`` hook, before NeMo builds the models."""
    from eco_rails.rails.resolved import config_relative

    config_dir = config_dir_of(config)
    for model in getattr(config, "models", None) or []:
        parameters = getattr(model, "parameters", None)
        if getattr(model, "engine", None) == ECO_ENGINE and isinstance(parameters, dict) and isinstance(parameters.get("adapter"), str):
            parameters["adapter"] = config_relative(parameters["adapter"], config_dir)


def check_rails_config(config: Any) -> EcoRailRuntime:
    """Load-time checks for a config that uses the ECO rail; raise ConfigError with the fix."""
    runtime = runtime_for(config)
    if runtime.settings.on_flag == "corrupt":
        main = [m for m in getattr(config, "models", []) if getattr(m, "type", None) == "main"]
        engine = main[0].engine if main else None
        if engine != ECO_ENGINE:
            raise ConfigError(
                f"{runtime.config_dir}: the eco rail corrupts flagged prompts in the main model, but the main model's "
                f"engine is {engine!r}. Set `engine: eco` on the main model in config.yml, or set "
                "custom_data.eco.on_flag to refuse or log-only to use the rail with another model."
            )
    return runtime
