"""``eco-rails optimize``: learn the policy's corruption strength offline, by zeroth-order search.

ECO chooses the corruption so that the corrupted model behaves on the forget set like a model that never
learned it. Three objectives; the first and last are searched for the *weakest* strength that meets them
(:func:`~eco_rails.strength.search.minimal_strength_search`, forward passes only), because weaker noise keeps
answers fluent:

* ``surrogate`` (default): with no retain model at hand, the reference is the clean model on the same
  questions about invented names (:mod:`eco_rails.strength.surrogate`). The strength is the weakest at which
  the corrupted model's probability of the right choice, averaged over the in-scope questions, is no higher
  than the reference's. Drawn with ``surrogate_seeds`` name draws; the median strength is kept and the spread
  reported, so one can see the reference is stable. The KS p-value between the two distributions is
  reported (ECO's forget quality, with the surrogate in the retain model's place).
* ``retain``: where a model that never learned the forget data exists (a benchmark's retain model, named by
  ``retain_model``), ECO's own objective: the strength that *maximises* forget quality, the KS p-value between
  the corrupted model's truth ratios on the forget questions and the retain model's
  (:func:`~eco_rails.strength.search.best_strength_search`), subject to the fluency bound below (the best
  strengths are checked in turn, and the first fluent one is kept).
* ``chance``: multiple-choice accuracy falls to ``chance + target_margin`` (ECO's objective for WMDP/MMLU-like
  multiple-choice knowledge). Stronger: it asks for less than a never-seen model would get.

Fluency is checked on ``fluency_prompts`` questions with the config's own decoding settings: empty answers,
answers that loop, and the perplexity of corrupted vs clean answers under the clean model.

The result is recorded beside the policy (``policy.learned.json``, :mod:`eco_rails.policy.learned`) for the
config's main model, so a fresh clone serves the learned corruption without searching, and in the classifier
artifact's manifest when that is fitted. Retain behaviour needs no term: unflagged prompts are never corrupted.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

from eco_rails.atomic import write_text_atomic
from eco_rails.classifier.artifact import MANIFEST
from eco_rails.engine.flags import FlagDecision
from eco_rails.errors import ConfigError
from eco_rails.evaluation.fluency import is_empty, is_loop, is_paraphrase_loop
from eco_rails.evaluation.mcq_data import MCQRow, load_rows
from eco_rails.policy import ForgetPolicy
from eco_rails.policy.learned import learned_path, model_identity, new_entry, write_learned
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.rails.resolved import config_relative, resolve_config
from eco_rails.strength.search import minimal_strength_search
from eco_rails.strength.surrogate import answer_probability, mean_gap, substitute_terms


def forget_accuracy(engine: Any, rows: list[MCQRow], spec: Any | None, whole_prompt: bool = False,
                    use_chat_template: bool = True) -> float:
    """Multiple-choice accuracy on ``rows``, every prompt corrupted with ``spec`` (None: clean)."""
    return statistics.fmean(hit for _, hit in _answers(engine, [(r, r.prompt) for r in rows], spec, whole_prompt, use_chat_template))


def _answers(engine: Any, items: list[tuple[MCQRow, str]], spec: Any | None, whole_prompt: bool,
             use_chat_template: bool) -> list[tuple[float, bool]]:
    """(probability of the right choice, whether it was picked) for each (row, prompt text)."""
    return [(answer_probability(s.normalized, row.answer), s.predicted() == row.answer)
            for (row, _), s in zip(items, _scores(engine, items, spec, whole_prompt, use_chat_template))]


def _scores(engine: Any, items: list[tuple[MCQRow, str]], spec: Any | None, whole_prompt: bool,
            use_chat_template: bool) -> list[Any]:
    """The choices' teacher-forced scores for each (row, prompt text), every prompt corrupted with ``spec``."""
    from eco_rails.evaluation.scoring import score_choices

    flag = FlagDecision.flag(whole_prompt=whole_prompt) if spec is not None else None
    return [score_choices(engine, prompt, row.choices, flag=flag, corruption=spec, use_chat_template=use_chat_template)
            for row, prompt in items]


def truth_ratios(engine: Any, rows: list[MCQRow], spec: Any | None, whole_prompt: bool = False,
                 use_chat_template: bool = True) -> list[float]:
    """TOFU's truth ratio of each row (wrong choices' geometric-mean probability over the right one's,
    length-normalised), every prompt corrupted with ``spec`` (None: clean)."""
    return [s.truth_ratio(r.answer) for r, s in zip(rows, _scores(engine, [(r, r.prompt) for r in rows], spec, whole_prompt, use_chat_template))]


