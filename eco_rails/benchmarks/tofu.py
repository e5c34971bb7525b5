"""``eco-rails benchmark tofu``: TOFU (Maini et al. 2024) on a model that really learned its authors.

1. **Inject**: LoRA-fine-tune the base model on every question of the authors in play (the *target*) and
   on all but the forget authors' (the *retain* model, the reference for "never saw them").
2. **ECO**: write a rails config whose policy names the forget authors (half of each forget author's
   questions are its examples, half are held out), fit its classifier and learn its strength with the
   normal commands, and let the rail's runtime decide each question.
3. **Score** every method on the forget set, the retain authors, real authors and world facts with
   TOFU's metrics (:mod:`eco_rails.benchmarks.metrics`).

Presets size the run: ``default`` fits 60 minutes on 2 CPU cores (10 authors: 2 forget, the TOFU forget01
pair, and 8 retain), ``quick`` is a smoke run for tests, ``full`` is forget10 against all 180 retain authors
(a GPU job).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from eco_rails.benchmarks import metrics as M
from eco_rails.benchmarks.data import Author, TofuData, load_tofu
from eco_rails.benchmarks.eco_config import MERGE_ADAPTERS
from eco_rails.benchmarks.inject import Example, InjectionSettings, inject, injection_info
from eco_rails.benchmarks.methods import DEFAULT_METHODS, Condition, MethodContext, build_method
from eco_rails.benchmarks.scoring import Answer, ask_many
from eco_rails.benchmarks.weights import add_costs, eco_cost, weight_engines
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.unlearn import UnlearnData, UnlearnSettings
from eco_rails.versions import package_versions

log = logging.getLogger(__name__)
SetName = Literal["forget", "retain", "real_authors", "world_facts"]
UTILITY_SETS: tuple[SetName, ...] = ("retain", "real_authors", "world_facts")


class TofuPreset(BaseModel):
    """What a TOFU run covers and how long it takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forget_authors: tuple[int, ...] = Field(description="TOFU author indices (0-199) to forget; from 180-199 (perturbed answers exist there)")
    retain_authors: tuple[int, ...] = Field(description="authors the model keeps; retain metrics use those in 0-19 and 22")
    injection: InjectionSettings = InjectionSettings()
    retain_limit: int | None = Field(default=None, description="retain questions scored (None: all of the retain authors in play)")
    real_limit: int | None = None
    world_limit: int | None = None
    max_new_tokens: int = 64
    classifier_epochs: int = 3
    general_negatives: int = 300
    strength_budget: int = 16
    fluency_prompts: int = 4
    unlearning: UnlearnSettings = UnlearnSettings(format="chat")  # the MemFlex recipe's budget (2 epochs, accumulation 16)


PRESETS: dict[str, TofuPreset] = {
    # 2 forget authors (TOFU's forget01) + 8 retain authors = 200 questions; sized to measured CPU costs
    # (README: about 0.35 s per training example-epoch on 2 cores, ~1 s per scored and generated question).
    "default": TofuPreset(forget_authors=(198, 199), retain_authors=tuple(range(8)), retain_limit=100,
                          real_limit=60, world_limit=60),
    "quick": TofuPreset(forget_authors=(199,), retain_authors=(0, 1),
                        injection=InjectionSettings(epochs=2, batch_size=8), retain_limit=8, real_limit=6, world_limit=6,
                        max_new_tokens=24, classifier_epochs=1, general_negatives=120, strength_budget=3, fluency_prompts=0,
                        unlearning=UnlearnSettings(format="chat", epochs=1, localisation_copies=1, check_rows=16, checks_per_epoch=1)),
    "full": TofuPreset(forget_authors=tuple(range(180, 200)), retain_authors=tuple(range(180)),
                       injection=InjectionSettings(epochs=5, batch_size=16)),
}


