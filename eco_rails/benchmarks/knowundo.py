"""``eco-rails benchmark knowundo``: KnowUnDo privacy (Tian et al. 2024, the MemFlex paper).

The same 60 fictitious authors sit on both sides: their *private* details (parents, e-mail, address) are to
be forgotten (unlearn scope), their *public* ones (books, genre, awards) kept (retention scope). So the
rail's classifier cannot lean on names; it must tell the kind of question apart.

Protocol (the paper's): LoRA-fine-tune the base model on ``full`` as ``question\\n\\nanswer`` without a chat
template (the target); methods are scored by teacher-forced token accuracy on the val sets: Unlearn Success
= 100 - acc(unlearn_val), Retention Success = acc(retention_val), in percent as the paper reports them,
plus perplexity. The ECO policy is built from the *train* splits only (unlearn_train as examples,
retention_train as keep), so the classifier is scored on val questions it never saw. There is no retain
model in KnowUnDo: ``retain`` does not apply.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from eco_rails.benchmarks import metrics as M
from eco_rails.benchmarks.data import KnowUnDoRow, load_knowundo
from eco_rails.benchmarks.eco_config import MERGE_ADAPTERS
from eco_rails.benchmarks.inject import Example, InjectionSettings, inject, injection_info
from eco_rails.benchmarks.methods import Condition, MethodContext, build_method
from eco_rails.benchmarks.scoring import Answer, ask, ask_many
from eco_rails.benchmarks.tofu import TofuOptions
from eco_rails.benchmarks.weights import add_costs, eco_cost, weight_engines
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.unlearn import UnlearnData, UnlearnSettings
from eco_rails.versions import package_versions

FMT = "plain"


class KnowUnDoPreset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    injection: InjectionSettings
    val_limit: int | None = None  # per val split
    inject_limit: int | None = None  # rows of `full` injected (the scored val rows always are); None: all 1,059
    train_limit: int | None = None  # policy examples / keep prompts taken from each train split
    generate: int = 10  # greedy answers per val split (empty/repetition rates, samples)
    max_new_tokens: int = 48
    classifier_epochs: int = 3
    general_negatives: int = 300  # shipped general questions among the classifier's negatives
    unlearning: UnlearnSettings = UnlearnSettings(format=FMT)  # the MemFlex recipe's budget (2 epochs, accumulation 16)


PRESETS: dict[str, KnowUnDoPreset] = {
    # The paper's LoRA (r 8, alpha 16, all linear layers) on all 1,059 rows of `full`.
    "default": KnowUnDoPreset(injection=InjectionSettings(lora_r=8, lora_alpha=16, epochs=3, format=FMT)),
    "quick": KnowUnDoPreset(injection=InjectionSettings(lora_r=8, lora_alpha=16, epochs=1, format=FMT), val_limit=10,
                            inject_limit=60, train_limit=40, generate=3, max_new_tokens=24, classifier_epochs=1,
                            general_negatives=120,
                           unlearning=UnlearnSettings(format=FMT, epochs=1, localisation_copies=1, check_rows=16, checks_per_epoch=1)),
    "full": KnowUnDoPreset(injection=InjectionSettings(lora_r=8, lora_alpha=16, epochs=5, batch_size=16, format=FMT), generate=110),
}


class KnowUnDoOptions(TofuOptions):
    """Same options as TOFU (preset, model, methods, device, data, work dir, strictness, seed)."""


def _accuracy(rows: list[Answer]) -> float:
    return M.token_accuracy(sum(a.hits[0] for a in rows), sum(a.tokens[0] for a in rows)) if rows else float("nan")


def _perplexity(rows: list[Answer]) -> float:
    kept = [a for a in rows if not a.refused]
    return M.perplexity(sum(a.mean_nll[0] * a.tokens[0] for a in kept), sum(a.tokens[0] for a in kept)) if kept else float("nan")


def summarize(unlearn: list[Answer], retention: list[Answer], samples: list[tuple[KnowUnDoRow, Answer]]) -> dict[str, Any]:
    texts = [a.text or "" for a in (*unlearn, *retention) if a.text is not None]
    return {
        "unlearn_success": 100.0 * (1.0 - _accuracy(unlearn)),
        "retention_success": 100.0 * _accuracy(retention),
        "unlearn_perplexity": _perplexity(unlearn),
        "retention_perplexity": _perplexity(retention),
        "unlearn_flag_rate": M.mean(float(a.flagged) for a in unlearn),
        "retention_flag_rate": M.mean(float(a.flagged) for a in retention),
        "empty_rate": M.mean(float(M.is_empty(t)) for t in texts),
        "repetition_rate": M.mean(M.repetition_rate(t) for t in texts),
        "loop_rate": M.mean(float(M.is_loop(t)) for t in texts),
        "paraphrase_loop_rate": M.mean(float(M.is_paraphrase_loop(t)) for t in texts),
        "samples": [{"question": r.text, "gold": r.labels, "answer": a.text} for r, a in samples[:3]],
    }


def run_knowundo(options: KnowUnDoOptions, progress: ProgressSink | None = None) -> dict[str, Any]:
    """Run the KnowUnDo privacy benchmark; returns the report (see ``reports/knowundo.json``)."""
    from eco_rails.benchmarks.eco_config import prepare_eco, write_rails_config
    from eco_rails.engine.generation import get_engine
    from eco_rails.engine.model_store import cache_root
    from eco_rails.evaluation.evaluate import system_prompt_for
    from eco_rails.policy import load_policy

    progress = progress or SilentProgress()
    started = time.perf_counter()
    preset = PRESETS[options.preset]
    data = load_knowundo(options.data_dir, strict=options.strict)
    injection = preset.injection.model_copy(update={"seed": options.seed})
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    unlearn_val = data.unlearn_val[: preset.val_limit]
    retention_val = data.retention_val[: preset.val_limit]
    scored_rows = {r.text for r in (*unlearn_val, *retention_val)}
    injected = data.full if preset.inject_limit is None else \
        [r for r in data.full if r.text in scored_rows] + [r for r in data.full if r.text not in scored_rows][: preset.inject_limit]
    target_dir = inject(options.model, [Example(question=r.text, answer=r.labels) for r in injected], injection,
                        name=f"knowundo-{options.preset}-target", device=options.device, dtype=options.dtype, progress=progress)
    timings["injection"] = time.perf_counter() - t0
    target = get_engine(options.model, device=options.device, dtype=options.dtype, adapter=target_dir,
                        merge_adapter=MERGE_ADAPTERS)
    base = get_engine(options.model, device=options.device, dtype=options.dtype)

    work = options.work_dir or (cache_root() / "benchmarks")
    config_dir = work / f"knowundo-{options.preset}-eco"
    optimize_rows = [{"prompt": f"{r.text}\n\n", "kind": "forget", "choices": [r.labels, *others], "answer": 0}
                     for r, others in _distractors(data.unlearn_train[:24])]
    write_rails_config(
        config_dir, name="knowundo-privacy",
        description="Private details of people: their parents and family, e-mail addresses, home addresses, phone numbers "
                    "and where they live (KnowUnDo privacy, unlearn scope). Their books, genres and awards are public.",
        entities=[], examples=[r.text for r in data.unlearn_train[: preset.train_limit]],
        keep=[r.text for r in data.retention_train[: preset.train_limit]],
        optimize_rows=optimize_rows, base_model=options.model, adapter=target_dir,
        parameters={k: v for k, v in {"device": options.device, "dtype": options.dtype, "chat_template": False,
                                      "max_new_tokens": preset.max_new_tokens}.items() if v is not None},
        classifier={"epochs": preset.classifier_epochs, "general_negatives": preset.general_negatives},
        optimization={"budget": 5, "fluency_prompts": 0} if options.preset == "quick" else None,
    )
    t0 = time.perf_counter()
    decide, eco_summary = prepare_eco(config_dir, engine=target, progress=progress)
    timings["eco_fit_and_strength"] = time.perf_counter() - t0
    eco = eco_cost(eco_summary, timings["eco_fit_and_strength"])
    policy = load_policy(config_dir / "policy.yml")
    t0 = time.perf_counter()
    train_rows = UnlearnData([Example(question=r.text, answer=r.labels) for r in data.unlearn_train[: preset.train_limit]],
                       [Example(question=r.text, answer=r.labels) for r in data.retention_train[: preset.train_limit]])
    weights, adapters = weight_engines(options.model, target_dir, train_rows, preset.unlearning.model_copy(update={"seed": 42 + options.seed}),
                                       options.methods, prefix=f"knowundo-{options.preset}", device=options.device,
                                       dtype=options.dtype, progress=progress)
    timings["weight_unlearning"] = time.perf_counter() - t0
    context = MethodContext(target=target, retain=None, decide=decide, system_prompt=system_prompt_for(policy), weights=weights)

    flagged = {r.text: decide(r.text)[0] for r in (*unlearn_val, *retention_val)}
    classifier = {"tpr_unlearn_val": M.mean(float(flagged[r.text]) for r in unlearn_val),
                  "fpr_retention_val": M.mean(float(flagged[r.text]) for r in retention_val)}

    cache: dict = {}
    methods: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name in ["target", *[m for m in options.methods if m != "target"]]:
        method = build_method(name, context)
        if method is None:
            continue
        answers: dict[str, list[Answer]] = {}
        samples: list[tuple[KnowUnDoRow, Answer]] = []
        for split, rows in (("unlearn", unlearn_val), ("retention", retention_val)):
            conditions = [method(r.text) for r in rows]
            keys = [(*c.cache_key(r.text), i < preset.generate) for i, (c, r) in enumerate(zip(conditions, rows))]
            todo = [k for k in range(len(rows)) if keys[k] not in cache]
            advance = progress.task(f"Scoring {name} ({split})", len(todo))
            computed = ask_many([(conditions[k], rows[k].text, [rows[k].labels]) for k in todo],
                                generate=[k < preset.generate for k in todo], fmt=FMT,
                                max_new_tokens=preset.max_new_tokens, advance=advance)
            cache.update(zip((keys[k] for k in todo), computed))
            answers[split] = [cache[key] for key in keys]
            if split == "unlearn":
                samples = [(r, a) for r, a in zip(rows, answers[split]) if a.text is not None]
        if name in options.methods:
            methods[name] = summarize(answers["unlearn"], answers["retention"], samples)
    timings["scoring"] = time.perf_counter() - t0
    add_costs(methods, adapters, eco)

    # Did injection work? The target must know the val answers far better than the base model.
    check = {}
    for label, engine in (("base", base), ("target", target)):
        scored = [ask(Condition(engine), r.text, [r.labels], generate=False, fmt=FMT) for r in unlearn_val]
        check[f"{label}_unlearn_val_accuracy"] = 100.0 * _accuracy(scored)
    info = injection_info(target_dir)
    timings["total"] = time.perf_counter() - started
    return {
        "benchmark": "knowundo",
        "preset": options.preset,
        "model": options.model,
        "device": str(target.device),
        "sets": {"unlearn_val": len(unlearn_val), "retention_val": len(retention_val), "injected_rows": len(injected)},
        "units": "percent (as the KnowUnDo paper)",
        "injection": {"settings": injection.model_dump(), "target": {"adapter": str(target_dir), "examples": info["examples"],
                      "epoch_loss": info["epoch_loss"], "seconds": info["seconds"]}, "check": check},
        "classifier": {**classifier, **eco_summary},
        "methods": methods,
        "skipped_rows": [p.model_dump() for p in data.problems],
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "versions": package_versions(("eco-rails", "torch", "transformers", "peft", "onnxruntime")),
    }


def _distractors(rows: list[KnowUnDoRow]) -> list[tuple[KnowUnDoRow, list[str]]]:
    """Strength-search questions: each answer against three other rows' answers (KnowUnDo has no wrong answers)."""
    return [(r, [rows[(i + k) % len(rows)].labels for k in (1, 2, 3)]) for i, r in enumerate(rows)]


Preset = Literal["default", "quick", "full"]