def retain_engine(resolved: Any, retain_model: str) -> Any:
    """The retain reference named by ``optimization.retain_model``: a PEFT adapter on the config's main model,
    or a model folder of its own (same device and dtype as the main model)."""
    from eco_rails.engine.generation import get_engine

    path = Path(config_relative(retain_model, resolved.policy_path.parent))
    if not path.exists():
        raise ConfigError(f"{resolved.policy_path}: optimization.retain_model {retain_model!r} does not exist ({path}). "
                          "Name a PEFT adapter folder or a model folder trained without the forget data.")
    params = resolved.main_model.parameters
    if (path / "adapter_config.json").is_file():
        # merged or not like the main model, so both sides of the comparison round alike
        return get_engine(resolved.main_model.model, device=params.get("device"), dtype=params.get("dtype"), adapter=path,
                          merge_adapter=bool(params.get("merge_adapter")))
    return get_engine(path, device=params.get("device"), dtype=params.get("dtype"))


def fluency_check(engine: Any, rows: list[MCQRow], spec: Any, whole_prompt: bool = False, settings: Any = None) -> dict[str, Any]:
    """Corrupted greedy answers to forget questions: empty and looping shares, and the median perplexity (under
    the clean model) of corrupted vs clean answers. ``settings``: the config's decoding settings."""
    from eco_rails.engine.generation import GenerationSettings
    from eco_rails.evaluation.scoring import continuation_perplexity

    settings = settings or GenerationSettings(max_new_tokens=64)
    clean, corrupted, texts = [], [], []
    for r in rows:
        clean.append(continuation_perplexity(engine, r.prompt, engine.generate(r.prompt, settings=settings).text))
        text = engine.generate(r.prompt, flag=FlagDecision.flag(whole_prompt=whole_prompt), corruption=spec, settings=settings).text
        texts.append(text)
        corrupted.append(continuation_perplexity(engine, r.prompt, text))
    clean_ppl = statistics.median([p for p in clean if p == p] or [float("nan")])
    corrupt_ppl = statistics.median([p for p in corrupted if p == p] or [float("nan")])
    return {"clean_perplexity": clean_ppl, "corrupted_perplexity": corrupt_ppl, "ratio": corrupt_ppl / clean_ppl,
            "empty_rate": statistics.fmean(is_empty(t) for t in texts), "loop_rate": statistics.fmean(is_loop(t) for t in texts),
            "paraphrase_loop_rate": statistics.fmean(is_paraphrase_loop(t) for t in texts),
            "answers": texts}


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


def policy_terms(policy: ForgetPolicy) -> list[str]:
    """Every key term and entity name of the policy, written in the policy's script (what the surrogate replaces)."""
    return sorted({t for target in policy.targets for t in target.all_terms()})