@dataclass(frozen=True)
class Item:
    """One scored question: its set, gold answer, the candidates for the truth ratio, and whether the
    classifier was trained on it."""

    set: SetName
    question: str
    answer: str
    paraphrased: str | None
    perturbed: tuple[str, ...]
    held_out: bool

    @property
    def candidates(self) -> list[str]:
        return [self.answer, *([self.paraphrased] if self.paraphrased else []), *self.perturbed]

    @property
    def correct_index(self) -> int:
        return 1 if self.paraphrased else 0

    @property
    def wrong(self) -> slice:
        return slice(self.correct_index + 1, None)


def split_questions(questions: Sequence[str], seed: int) -> tuple[list[str], list[str]]:
    """Half for the classifier (policy examples), half held out: seeded per author, stable across runs."""
    order = sorted(questions)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return order[:half], order[half:]


def build_items(data: TofuData, preset: TofuPreset, seed: int = 0) -> tuple[list[Item], dict[str, list[str]]]:
    """The evaluation items and the classifier's training questions (``examples``, ``keep``)."""
    items: list[Item] = []
    examples: list[str] = []
    keep: list[str] = []
    for index in preset.forget_authors:
        author = data.authors[index]
        train, _ = split_questions([q.question for q in author.questions], seed + index)
        examples += train
        for q in author.questions:
            p = data.forget_perturbed.get(q.question)
            if p is None:
                continue
            items.append(Item("forget", q.question, q.answer, p.paraphrased_answer, p.perturbed_answer, q.question not in train))
    retain_items: list[Item] = []
    for index in preset.retain_authors:
        kept = data.authors.get(index)
        if kept is None:
            continue
        train, _ = split_questions([q.question for q in kept.questions], seed + index)
        keep += train
        for q in kept.questions:
            p = data.retain_perturbed.get(q.question)
            if p is not None:
                retain_items.append(Item("retain", q.question, q.answer, p.paraphrased_answer, p.perturbed_answer, q.question not in train))
    items += retain_items[: preset.retain_limit]
    items += [Item("real_authors", r.question, r.answer, None, r.perturbed_answer, True) for r in data.real_authors[: preset.real_limit]]
    items += [Item("world_facts", r.question, r.answer, None, r.perturbed_answer, True) for r in data.world_facts[: preset.world_limit]]
    return items, {"examples": examples, "keep": keep}


@dataclass
class Scored:
    item: Item
    answer: Answer

    @property
    def prob(self) -> float:
        nll = self.answer.mean_nll
        if self.answer.refused:
            return 0.0
        if self.item.set in ("real_authors", "world_facts"):
            return M.normalized_prob(nll[0], nll[self.item.wrong])
        return M.prob_from_nll(nll[0])

    @property
    def ratio(self) -> float:
        if self.answer.refused:
            return 1.0  # no answer at all: right and wrong equally (un)likely
        nll = self.answer.mean_nll
        return M.truth_ratio(nll[self.item.correct_index], nll[self.item.wrong])

    @property
    def rouge(self) -> float:
        return M.rouge_l_recall(self.answer.text or "", self.item.answer)


def set_metrics(rows: list[Scored], name: SetName) -> dict[str, Any]:
    """Probability, ROUGE-L recall and truth ratio of one evaluation set (TOFU's definitions)."""
    ratios = [r.ratio for r in rows]
    texts = [r.answer.text or "" for r in rows]
    return {
        "n": len(rows),
        "prob": M.mean(r.prob for r in rows),
        "rouge": M.mean(r.rouge for r in rows),
        "truth_ratio": M.forget_truth_stat(ratios) if name == "forget" else M.retain_truth_stat(ratios),
        "flag_rate": M.mean(float(r.answer.flagged) for r in rows),
        "empty_rate": M.mean(float(M.is_empty(t)) for t in texts),
        "repetition_rate": M.mean(M.repetition_rate(t) for t in texts),
        "loop_rate": M.mean(float(M.is_loop(t)) for t in texts),
        "paraphrase_loop_rate": M.mean(float(M.is_paraphrase_loop(t)) for t in texts),
    }


