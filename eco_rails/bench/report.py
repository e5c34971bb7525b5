"""The benchmark report (``eco-rails bench --json``): its schema, the targets, and the Markdown table."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from eco_rails.bench.stats import Summary


class Ratios(BaseModel):
    """The headline ratios. Higher is better, except ``rail_overhead`` (extra wall time, a fraction).

    A ratio is ``null`` only when its section was left out with ``--only`` (or, for the vllm one, when no
    ``--vllm-url`` was given).
    """

    model_config = ConfigDict(extra="forbid")

    classifier_int8_speedup_vs_torch: Optional[float]
    rail_overhead: Optional[float]
    corrupted_vs_clean_tokens_per_s: Optional[float]
    provider_vs_hf_generate_tokens_per_s: Optional[float]
    vllm_corrupted_vs_clean_tokens_per_s: Optional[float] = None
    classifier_batch_vs_one_by_one: Optional[float] = None


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    value: Optional[float]
    target: str  # e.g. ">= 4", "<= 0.03"
    met: Optional[bool]  # None when not measured


class BenchReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eco_rails_version: str
    created_at: str
    command: str
    quick: bool
    sections: list[str]
    machine: dict[str, object]
    versions: dict[str, str]
    settings: dict[str, object]
    # name -> median/p95 ("ms" per prompt or request, "tokens/s", "prompts/s", "s")
    measurements: dict[str, Summary]
    ratios: Ratios
    targets: list[Target] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# (ratio or measurement, comparison, bound, how the table names it)
TARGETS: list[tuple[str, str, float, str]] = [
    ("ratios.classifier_int8_speedup_vs_torch", ">=", 4.0, "classifier int8 ONNX speed-up vs PyTorch (batch 1)"),
    ("ratios.classifier_batch_vs_one_by_one", ">=", 1.0, "classifier: classify_batch(32) / one call at a time, prompts/s"),
    ("classifier.int8_onnx.end_to_end_ms", "<=", 5.0, "classifier p50 per prompt, end to end with views (ms)"),
    ("ratios.rail_overhead", "<=", 0.03, "rail overhead (extra wall time)"),
    ("ratios.corrupted_vs_clean_tokens_per_s", ">=", 0.98, "corrupted / clean tokens/s"),
    ("ratios.provider_vs_hf_generate_tokens_per_s", ">=", 0.95, "provider / HF generate tokens/s"),
    ("fit.wall_s", "<=", 300.0, "`eco-rails fit` wall time (s)"),
    ("ratios.vllm_corrupted_vs_clean_tokens_per_s", ">=", 0.95, "vllm backend: corrupted / clean tokens/s (8 in flight)"),
]


def _lookup(report: BenchReport, key: str) -> Optional[float]:
    if key.startswith("ratios."):
        return getattr(report.ratios, key.split(".", 1)[1])
    summary = report.measurements.get(key)
    return None if summary is None else summary.median


def evaluate_targets(report: BenchReport) -> list[Target]:
    out = []
    for key, op, bound, _ in TARGETS:
        value = _lookup(report, key)
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append(Target(name=key, value=value, target=f"{op} {bound:g}", met=met))
    return out


def _fmt(value: Optional[float], unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "fraction":
        return f"{value * 100:+.1f}%"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def markdown_table(report: BenchReport) -> str:
    """Two tables for the README: every measurement (median, p95), then the ratios against their targets."""
    machine = report.machine
    lines = [
        f"eco-rails bench{' --quick' if report.quick else ''} on {machine.get('cpu', '?')} "
        f"({machine.get('cpu_count', '?')} cores{', ' + str(machine['gpu']) if machine.get('gpu') else ''}), "
        f"torch {report.versions.get('torch', '?')}, transformers {report.versions.get('transformers', '?')}, "
        f"onnxruntime {report.versions.get('onnxruntime', '?')}.",
        "",
        "| measurement | unit | median | p95 | n |",
        "|---|---|---:|---:|---:|",
    ]
    for name, s in report.measurements.items():
        lines.append(f"| {name} | {s.unit} | {_fmt(s.median)} | {_fmt(s.p95)} | {s.n} |")
    lines += ["", "| ratio / target | value | target | met |", "|---|---:|---:|:---:|"]
    spec = {key: (op, bound, label) for key, op, bound, label in TARGETS}
    for t in report.targets:
        op, bound, label = spec[t.name]
        unit = "fraction" if t.name == "ratios.rail_overhead" else ""
        target = f"{op} {bound * 100:g}%" if unit == "fraction" else t.target
        met = "-" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {label} | {_fmt(t.value, unit)} | {target} | {met} |")
    if report.notes:
        lines += [""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"
