"""``eco-rails eval``: show in numbers that the model forgot what it should and kept everything else.

Every row goes through the same ONNX classifier and the same corruption the rail uses (the policy's
settings with the learned strength): flagged prompts are corrupted, the rest run untouched. For each
row: whether it was flagged; n-way multiple-choice accuracy by length-normalised log-likelihood, plain and
through the rails; TOFU's answer probability and truth ratio; with ``--generate``, whether a greedy answer
leaks any keyword, and the perplexity of forget answers under the clean model (a method can "forget" by
babbling). Baselines on request: ``refuse`` (NeMo's classic block of flagged prompts) and
``system-prompt`` (an "act as if you never read it" instruction on every prompt, as in Thaker et al. 2024).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from pydantic import BaseModel, Field

from eco_rails.engine.flags import FlagDecision
from eco_rails.errors import ConfigError
from eco_rails.evaluation.fluency import is_empty, is_loop, is_paraphrase_loop
from eco_rails.evaluation.mcq_data import Kind, MCQRow, RowProblem, load_rows
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.versions import package_versions

Baseline = Literal["refuse", "system-prompt"]
REFUSAL = "I'm sorry, I can't respond to that."


class BaselineMetrics(BaseModel):
    mcq_acc: float
    leak: Optional[float] = None


class GroupReport(BaseModel):
    n: int
    kind: Kind
    flag_rate: float
    mcq_acc_plain: float
    mcq_acc_rails: float
    answer_prob_plain: float
    answer_prob_rails: float
    truth_ratio_plain: float  # retain: mean(max(0, 1 - R)); forget: mean(min(R, 1/R))
    truth_ratio_rails: float
    leak_plain: Optional[float] = None
    leak_rails: Optional[float] = None
    perplexity_rails: Optional[float] = None  # forget groups with --generate: median, under the clean model
    empty_rails: Optional[float] = None  # forget groups with --generate: share of empty answers through the rails
    loop_rails: Optional[float] = None  # forget groups with --generate: share of answers that repeat themselves
    # ... or loop in another case, inflection or frame (evaluation.fluency.is_paraphrase_loop; exact loops included)
    paraphrase_loop_rails: Optional[float] = None
    perplexity_plain: Optional[float] = None
    baselines: dict[str, BaselineMetrics] = Field(default_factory=dict)
    flagged_prompts: list[str] = Field(default_factory=list)  # for retain groups: which prompts the policy took


class EvalReport(BaseModel):
    groups: dict[str, GroupReport]
    config: str
    policy: str
    policy_version: str
    corruption: dict
    generate: bool
    baselines: list[str]
    skipped_rows: list[RowProblem]
    versions: dict[str, str]


def _truth_stat(ratio: float, kind: Kind) -> float:
    return max(0.0, 1.0 - ratio) if kind == "retain" else min(ratio, 1.0 / ratio)


def _leaks(text: str, keywords: Iterable[str]) -> bool:
    low = text.lower()
    return any(k.lower() in low for k in keywords)


def system_prompt_for(policy) -> str:
    topics = "; ".join(t.description for t in policy.targets)
    return (f"Act as if you have never read, watched or heard of the following, and know nothing about it: {topics} "
            "If you are asked about it, say that you do not know.")


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def evaluate(
    config_dir: Path,
    data: list[tuple[Path, Optional[Kind]]],
    *,
    generate: bool = False,
    baselines: Iterable[Baseline] = (),
    strict: bool = False,
    max_new_tokens: int = 48,
    engine: Any = None,
    progress: ProgressSink | None = None,
) -> EvalReport:
    """Evaluate forgetting and retention of a rails config's policy on multiple-choice rows.

    Args:
        config_dir: a rails config folder with ``custom_data.eco`` (its classifier must be fitted).
        data: ``(file, kind)`` pairs; ``kind`` (forget/retain) applies to TOFU-format rows without one.
        generate: also generate greedy answers (keyword leaks, perplexity of forget answers).
        baselines: ``refuse`` and/or ``system-prompt``.
        strict: fail on malformed rows instead of skipping and reporting them.
        max_new_tokens: answer length with ``generate``.
        engine: the engine to use (default: the config's main model).
        progress: progress bars (silent by default).

    Returns:
        :class:`EvalReport`: per-group metrics, baselines, skipped rows, versions.

    Raises:
        ConfigError: bad config, no valid rows, or malformed rows with ``strict``.
        ArtifactError: the classifier is missing or stale.
    """
    from eco_rails.engine.generation import GenerationSettings
    from eco_rails.evaluation.scoring import continuation_perplexity, score_choices
    from eco_rails.rails.resolved import resolve_config
    from eco_rails.rails.runtime import EcoRailRuntime

    baselines = list(dict.fromkeys(baselines))
    resolved = resolve_config(config_dir)
    settings = resolved.settings
    runtime = EcoRailRuntime(resolved.config_dir, settings)
    classifier = runtime.classifier()  # refuses a missing or stale artifact
    policy = runtime.policy
    rows: list[MCQRow] = []
    problems: list[RowProblem] = []
    for path, kind in data:
        file_rows, file_problems = load_rows(path, kind)
        rows += file_rows
        problems += file_problems
    if problems and strict:
        raise ConfigError("Malformed rows:\n  " + "\n  ".join(f"{p.file}:{p.line}: {p.error}" for p in problems))
    if not rows:
        raise ConfigError("No valid rows to evaluate.")
    if engine is None:
        engine = resolved.engine()
    # the config's own decoding settings (a repetition penalty, n-gram blocking), on the plain and the rails path alike
    gen = GenerationSettings.from_parameters(resolved.main_model.parameters, source=f"{config_dir}: models[].parameters",
                                             max_new_tokens=max_new_tokens, temperature=0.0, stop=())
    system_prompt = system_prompt_for(policy)
    on_flag = settings.on_flag

    advance = (progress or SilentProgress()).task("Evaluating rows", len(rows))
    per_group: dict[str, list[dict]] = {}
    decisions = classifier.classify_batch([r.prompt for r in rows])
    for row, decision in zip(rows, decisions):
        chance = 1.0 / len(row.choices)
        rail = runtime.corruption(decision.target)
        flag = FlagDecision.flag(whole_prompt=rail.whole_prompt)
        corrupted = decision.flagged and on_flag == "corrupt"
        plain = score_choices(engine, row.prompt, row.choices)
        railed = score_choices(engine, row.prompt, row.choices, flag=flag, corruption=rail.spec) if corrupted else plain
        refused = decision.flagged and on_flag == "refuse"
        rec = {
            "flagged": decision.flagged, "prompt": row.prompt, "kind": row.kind,
            "acc_plain": float(plain.predicted() == row.answer),
            "acc_rails": chance if refused else float(railed.predicted() == row.answer),
            "ap_plain": plain.answer_probability(row.answer), "ap_rails": 0.0 if refused else railed.answer_probability(row.answer),
            "tr_plain": _truth_stat(plain.truth_ratio(row.answer), row.kind),
            "tr_rails": _truth_stat(1.0 if refused else railed.truth_ratio(row.answer), row.kind),
        }
        if "refuse" in baselines:
            rec["acc_refuse"] = chance if decision.flagged else rec["acc_plain"]
        if "system-prompt" in baselines:
            rec["acc_system"] = float(score_choices(engine, row.prompt, row.choices, system_prompt=system_prompt).predicted() == row.answer)
        if generate and (row.keywords or row.kind == "forget"):
            plain_text = engine.generate(row.prompt, settings=gen).text
            rails_text = (REFUSAL if refused else engine.generate(row.prompt, flag=flag, corruption=rail.spec, settings=gen).text) \
                if decision.flagged and on_flag != "log-only" else plain_text
            if row.keywords:
                rec["leak_plain"], rec["leak_rails"] = float(_leaks(plain_text, row.keywords)), float(_leaks(rails_text, row.keywords))
                if "refuse" in baselines:
                    rec["leak_refuse"] = 0.0 if decision.flagged else rec["leak_plain"]
                if "system-prompt" in baselines:
                    sys_text = engine.generate(row.prompt, settings=gen, system_prompt=system_prompt).text
                    rec["leak_system"] = float(_leaks(sys_text, row.keywords))
            if row.kind == "forget":
                if rails_text != REFUSAL:
                    rec["empty_rails"], rec["loop_rails"] = float(is_empty(rails_text)), float(is_loop(rails_text))
                    rec["paraphrase_loop_rails"] = float(is_paraphrase_loop(rails_text))
                rec["ppl_plain"] = continuation_perplexity(engine, row.prompt, plain_text)
                rec["ppl_rails"] = continuation_perplexity(engine, row.prompt, rails_text) if rails_text != REFUSAL else float("nan")
        per_group.setdefault(row.group, []).append(rec)
        advance()

    groups = {}
    for name, recs in per_group.items():
        def col(key: str, recs: list[dict] = recs) -> list[float]:
            return [r[key] for r in recs if key in r and not (isinstance(r[key], float) and math.isnan(r[key]))]

        kind = recs[0]["kind"]
        base = {}
        if "refuse" in baselines:
            base["refuse"] = BaselineMetrics(mcq_acc=_mean(col("acc_refuse")), leak=_mean(col("leak_refuse")) if col("leak_refuse") else None)
        if "system-prompt" in baselines:
            base["system-prompt"] = BaselineMetrics(mcq_acc=_mean(col("acc_system")), leak=_mean(col("leak_system")) if col("leak_system") else None)
        groups[name] = GroupReport(
            n=len(recs), kind=kind, flag_rate=_mean([float(r["flagged"]) for r in recs]),
            mcq_acc_plain=_mean(col("acc_plain")), mcq_acc_rails=_mean(col("acc_rails")),
            answer_prob_plain=_mean(col("ap_plain")), answer_prob_rails=_mean(col("ap_rails")),
            truth_ratio_plain=_mean(col("tr_plain")), truth_ratio_rails=_mean(col("tr_rails")),
            leak_plain=_mean(col("leak_plain")) if col("leak_plain") else None,
            leak_rails=_mean(col("leak_rails")) if col("leak_rails") else None,
            perplexity_plain=statistics.median(col("ppl_plain")) if col("ppl_plain") else None,
            perplexity_rails=statistics.median(col("ppl_rails")) if col("ppl_rails") else None,
            empty_rails=_mean(col("empty_rails")) if col("empty_rails") else None,
            loop_rails=_mean(col("loop_rails")) if col("loop_rails") else None,
            paraphrase_loop_rails=_mean(col("paraphrase_loop_rails")) if col("paraphrase_loop_rails") else None,
            baselines=base,
            flagged_prompts=[r["prompt"] for r in recs if r["flagged"]] if kind == "retain" else [],
        )
    versions = package_versions(("eco-rails", "torch", "transformers", "onnxruntime", "nemoguardrails"))
    policy = resolved.policy
    spec = runtime.corruption(policy.target_ids[0])
    return EvalReport(
        groups=groups, config=str(config_dir), policy=policy.name, policy_version=policy.version,
        corruption={**spec.spec.model_dump(), "whole_prompt": spec.whole_prompt, "on_flag": on_flag},
        generate=generate, baselines=baselines, skipped_rows=problems, versions=versions,
    )


def markdown_summary(report: EvalReport) -> str:
    def pct(v: Optional[float]) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    lines = [
        f"# eco-rails evaluation: policy `{report.policy}` v{report.policy_version}",
        "",
        f"Corruption: `{report.corruption['method']}` strength {report.corruption['strength']:.4g}, on_flag `{report.corruption['on_flag']}`.",
        "",
        "| group | kind | n | flagged % | MCQ acc plain % | MCQ acc rails % | leak plain % | leak rails % | answer prob plain | answer prob rails | truth ratio plain | truth ratio rails |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, g in report.groups.items():
        lines.append(f"| {name} | {g.kind} | {g.n} | {pct(g.flag_rate)} | {pct(g.mcq_acc_plain)} | {pct(g.mcq_acc_rails)} | "
                     f"{pct(g.leak_plain)} | {pct(g.leak_rails)} | {g.answer_prob_plain:.3f} | {g.answer_prob_rails:.3f} | "
                     f"{g.truth_ratio_plain:.3f} | {g.truth_ratio_rails:.3f} |")
    if report.baselines:
        lines += ["", "Baselines (MCQ accuracy %, leak %):", "", "| group | " + " | ".join(report.baselines) + " |",
                  "| --- |" + " --- |" * len(report.baselines)]
        for name, g in report.groups.items():
            cells = [f"{pct(g.baselines[b].mcq_acc)} / {pct(g.baselines[b].leak)}" for b in report.baselines]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ppl = [(n, g) for n, g in report.groups.items() if g.perplexity_rails is not None]
    if ppl:
        lines += ["", "Fluency of forget answers (median perplexity under the clean model): " +
                  "; ".join(f"{n}: plain {g.perplexity_plain:.1f}, rails {g.perplexity_rails:.1f}" for n, g in ppl)]
        lines += ["", "Empty / looping / paraphrase-looping answers through the rails: " +
                  "; ".join(f"{n}: {pct(g.empty_rails)} / {pct(g.loop_rails)} / {pct(g.paraphrase_loop_rails)}" for n, g in ppl)]
    flagged = [(n, g.flagged_prompts) for n, g in report.groups.items() if g.flagged_prompts]
    for name, prompts in flagged:
        lines += ["", f"Retain group `{name}`: {len(prompts)} prompt(s) taken by the policy: " + "; ".join(f"“{p}”" for p in prompts[:10])]
    if report.skipped_rows:
        lines += ["", f"Skipped {len(report.skipped_rows)} malformed row(s): " +
                  "; ".join(f"{Path(p.file).name}:{p.line} {p.error}" for p in report.skipped_rows[:10])]
    return "\n".join(lines) + "\n"


def write_chart(report: EvalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.groups)
    plain = [100 * report.groups[n].mcq_acc_plain for n in names]
    rails = [100 * report.groups[n].mcq_acc_rails for n in names]
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(names)), 3.6), dpi=110)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], plain, width=0.4, label="plain model", color="#8da0cb")
    ax.bar([x + 0.2 for x in xs], rails, width=0.4, label="through eco-rails", color="#fc8d62")
    ax.set_xticks(list(xs), [f"{n}\n({report.groups[n].kind})" for n in names], fontsize=8)
    ax.set_ylabel("multiple-choice accuracy (%)")
    ax.set_ylim(0, 100)
    ax.axhline(25, color="grey", lw=0.8, ls="--", label="chance (4-way)")
    ax.legend(fontsize=8)
    ax.set_title(f"eco-rails: policy {report.policy} v{report.policy_version}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