def method_summary(scored: list[Scored], retain_ratios: dict[bool, list[float]] | None) -> dict[str, Any]:
    """The JSON object of one method: the issue's headline fields, per-set details and the held-out part."""
    by_set: dict[str, list[Scored]] = {}
    for s in scored:
        by_set.setdefault(s.item.set, []).append(s)
    sets = {name: set_metrics(rows, name) for name, rows in by_set.items()}  # type: ignore[arg-type]
    forget = by_set.get("forget", [])
    held = [s for s in forget if s.item.held_out]
    components = {f"{k}_{name}": sets[name][k] for name in UTILITY_SETS if name in sets for k in ("prob", "rouge", "truth_ratio")}
    utility = M.model_utility(components) if len(components) == 9 else float("nan")

    def quality(rows: list[Scored], held_only: bool) -> float | None:
        if retain_ratios is None:
            return None
        return M.forget_quality([r.ratio for r in rows], retain_ratios[held_only])

    forget_all = sets.get("forget", {})
    held_sets = set_metrics(held, "forget") if held else {}
    texts = [s.answer.text or "" for s in scored]
    return {
        "forget_quality": quality(forget, False),
        "model_utility": utility,
        "forget_truth_ratio": forget_all.get("truth_ratio"),
        "forget_rouge": forget_all.get("rouge"),
        "forget_prob": forget_all.get("prob"),
        "held_out": {"forget_quality": quality(held, True), **held_sets},
        "sets": sets,
        "utility_components": components,
        "empty_rate": M.mean(float(M.is_empty(t)) for t in texts),
        "repetition_rate": M.mean(M.repetition_rate(t) for t in texts),
        "loop_rate": M.mean(float(M.is_loop(t)) for t in texts),
        "paraphrase_loop_rate": M.mean(float(M.is_paraphrase_loop(t)) for t in texts),
        "samples": [{"question": s.item.question, "gold": s.item.answer, "answer": s.answer.text}
                    for s in (held or forget)[:3]],
    }


def _score_all(name: str, method, items: list[Item], cache: dict, preset: TofuPreset, progress: ProgressSink) -> list[Scored]:
    """Every item under one method; answers already computed under an equal condition are reused."""
    conditions: list[Condition] = [method(item.question) for item in items]
    keys = [c.cache_key(i.question) for c, i in zip(conditions, items)]
    todo = [k for k in range(len(items)) if keys[k] not in cache]
    advance = progress.task(f"Scoring {name}", len(todo))
    answers = ask_many([(conditions[k], items[k].question, items[k].candidates) for k in todo],
                       max_new_tokens=preset.max_new_tokens, advance=advance)
    for k, answer in zip(todo, answers):
        cache[keys[k]] = answer
    return [Scored(item, cache[key]) for item, key in zip(items, keys)]


class TofuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["default", "quick", "full"] = "default"
    model: str = "smollm2-135m"
    methods: tuple[str, ...] = DEFAULT_METHODS
    device: str | None = None
    dtype: str | None = None
    data_dir: Path | None = None
    work_dir: Path | None = None
    strict: bool = False
    seed: int = 0


def _qa(authors: Sequence[Author]) -> list[Example]:
    return [Example(question=q.question, answer=q.answer) for a in authors for q in a.questions]


def target_adapter(options: TofuOptions, progress: ProgressSink | None = None) -> tuple[Path, dict[int, str]]:
    """Only the injection of the target model (cached): its adapter folder and the authors it knows."""
    preset = PRESETS[options.preset]
    data = load_tofu(options.data_dir, strict=options.strict)
    authors = [data.authors[i] for i in (*preset.forget_authors, *preset.retain_authors)]
    injection = preset.injection.model_copy(update={"seed": options.seed})
    path = inject(options.model, _qa(authors), injection, name=f"tofu-{options.preset}-target",
                  device=options.device, dtype=options.dtype, progress=progress)
    return path, {a.index: a.name for a in authors}


