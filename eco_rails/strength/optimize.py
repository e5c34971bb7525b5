"""``eco-rails optimize``: learn the policy's corruption strength offline, by zeroth-order search.

Objective (following ECO's formulation for multiple-choice knowledge, e.g. WMDP/MMLU subjects): the
accuracy of the model on the policy's forget questions, every prompt corrupted with strength ``s``, should
fall to chance (``<= chance + target_margin``). We search for the *weakest* such ``s``
(:func:`~eco_rails.strength.search.minimal_strength_search`), because weaker noise keeps the answers fluent.
Where we depart from the paper: it matches generation outputs to a retained model for generation tasks;
with no retained model here, fluency is bounded instead, as the perplexity of corrupted greedy answers under
the clean model relative to the clean answers' perplexity (reported, and checked against
``max_perplexity_ratio``). Retain behaviour needs no term: unflagged prompts are never corrupted.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from eco_rails.atomic import write_text_atomic
from eco_rails.classifier.artifact import MANIFEST
from eco_rails.engine.flags import FlagDecision
from eco_rails.errors import ConfigError
from eco_rails.evaluation.mcq_data import MCQRow, load_rows
from eco_rails.policy import ForgetPolicy
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.rails.resolved import resolve_config
from eco_rails.strength.search import Evaluation, minimal_strength_search


def forget_accuracy(engine: Any, rows: list[MCQRow], spec: Any | None, whole_prompt: bool = False,
                    use_chat_template: bool = True) -> float:
    from eco_rails.evaluation.scoring import score_choices

    flag = FlagDecision.flag(whole_prompt=whole_prompt) if spec is not None else None
    hits = sum(score_choices(engine, r.prompt, r.choices, flag=flag, corruption=spec,
                             use_chat_template=use_chat_template).predicted() == r.answer for r in rows)
    return hits / len(rows)


def fluency_ratio(engine: Any, rows: list[MCQRow], spec: Any, whole_prompt: bool = False, max_new_tokens: int = 32) -> dict[str, float]:
    """Median perplexity (under the clean model) of corrupted vs clean greedy answers."""
    from eco_rails.engine.generation import GenerationSettings
    from eco_rails.evaluation.scoring import continuation_perplexity

    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    clean, corrupted = [], []
    for r in rows:
        clean.append(continuation_perplexity(engine, r.prompt, engine.generate(r.prompt, settings=settings).text))
        text = engine.generate(r.prompt, flag=FlagDecision.flag(whole_prompt=whole_prompt), corruption=spec, settings=settings).text
        corrupted.append(continuation_perplexity(engine, r.prompt, text))
    clean_ppl = statistics.median([p for p in clean if p == p] or [float("nan")])
    corrupt_ppl = statistics.median([p for p in corrupted if p == p] or [float("nan")])
    return {"clean_perplexity": clean_ppl, "corrupted_perplexity": corrupt_ppl, "ratio": corrupt_ppl / clean_ppl}


def load_optimization_rows(policy: ForgetPolicy, policy_path: Path) -> list[MCQRow]:
    settings = policy.optimization
    if not settings.data:
        raise ConfigError(f"{policy_path}: corruption.strength is auto but optimization.data names no forget questions. "
                          "Add a JSONL file of multiple-choice questions, or set corruption.strength to a number.")
    rows, problems = load_rows(policy_path.parent / settings.data, kind="forget")
    if problems:
        raise ConfigError(f"{settings.data}: " + "; ".join(f"line {p.line}: {p.error}" for p in problems[:5]))
    if not rows:
        raise ConfigError(f"{settings.data} has no questions.")
    return rows


def optimize_strength(config_dir: Path, *, progress: ProgressSink | None = None, engine: Any = None) -> dict:
    """Learn the strength for a rails config's policy and store it in the artifact manifest (atomically).

    Returns the search report (strength, accuracies, evaluations, fluency, history). Raises
    :class:`ConfigError` when the policy has no optimisation data, its method has no strength, or the
    artifact is missing or stale (fit first).
    """
    resolved = resolve_config(config_dir)
    policy = resolved.policy
    if policy.corruption.method != "rand_noise":
        raise ConfigError(f"{resolved.policy_path}: strength: auto is learned for rand_noise only; "
                          f"{policy.corruption.method} has no strength (set corruption.dims instead).")
    artifact = resolved.artifact_path
    if resolved.status() != "ok":
        raise ConfigError(f"The classifier in {artifact} is {resolved.status()}; run `eco-rails fit {config_dir}` first.")
    manifest = resolved.manifest()
    rows = load_optimization_rows(policy, resolved.policy_path)
    if engine is None:
        engine = resolved.engine()
    opt = policy.optimization
    whole = policy.corruption.scope == "whole_prompt"
    chance = statistics.mean(1 / len(r.choices) for r in rows)
    target = chance + opt.target_margin
    advance = (progress or SilentProgress()).task("Optimizing corruption strength", opt.budget)
    started = time.perf_counter()

    def on_eval(e: Evaluation) -> None:
        advance(1, description=f"strength {e.strength:.3f}: accuracy {e.value:.2f}")

    chat = bool(resolved.main_model.parameters.get("chat_template", True))  # score prompts as the provider renders them
    plain = forget_accuracy(engine, rows, None, use_chat_template=chat)
    result = minimal_strength_search(
        lambda s: forget_accuracy(engine, rows, policy.corruption.spec(learned_strength=s), whole, chat),
        target=target, init=opt.init_strength, max_strength=opt.max_strength, budget=opt.budget, on_evaluation=on_eval,
    )
    spec = policy.corruption.spec(learned_strength=result.strength)
    fluency = fluency_ratio(engine, rows[: opt.fluency_prompts], spec, whole) if opt.fluency_prompts else {}
    report = {
        "questions": len(rows), "chance": chance, "target_accuracy": target, "plain_accuracy": plain,
        "strength": result.strength, "accuracy": result.value, "reached_target": result.reached_target,
        "evaluations": result.evaluations, "forward_passes": result.evaluations * len(rows),
        "fluency": fluency, "fluent": bool(fluency) and fluency["ratio"] <= opt.max_perplexity_ratio,
        "seconds": round(time.perf_counter() - started, 1),
        "history": [{"strength": e.strength, "accuracy": e.value, "phase": e.phase} for e in result.history],
    }
    updated = manifest.model_copy(update={"learned_strength": {t: result.strength for t in policy.target_ids},
                                          "optimization": report})
    write_text_atomic(artifact / MANIFEST, updated.model_dump_json(indent=2))
    return report