def optimize_strength(config_dir: Path, *, progress: ProgressSink | None = None, engine: Any = None,
                      retain: Any = None) -> dict:
    """Learn the strength for a rails config's policy; record it beside the policy and in the artifact manifest.

    ``engine`` / ``retain``: already loaded engines for the main model and the retain reference (loaded from
    the config and ``optimization.retain_model`` when None).

    Returns the search report (strength, objective values, evaluations, forward passes, fluency, history).
    Raises :class:`ConfigError` when the policy has no optimisation data, its method has no strength, or
    (surrogate objective) no optimisation question names a key term or entity.
    """
    from scipy.stats import ks_2samp

    resolved = resolve_config(config_dir)
    policy = resolved.policy
    if policy.corruption.method != "rand_noise":
        raise ConfigError(f"{resolved.policy_path}: strength: auto is learned for rand_noise only; "
                          f"{policy.corruption.method} has no strength (set corruption.dims instead).")
    rows = load_optimization_rows(policy, resolved.policy_path)
    if engine is None:
        engine = resolved.engine()
    opt = policy.optimization
    whole = policy.corruption.scope == "whole_prompt"
    chat = bool(resolved.main_model.parameters.get("chat_template", True))  # score prompts as the provider renders them
    started = time.perf_counter()
    sink = progress or SilentProgress()
    cache: dict[float, list[tuple[float, bool]]] = {}
    forward_passes = 0

    def answers(items: list[tuple[MCQRow, str]], s: float | None) -> list[tuple[float, bool]]:
        nonlocal forward_passes
        forward_passes += len(items)
        return _answers(engine, items, policy.corruption.spec(learned_strength=s) if s is not None else None, whole, chat)

    if opt.objective == "retain":
        found = _retain_search(resolved, rows, engine, retain, whole, chat, sink)
        return _finish(resolved, found, found["strength"], started)
    terms = policy_terms(policy)
    # the questions searched on: all of them (chance), or those naming a key term or entity (surrogate)
    searched = rows if opt.objective == "chance" else [r for r in rows if substitute_terms(r.prompt, terms, random.Random(0))]
    if not searched:
        raise ConfigError(f"{opt.data}: no optimization question names a key term or entity of the policy, so there is "
                          "nothing to replace by an invented name for the surrogate reference. Add questions that name "
                          "them, or set optimization.objective: chance.")
    items = [(r, r.prompt) for r in searched]
    plain = answers(items, None)
    report: dict[str, Any] = {"objective": opt.objective, "questions": len(rows), "searched_questions": len(items),
                              "plain_accuracy": statistics.fmean(h for _, h in plain),
                              "plain_answer_probability": statistics.fmean(p for p, _ in plain)}
    if opt.objective == "chance":
        chance = statistics.fmean(1 / len(r.choices) for r in rows)
        target = chance + opt.target_margin

        def value(s: float) -> float:
            if s not in cache:
                cache[s] = answers(items, s)
            return statistics.fmean(h for _, h in cache[s])

        advance = sink.task("Optimizing corruption strength", opt.budget)
        result = minimal_strength_search(
            value, target=target, init=opt.init_strength, max_strength=opt.max_strength, budget=opt.budget,
            on_evaluation=lambda e: advance(1, description=f"strength {e.strength:.3f}: accuracy {e.value:.2f}"))
        strength, reached, evaluations, history = result.strength, result.reached_target, result.evaluations, result.history
        report.update(chance=chance, target_accuracy=target)
    else:
        # for each name draw, the same questions about invented names
        surrogates: list[list[tuple[MCQRow, str]]] = []
        for seed in range(opt.surrogate_seeds):
            rng = random.Random(seed)
            pairs = []
            for r in searched:
                question, choices = substitute_terms(r.prompt, terms, rng, r.choices) or (r.prompt, list(r.choices))
                pairs.append((r.model_copy(update={"choices": tuple(choices)}), question))
            surrogates.append(pairs)
        advance = sink.task("Optimizing corruption strength", opt.budget * opt.surrogate_seeds + opt.surrogate_seeds)
        runs = []
        for seed, pairs in enumerate(surrogates):
            reference = [p for p, _ in answers(pairs, None)]
            advance(1, description=f"reference {seed + 1}: p(right) {statistics.fmean(reference):.2f}")

            def gap(s: float, reference: list[float] = reference) -> float:
                if s not in cache:
                    cache[s] = answers(items, s)
                return mean_gap([p for p, _ in cache[s]], reference)

            result = minimal_strength_search(
                gap, target=0.0, init=opt.init_strength, max_strength=opt.max_strength, budget=opt.budget,
                on_evaluation=lambda e: advance(1, description=f"strength {e.strength:.3f}: gap {e.value:+.3f}"))
            runs.append((result, reference))
        runs.sort(key=lambda run: run[0].strength)
        result, reference = runs[len(runs) // 2]  # the median strength over the name draws
        strength, reached, evaluations, history = result.strength, result.reached_target, len(cache), result.history
        corrupted = [p for p, _ in cache[strength]]
        report.update(
            example_surrogate=surrogates[0][0][1],
            reference_answer_probability=statistics.fmean(reference),
            answer_probability=statistics.fmean(corrupted),
            ks_pvalue=float(ks_2samp(corrupted, reference).pvalue),
            seed_strengths=[run[0].strength for run in runs],
            seed_reference_probability=[statistics.fmean(run[1]) for run in runs],
        )
    report.update(
        strength=strength, accuracy=statistics.fmean(h for _, h in cache.get(strength, [])) if strength in cache else None,
        reached_target=reached, evaluations=evaluations, forward_passes=forward_passes,
        history=[{"strength": e.strength, "value": e.value, "phase": e.phase} for e in history],
    )
    report.update(_fluency(resolved, rows, engine, whole, strength))
    return _finish(resolved, report, strength, started)


def _fluency(resolved: Any, rows: list[MCQRow], engine: Any, whole: bool, strength: float) -> dict[str, Any]:
    """The fluency check of ``strength`` as report fields (``fluency``, ``fluency_answers``, ``fluent``); empty
    and not fluent when ``fluency_prompts`` is 0 (nothing was checked)."""
    from eco_rails.engine.generation import GenerationSettings

    opt = resolved.policy.optimization
    if not opt.fluency_prompts:
        return {"fluency": {}, "fluency_answers": [], "fluent": False}
    spec = resolved.policy.corruption.spec(learned_strength=strength)
    decoding = GenerationSettings.from_parameters(resolved.main_model.parameters, source="models[].parameters").model_copy(
        update={"max_new_tokens": 64})
    fluency = fluency_check(engine, rows[: opt.fluency_prompts], spec, whole, decoding)
    return {"fluency": {k: v for k, v in fluency.items() if k != "answers"}, "fluency_answers": fluency["answers"],
            "fluent": fluency["ratio"] <= opt.max_perplexity_ratio and fluency["empty_rate"] == 0}


def _retain_search(resolved: Any, rows: list[MCQRow], engine: Any, retain: Any, whole: bool, chat: bool,
                   sink: ProgressSink) -> dict[str, Any]:
    """The retain objective: the strength whose corrupted truth ratios are most like the retain model's (KS
    p-value, maximised by :func:`best_strength_search`), then the fluency bound: the best strengths are checked
    in turn (at most three) and the first fluent one is kept."""
    from scipy.stats import ks_2samp

    from eco_rails.strength.search import best_strength_search

    policy, opt = resolved.policy, resolved.policy.optimization
    usable = [r for r in rows if len(r.choices) >= 2]
    if len(usable) < 5:
        raise ConfigError(f"{opt.data}: objective: retain compares truth-ratio distributions and needs at least 5 "
                          f"questions with two or more choices ({len(usable)} found).")
    if retain is None:
        retain = retain_engine(resolved, str(opt.retain_model))
    advance = sink.task("Optimizing corruption strength", opt.budget + 2)
    reference = truth_ratios(retain, usable, None, whole, chat)
    clean = truth_ratios(engine, usable, None, whole, chat)
    advance(1, description="retain model's truth ratios")
    ratios: dict[float, list[float]] = {}

    def quality(s: float) -> float:
        ratios[s] = truth_ratios(engine, usable, policy.corruption.spec(learned_strength=s), whole, chat)
        return float(ks_2samp(ratios[s], reference).pvalue)

    result = best_strength_search(
        quality, init=opt.init_strength, max_strength=opt.max_strength, budget=opt.budget,
        on_evaluation=lambda e: advance(1, description=f"strength {e.strength:.3f}: forget quality {e.value:.3f}"))
    report: dict[str, Any] = {
        "objective": "retain", "questions": len(rows), "searched_questions": len(usable),
        "retain_model": str(opt.retain_model), "clean_forget_quality": float(ks_2samp(clean, reference).pvalue),
        "reference_truth_ratio": statistics.median(reference), "clean_truth_ratio": statistics.median(clean),
        "reached_target": True, "evaluations": result.evaluations, "forward_passes": len(usable) * (result.evaluations + 2),
        "history": [{"strength": e.strength, "value": e.value, "phase": e.phase} for e in result.history],
    }
    candidates = sorted(result.history, key=lambda e: (-e.value, e.strength))
    tried: list[tuple[Any, dict[str, Any]]] = []
    for e in candidates[: 3 if opt.fluency_prompts else 1]:
        tried.append((e, _fluency(resolved, rows, engine, whole, e.strength)))
        if tried[-1][1]["fluent"]:
            break
    # the first fluent one; none fluent: the best one is kept, and the report says so (fluent: false)
    chosen, fluency = tried[-1] if tried[-1][1]["fluent"] else tried[0]
    report.update(strength=chosen.strength, forget_quality=chosen.value, truth_ratio=statistics.median(ratios[chosen.strength]),
                  **fluency)
    report["fluency_tried"] = [{"strength": e.strength, "forget_quality": e.value, "fluent": f["fluent"]}
                               for e, f in tried] if opt.fluency_prompts else []
    advance(1)
    return report


def _finish(resolved: Any, report: dict[str, Any], strength: float, started: float) -> dict[str, Any]:
    """Record the learned strength beside the policy and in the artifact manifest."""
    policy, opt = resolved.policy, resolved.policy.optimization
    report["seconds"] = round(time.perf_counter() - started, 1)
    strengths = {t: strength for t in policy.target_ids}
    data_bytes = (resolved.policy_path.parent / str(opt.data)).read_bytes()
    model = model_identity(resolved.main_model.model, resolved.main_model.parameters.get("adapter"))
    summary = {k: v for k, v in report.items() if k not in ("history", "fluency_answers")}
    write_learned(learned_path(resolved.policy_path), policy, model, new_entry(policy, data_bytes, strengths, opt.objective, summary))
    report["recorded"] = str(learned_path(resolved.policy_path))
    if resolved.status() == "ok":
        manifest = resolved.manifest()
        updated = manifest.model_copy(update={"learned_strength": strengths, "optimization": report})
        write_text_atomic(resolved.artifact_path / MANIFEST, updated.model_dump_json(indent=2))
    return report