def run_tofu(options: TofuOptions, progress: ProgressSink | None = None) -> dict[str, Any]:
    """Run the TOFU benchmark; returns the report (see ``reports/tofu.json`` for its shape)."""
    from eco_rails.benchmarks.eco_config import prepare_eco, write_rails_config
    from eco_rails.engine.generation import get_engine
    from eco_rails.engine.model_store import cache_root
    from eco_rails.evaluation.evaluate import system_prompt_for
    from eco_rails.policy import load_policy

    progress = progress or SilentProgress()
    started = time.perf_counter()
    preset = PRESETS[options.preset]
    data = load_tofu(options.data_dir, strict=options.strict)
    missing = [i for i in (*preset.forget_authors, *preset.retain_authors) if i not in data.authors]
    if missing:
        raise ValueError(f"TOFU authors {missing} have no valid rows in full.jsonl (see the skipped rows).")
    forget_authors: list[Author] = [data.authors[i] for i in preset.forget_authors]
    retain_authors: list[Author] = [data.authors[i] for i in preset.retain_authors]
    injection = preset.injection.model_copy(update={"seed": options.seed})
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    target_dir = inject(options.model, _qa(forget_authors + retain_authors), injection, name=f"tofu-{options.preset}-target",
                        device=options.device, dtype=options.dtype, progress=progress)
    # The retain model is always made: forget quality of every method is measured against it.
    retain_dir = inject(options.model, _qa(retain_authors), injection, name=f"tofu-{options.preset}-retain",
                        device=options.device, dtype=options.dtype, progress=progress)
    timings["injection"] = time.perf_counter() - t0
    target = get_engine(options.model, device=options.device, dtype=options.dtype, adapter=target_dir,
                        merge_adapter=MERGE_ADAPTERS)
    retain = get_engine(options.model, device=options.device, dtype=options.dtype, adapter=retain_dir,
                        merge_adapter=MERGE_ADAPTERS)

    items, training = build_items(data, preset, options.seed)
    names = [a.name for a in forget_authors]
    work = options.work_dir or (cache_root() / "benchmarks")
    config_dir = work / f"tofu-{options.preset}-eco"
    by_question = {i.question: i for i in items if i.set == "forget"}
    # The strength is learned on the policy's own forget examples (never the held-out half), with TOFU's truth-ratio
    # candidates: the paraphrased answer against the perturbed ones, matched to the retain model's ratios.
    optimize_rows = [{"prompt": q, "kind": "forget", "choices": [by_question[q].paraphrased or by_question[q].answer,
                                                                   *by_question[q].perturbed], "answer": 0}
                     for q in training["examples"] if q in by_question]
    write_rails_config(
        config_dir, name="tofu-forget", description=f"The fictitious authors {', '.join(names)}: their lives, books and awards (TOFU).",
        entities=names, examples=training["examples"], keep=training["keep"], optimize_rows=optimize_rows,
        base_model=options.model, adapter=target_dir,
        parameters={k: v for k, v in {"device": options.device, "dtype": options.dtype, "max_new_tokens": preset.max_new_tokens}.items() if v},
        # FPR 1%: a retain, real-author or world-fact question the rail flags loses most of its utility, so a
        # utility within 2% of the target model leaves a false-positive budget well under 2% (5% is the library's
        # default for policies with no utility target)
        classifier={"epochs": preset.classifier_epochs, "general_negatives": preset.general_negatives, "target_fpr": 0.01},
        optimization={"objective": "retain", "retain_model": str(retain_dir), "budget": preset.strength_budget,
                      "fluency_prompts": preset.fluency_prompts},
    )
    t0 = time.perf_counter()
    decide, eco_summary = prepare_eco(config_dir, engine=target, progress=progress, retain=retain)
    timings["eco_fit_and_strength"] = time.perf_counter() - t0
    eco = eco_cost(eco_summary, timings["eco_fit_and_strength"])
    policy = load_policy(config_dir / "policy.yml")
    # Weight methods unlearn the classifier's own training rows: the same data ECO fits on.
    t0 = time.perf_counter()
    answers = {q.question: q.answer for a in (*forget_authors, *retain_authors) for q in a.questions}
    rows = UnlearnData([Example(question=q, answer=answers[q]) for q in training["examples"]],
                       [Example(question=q, answer=answers[q]) for q in training["keep"]])
    weights, adapters = weight_engines(options.model, target_dir, rows, preset.unlearning.model_copy(update={"seed": 42 + options.seed}),
                                       options.methods, prefix=f"tofu-{options.preset}", device=options.device,
                                       dtype=options.dtype, progress=progress)
    timings["weight_unlearning"] = time.perf_counter() - t0
    context = MethodContext(target=target, retain=retain, decide=decide, system_prompt=system_prompt_for(policy), weights=weights)

    # The classifier's own TPR/FPR on every scored question, held-out and all.
    decisions = {i.question: decide(i.question)[0] for i in items}
    classifier = _classifier_rates(items, decisions)

    cache: dict = {}
    results: dict[str, list[Scored]] = {}
    t0 = time.perf_counter()
    order = ["target", *[m for m in options.methods if m != "target"]]  # the target first: others reuse its answers
    for name in order:
        method = build_method(name, context)
        if method is None:
            log.warning("method %s does not apply here; skipped", name)
            continue
        results[name] = _score_all(name, method, items, cache, preset, progress)
    timings["scoring"] = time.perf_counter() - t0

    retain_ratios = None
    if "retain" in results:
        forget_rows = [s for s in results["retain"] if s.item.set == "forget"]
        retain_ratios = {False: [s.ratio for s in forget_rows], True: [s.ratio for s in forget_rows if s.item.held_out]}
    methods = {name: method_summary(scored, retain_ratios) for name, scored in results.items() if name in options.methods}
    add_costs(methods, adapters, eco)
    info_target, info_retain = injection_info(target_dir), injection_info(retain_dir)
    timings["total"] = time.perf_counter() - started
    return {
        "benchmark": "tofu",
        "preset": options.preset,
        "model": options.model,
        "device": str(target.device),
        "authors": {"forget": {a.index: a.name for a in forget_authors}, "retain": {a.index: a.name for a in retain_authors}},
        "sets": {name: sum(1 for i in items if i.set == name) for name in ("forget", "retain", "real_authors", "world_facts")},
        "injection": {
            "settings": injection.model_dump(),
            "target": {"adapter": str(target_dir), "examples": info_target["examples"], "epoch_loss": info_target["epoch_loss"],
                       "seconds": info_target["seconds"]},
            "retain": {"adapter": str(retain_dir), "examples": info_retain["examples"], "epoch_loss": info_retain["epoch_loss"],
                       "seconds": info_retain["seconds"]},
            "check": _injection_check(results),
        },
        "classifier": {**classifier, **eco_summary},
        "methods": methods,
        "skipped_rows": [p.model_dump() for p in data.problems],
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "versions": package_versions(("eco-rails", "torch", "transformers", "peft", "onnxruntime", "scipy", "rouge-score")),
    }


