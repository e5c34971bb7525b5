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
        lines += ["| method | unlearn success | retention success | unlearn ppl | retention ppl | empty | repetition |",
                  "|---|--:|--:|--:|--:|--:|--:|"]
        for name, m in report["methods"].items():
            lines.append(f"| {name} | {_fmt(m['unlearn_success'])} | {_fmt(m['retention_success'])} | {_fmt(m.get('unlearn_perplexity'), 1)} | "
                         f"{_fmt(m.get('retention_perplexity'), 1)} | {_fmt(m['empty_rate'])} | {_fmt(m['repetition_rate'])} |")
        lines.append("")
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
