"""Benchmark reports: the JSON next to a Markdown table and a PNG of forget quality against model utility
(TOFU's plot: up is "forgot like the retain model", right is "kept everything else")."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from eco_rails.atomic import write_text_atomic


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def markdown(report: dict[str, Any], command: str) -> str:
    """A human-readable summary of a benchmark report."""
    lines = [f"# eco-rails benchmark: {report['benchmark']} ({report['preset']})", "",
             f"Produced by `{command}` on {report.get('device', '?')}, model `{report['model']}`. "
             f"Total time {report['timings_s'].get('total', 0) / 60:.1f} min.", ""]
    if report["benchmark"] == "tofu":
        lines += ["| method | forget quality | model utility | forget truth ratio | forget ROUGE-L | forget prob | "
                  "held-out forget quality | held-out forget ROUGE-L | empty | repetition |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for name, m in report["methods"].items():
            held = m.get("held_out", {})
            lines.append(f"| {name} | {_fmt(m['forget_quality'])} | {_fmt(m['model_utility'])} | {_fmt(m['forget_truth_ratio'])} | "
                         f"{_fmt(m['forget_rouge'])} | {_fmt(m['forget_prob'])} | {_fmt(held.get('forget_quality'))} | "
                         f"{_fmt(held.get('rouge'))} | {_fmt(m['empty_rate'])} | {_fmt(m['repetition_rate'])} |")
        check = report["injection"]["check"]
        lines += ["", "## Did injection work?", "",
                  f"Target vs retain model on the forget authors: answer probability {_fmt(check.get('target', {}).get('forget_prob'))} vs "
                  f"{_fmt(check.get('retain', {}).get('forget_prob'))}, ROUGE-L recall {_fmt(check.get('target', {}).get('forget_rouge'))} vs "
                  f"{_fmt(check.get('retain', {}).get('forget_rouge'))}; KS test on the forget truth ratios p = {_fmt(check.get('ks_p_value'))} "
                  f"({'distinguishable' if check.get('distinguishable') else 'NOT distinguishable'} at 0.05).", ""]
    else:
        lines += ["| method | unlearn success | retention success | average | unlearn ppl | retention ppl | empty | repetition |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for name, m in report["methods"].items():
            lines.append(f"| {name} | {_fmt(m['unlearn_success'])} | {_fmt(m['retention_success'])} | {_fmt(average_success(m), 2)} | "
                         f"{_fmt(m.get('unlearn_perplexity'), 1)} | {_fmt(m.get('retention_perplexity'), 1)} | {_fmt(m['empty_rate'])} | "
                         f"{_fmt(m['repetition_rate'])} |")
        lines += ["", *paper_ordering(report["methods"]), ""]
    lines += comparison_with_eco(report)
    lines += cost_table(report["methods"])
    c = report.get("classifier", {})
    lines += ["## The rail's classifier", "", "| | rate |", "|---|--:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in c.items() if k.startswith(("tpr", "fpr"))]
    lines += ["", f"Strength learned: {c.get('learned_strength')}; threshold {_fmt(c.get('threshold'), 4)}; rails config `{c.get('config')}`.", ""]
    lines += ["## Sample answers", ""]
    for name, m in report["methods"].items():
        for s in m.get("samples", [])[:2]:
            lines.append(f"- **{name}**: {s['question']} -> {json.dumps(s['answer'], ensure_ascii=False)} (gold: {s['gold'][:100]})")
    lines += ["", "## Timings (s)", "", ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()), ""]
    if report.get("skipped_rows"):
        lines += [f"Skipped {len(report['skipped_rows'])} malformed rows (see the JSON).", ""]
    return "\n".join(lines)


def average_success(m: dict[str, Any]) -> float | None:
    """KnowUnDo's average of unlearn and retention success (the paper's ranking number)."""
    u, r = m.get("unlearn_success"), m.get("retention_success")
    if u is None or r is None or math.isnan(u) or math.isnan(r):
        return None
    return (u + r) / 2


def paper_ordering(methods: dict[str, Any]) -> list[str]:
    """Whether the MemFlex paper's ordering (average success: MemFlex > GA+GD > GA) holds here, with the gaps
    between the three and each one's distance from the untouched target model, so that an order resting on
    differences of hundredths of a point reads as what it is."""
    avg = {k: average_success(methods[k]) for k in ("memflex", "gd", "ga") if k in methods}
    if len(avg) < 3 or any(v is None for v in avg.values()):
        return []
    a: dict[str, float] = {k: float(v) for k, v in avg.items() if v is not None}
    holds = a["memflex"] > a["gd"] > a["ga"]
    ranked = " > ".join(f"{k} {a[k]:.3f}" for k in sorted(a, key=lambda k: -a[k]))
    lines = [f"Paper's ordering (average success MemFlex > GA+GD > GA) {'holds' if holds else 'does NOT hold'} here: {ranked}; "
             f"gaps memflex - gd {a['memflex'] - a['gd']:+.3f}, gd - ga {a['gd'] - a['ga']:+.3f} points."]
    target = average_success(methods.get("target", {}))
    if target is not None:
        moved = ", ".join(f"{k} {a[k] - target:+.3f}" for k in ("memflex", "gd", "ga"))
        lines[0] += f" Change from the target model's {target:.3f}: {moved} points."
    return lines


_HEADLINES = {"tofu": (("forget_quality", "forget quality"), ("model_utility", "model utility")),
              "knowundo": (("unlearn_success", "unlearn success"), ("retention_success", "retention success"))}


def comparison_with_eco(report: dict[str, Any]) -> list[str]:
    """Plain sentences: on which headline number ECO beats each weight method and on which it loses."""
    methods = report["methods"]
    eco = methods.get("eco")
    rivals = [k for k in ("memflex", "ga", "gd", "npo", "memflex+eco") if k in methods]
    if eco is None or not rivals:
        return []
    lines = ["## ECO against weight unlearning", ""]
    for name in rivals:
        wins: list[str] = []
        losses: list[str] = []
        for key, label in _HEADLINES[report["benchmark"]]:
            a, b = eco.get(key), methods[name].get(key)
            if a is None or b is None or math.isnan(a) or math.isnan(b):
                continue
            (wins if a > b else losses if a < b else wins).append(f"{label} {_fmt(a)} vs {_fmt(b)}")
        lines.append(f"- vs **{name}**: ECO wins on {', '.join(wins) or 'nothing'}; loses on {', '.join(losses) or 'nothing'}.")
    return [*lines, ""]


def cost_table(methods: dict[str, Any]) -> list[str]:
    """What each method spent to be ready: ECO's fit (classifier + strength) and each weight method's run."""
    rows = [(k, m["cost"]) for k, m in methods.items() if m.get("cost")]
    if not rows:
        return []
    lines = ["## Cost to get ready", "", "| method | wall s | x ECO fit | optimiser steps | forward rows | backward rows |",
             "|---|--:|--:|--:|--:|--:|"]
    for name, c in rows:
        ratio = 1.0 if name == "eco" and c.get("seconds") else c.get("seconds_vs_eco_fit")
        lines.append(f"| {name} | {_fmt(c.get('seconds'), 1)} | {_fmt(ratio, 2)} | {_fmt(c.get('optimizer_steps'))} | "
                     f"{_fmt(c.get('forward_rows'))} | {_fmt(c.get('backward_rows'))} |")
    loc = methods.get("memflex", {}).get("localisation")
    if loc:
        lines += ["", f"MemFlex trained {loc['selected']} of {loc['tensors']} LoRA tensors ({100 * loc['selected_fraction']:.1f}%, "
                      f"{100 * loc['selected_parameter_fraction']:.1f}% of LoRA parameters): mu {loc['mu']:.4g}, sigma {loc['sigma']:.3g}, "
                      "set at quantiles of this model's own statistics on training rows."]
    eco = methods.get("eco", {}).get("cost", {})
    if eco.get("strength_forward_passes"):
        lines += ["", f"ECO's fit trains the classifier (a 22M-parameter encoder) and spends {eco['strength_forward_passes']} "
                      "forward passes of the LLM on the strength search; it never computes an LLM gradient."]
    return [*lines, ""]


def write_chart(report: dict[str, Any], path: Path) -> None:
    """TOFU: forget quality (log scale) against model utility per method; KnowUnDo: unlearn vs retention."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.4, 4.0), dpi=110)
    tofu = report["benchmark"] == "tofu"
    for name, m in report["methods"].items():
        if tofu:
            x, y = m.get("model_utility"), m.get("forget_quality")
            if y is None or x is None or math.isnan(x):
                continue
            y = max(y, 1e-30)
        else:
            x, y = m.get("retention_success"), m.get("unlearn_success")
        ax.scatter([x], [y], s=40)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if tofu:
        ax.set_yscale("log")
        ax.axhline(0.05, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("model utility (higher: kept more)")
        ax.set_ylabel("forget quality, KS p-value (higher: more like retain)")
    else:
        ax.set_xlabel("retention success (higher: kept more)")
        ax.set_ylabel("unlearn success (higher: forgot more)")
    ax.set_title(f"{report['benchmark']} ({report['preset']}), {report['model']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict[str, Any], json_path: Path, command: str) -> tuple[Path, Path]:
    """Write JSON, Markdown and PNG side by side (each atomically); returns the .md and .png paths."""
    report = clean_nan({**report, "command": command})
    write_text_atomic(json_path, json.dumps(report, indent=2, default=_json_default, allow_nan=False))
    md, png = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    write_text_atomic(md, markdown(report, command))
    write_chart(report, png)
    return md, png


def clean_nan(value: Any) -> Any:
    """NaN and infinities become null: strict JSON, and "not measured" reads as such."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_nan(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