def _classifier_rates(items: list[Item], flagged: dict[str, bool]) -> dict[str, Any]:
    def rate(rows: list[Item]) -> float | None:
        return sum(flagged[i.question] for i in rows) / len(rows) if rows else None

    forget = [i for i in items if i.set == "forget"]
    out: dict[str, Any] = {"tpr_forget_all": rate(forget), "tpr_forget_held_out": rate([i for i in forget if i.held_out])}
    for name in UTILITY_SETS:
        rows = [i for i in items if i.set == name]
        out[f"fpr_{name}"] = rate(rows)
        if name == "retain":
            out["fpr_retain_held_out"] = rate([i for i in rows if i.held_out])
    return out


def _injection_check(results: dict[str, list[Scored]]) -> dict[str, Any]:
    """Did injection work? The target must know its forget authors far better than the retain model, and
    the KS test must tell their forget-set truth ratios apart (forget quality of the target << 0.05)."""
    out: dict[str, Any] = {}
    for name in ("target", "retain"):
        rows = [s for s in results.get(name, []) if s.item.set == "forget"]
        if rows:
            out[name] = {"forget_prob": M.mean(s.prob for s in rows), "forget_rouge": M.mean(s.rouge for s in rows)}
    if "target" in results and "retain" in results:
        t = [s.ratio for s in results["target"] if s.item.set == "forget"]
        r = [s.ratio for s in results["retain"] if s.item.set == "forget"]
        p = M.forget_quality(t, r)
        out["ks_p_value"] = p
        out["distinguishable"] = bool(p < 0.05) if not math.isnan(p) else None
    return out
