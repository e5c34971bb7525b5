"""ECO inside a benchmark, the way a user runs it: a rails config folder with a forget policy, a classifier
fitted by the normal ``eco-rails fit`` code, the strength learned by ``eco-rails optimize``, and the rail's
own runtime deciding each question.

The folder is written under the benchmark's work directory and kept, so a user can open it, chat with it
(``eco-rails chat --config <folder>``) or serve it. Fitting and the strength search are skipped when the
artifact already matches the policy (the policy's version is a hash of its content).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from eco_rails.atomic import write_text_atomic
from eco_rails.engine.corruption import CorruptionSpec
from eco_rails.engine.flags import FlagDecision
from eco_rails.progress import ProgressSink, SilentProgress

CHAT_PROMPT = "{{ history | to_chat_messages }}"
Decide = Callable[[str], tuple[bool, FlagDecision, CorruptionSpec | None]]


# Benchmarks serve every adapter (target, retain, unlearned) merged into the weights: the same answers up to
# rounding, about 1.25x faster on CPU (eco_rails.engine.model_store.apply_adapter). Every method of a run
# is scored on merged engines alike, and the rails config a run writes says `merge_adapter` too.
MERGE_ADAPTERS = True


def write_rails_config(
    folder: Path,
    *,
    name: str,
    description: str,
    entities: Sequence[str],
    examples: Sequence[str],
    keep: Sequence[str],
    optimize_rows: Sequence[dict[str, Any]],
    base_model: str,
    adapter: Path | None,
    parameters: dict[str, Any] | None = None,
    classifier: dict[str, Any] | None = None,
    optimization: dict[str, Any] | None = None,
) -> Path:
    """Write ``config.yml``, ``policy.yml`` and ``optimize.jsonl`` for a benchmark's forget policy."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "optimize.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in optimize_rows))
    policy: dict[str, Any] = {
        "name": name,
        "version": "",
        "description": description,
        "targets": [{
            "id": name,
            "description": description,
            "key_terms": list(entities),
            "entities": [{"name": e} for e in entities],
            "examples": list(examples),
        }],
        "keep": list(keep),
        "classifier": {"target_fpr": 0.05, "epochs": 3, "general_negatives": 300, "seed": 0, **(classifier or {})},
        "corruption": {"method": "rand_noise", "strength": "auto"},
        # chance unless the benchmark has a retain model (TOFU passes objective: retain and its retain adapter);
        # the surrogate is for policies with no reference at all
        "optimization": {"data": "optimize.jsonl", "objective": "chance", **(optimization or {})},
    }
    digest = hashlib.sha256(json.dumps(policy, sort_keys=True).encode() + "".join(json.dumps(r) for r in optimize_rows).encode())
    policy["version"] = digest.hexdigest()[:12]
    header = ("# Written by `eco-rails benchmark`: the benchmark's forget authors are the targets, its retain authors'\n"
              "# training questions are keep examples. Edit and re-fit like any policy.\n")
    write_text_atomic(folder / "policy.yml", header + yaml.safe_dump(policy, sort_keys=False, allow_unicode=True, width=120))
    params = {"max_new_tokens": 64, "temperature": 0, **(parameters or {})}
    if adapter is not None:
        # merged like the benchmark's own engines (MERGE_ADAPTERS), so the config answers as the benchmark scored
        params.update(adapter=str(adapter), merge_adapter=MERGE_ADAPTERS)
    config = {
        "models": [{"type": "main", "engine": "eco", "model": base_model, "parameters": params}],
        "import_paths": ["eco_rails/rails"],
        "rails": {"input": {"flows": ["eco check input"]}},
        # The chat itself goes to the model (NeMo's general template would wrap it in instructions): the
        # benchmark's questions are asked as the model learned them. The rail's rewritten message is in it.
        "prompts": [{"task": "general", "messages": [CHAT_PROMPT]}],
        "custom_data": {"eco": {"policy": "policy.yml", "artifact": f"onnx/{name}", "on_flag": "corrupt"}},
    }
    write_text_atomic(folder / "config.yml", "# Written by `eco-rails benchmark`.\n" + yaml.safe_dump(config, sort_keys=False, width=120))
    return folder


def prepare_eco(config_dir: Path, *, engine: Any, progress: ProgressSink | None = None,
                retain: Any = None) -> tuple[Decide, dict[str, Any]]:
    """Fit the classifier and learn the strength if needed; return the rail's decision function and a
    summary (threshold, learned strength, whether it was fitted now). ``retain``: the loaded retain model, for
    a policy whose optimisation objective is ``retain``."""
    from eco_rails.classifier.fit import fit_policy
    from eco_rails.rails.resolved import resolve_config
    from eco_rails.rails.runtime import EcoRailRuntime
    from eco_rails.strength.optimize import optimize_strength

    progress = progress or SilentProgress()
    resolved = resolve_config(config_dir)
    fitted_now = False
    if resolved.status() != "ok":
        fit_policy(resolved.policy_path, resolved.artifact_path, progress=progress)
        fitted_now = True
    manifest = resolve_config(config_dir).manifest()
    if not manifest.learned_strength:
        optimize_strength(config_dir, progress=progress, engine=engine, retain=retain)
    runtime = EcoRailRuntime(resolved.config_dir, resolved.settings)
    classifier = runtime.classifier()

    def decide(question: str) -> tuple[bool, FlagDecision, CorruptionSpec | None]:
        decision = classifier.decide([{"role": "user", "content": question}])
        if not decision.flagged:
            return False, decision, None
        return True, decision, runtime.corruption(decision.target).spec

    manifest = classifier.manifest
    summary = {"config": str(config_dir), "artifact": str(resolved.artifact_path), "threshold": manifest.threshold, "learned_strength": manifest.learned_strength,
               "fitted_now": fitted_now, "policy_version": manifest.policy_version,
               "optimization": manifest.optimization}
    return decide, summary
