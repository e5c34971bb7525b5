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
from eco_rails.policy.learned import LearnedLookup, learned_path, lookup_learned, model_identity, strength_source
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
        self._stamp: tuple[float, ...] | None = None
        self._learned: LearnedLookup | None = None
        # The main model the learned strength must have been learned for; set from the RailsConfig at load time
        # (check_rails_config), else read from the folder's config.yml on first use.
        self.model: str | None = None

    def _disk_stamp(self, policy: ForgetPolicy | None) -> tuple[float, ...]:
        """Modification times of what the rail's decisions depend on: the policy, the artifact's manifest, the
        learned strengths beside the policy and the questions they were learned on (their edit makes them stale)."""
        def mtime(path: Path | None) -> float:
            return path.stat().st_mtime_ns if path is not None and path.exists() else -1.0

        manifest = self.settings.artifact_path(policy.name) / MANIFEST if policy else None
        data = self.settings.policy_path.parent / policy.optimization.data if policy and policy.optimization.data else None
        return (mtime(self.settings.policy_path), mtime(manifest), mtime(learned_path(self.settings.policy_path)), mtime(data))

    def _model(self) -> str:
        if self.model is None:
            from eco_rails.rails.rail_config import read_config_yml
            from eco_rails.rails.resolved import MainModel

            try:
                main = MainModel.from_config_yml(read_config_yml(self.config_dir), self.config_dir)
            except ConfigError:
                from eco_rails.engine.model_store import EMBEDDED_MODEL

                main = MainModel(engine=None, model=EMBEDDED_MODEL, parameters={})
            self.model = model_identity(main.model, main.parameters.get("adapter"))
        return self.model

    def classifier(self) -> PromptClassifier:
        """The current classifier; raises an EcoRailsError if it cannot be used (the rail then blocks)."""
        with self._lock:
            if self._classifier is not None and self._disk_stamp(self._policy) == self._stamp:
                return self._classifier
            self._classifier = None
            policy = load_policy(self.settings.policy_path)
            stamp = self._disk_stamp(policy)
            classifier = PromptClassifier(self.settings.artifact_path(policy.name), policy)
            self._learned = self._lookup(policy, classifier)
            self._classifier, self._policy, self._stamp = classifier, policy, stamp
            log.info("eco rail: loaded classifier for policy %s v%s (threshold %.4f, providers %s)",
                     policy.name, policy.version, classifier.threshold, classifier.providers)
            return classifier

    def _lookup(self, policy: ForgetPolicy, classifier: PromptClassifier) -> LearnedLookup:
        """Where ``strength: auto`` comes from: the record beside the policy, else the artifact manifest, else the
        library default (said once, with the fix)."""
        if policy.corruption.strength != "auto":
            return lookup_learned(policy, self.settings.policy_path, self._model())
        lookup = strength_source(policy, self.settings.policy_path, self._model(), classifier.manifest.learned_strength,
                                 classifier.artifact_dir)
        if lookup.status == "learned":
            return lookup
        log.warning("eco rail: %s: %s; flagged prompts use the default strength until you run `eco-rails optimize %s`.",
                    lookup.path, lookup.detail, self.config_dir)
        return lookup

    @property
    def learned(self) -> LearnedLookup | None:
        """Which learned strengths the rail uses and why (after the classifier is loaded)."""
        return self._learned

    @property
    def policy(self) -> ForgetPolicy | None:
        return self._policy

    def corruption(self, target: str | None) -> RailCorruption:
        """The policy's corruption for a target; ``strength: auto`` takes the strength learned by
        ``eco-rails optimize`` (recorded beside the policy for this model, or in the artifact manifest), or the
        library default if none was."""
        policy = self._policy
        if policy is None:
            raise ConfigError("the eco rail has no policy loaded")
        learned = self._learned.strengths if self._learned is not None else {}
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
    main = [m for m in getattr(config, "models", []) if getattr(m, "type", None) == "main"]
    if main and isinstance(getattr(main[0], "parameters", None), dict):
        runtime.model = model_identity(main[0].model, main[0].parameters.get("adapter"))
    if runtime.settings.on_flag == "corrupt":
        engine = main[0].engine if main else None
        if engine != ECO_ENGINE:
            raise ConfigError(
                f"{runtime.config_dir}: the eco rail corrupts flagged prompts in the main model, but the main model's "
                f"engine is {engine!r}. Set `engine: eco` on the main model in config.yml, or set "
                "custom_data.eco.on_flag to refuse or log-only to use the rail with another model."
            )
    return runtime
