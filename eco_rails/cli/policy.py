"""Policy authoring: fit, optimize, classify, and the JSON schemas of policies and manifests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from eco_rails.cli.app import _fail, app, console, err_console


def _calibration_table(manifest: Any) -> Any:
    """Thresholds, split rates, per-group rates (test split and held-out suite) and the score margin."""
    from rich.console import Group
    from rich.table import Table

    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    amb = manifest.ambiguous_threshold
    title = (f"Policy {manifest.policy_name} v{manifest.policy_version}: threshold {manifest.threshold:.4f} "
             f"(target FPR {manifest.target_fpr:g})" + (f", ambiguous-term threshold {amb:.4f}" if amb is not None else ""))
    splits = Table(title=title)
    for col in ("split", "negatives", "FPR", "positives", "TPR", "distinctive-term hits on negatives"):
        splits.add_column(col, justify="right" if col != "split" else "left")
    for split in ("calibration", "test", "suite"):
        if split not in manifest.metrics:
            continue
        m = manifest.metrics[split]
        splits.add_row(split, str(m.n_negative), fmt(m.fpr), str(m.n_positive), fmt(m.tpr), str(m.key_term_hits_negative))
        for target, tpr in m.tpr_per_target.items():
            if len(m.tpr_per_target) > 1:
                splits.add_row(f"  {target}", "", "", str(m.n_per_target[target]), fmt(tpr), "")
    groups = Table(title="Flag rate per group (TPR for in-scope groups, FPR for the others)")
    for col in ("group", "in scope", "test n", "test rate", "suite n", "suite rate"):
        groups.add_column(col, justify="left" if col == "group" else "right")
    test = manifest.metrics["test"].by_group
    suite = manifest.metrics["suite"].by_group if "suite" in manifest.metrics else {}
    scope_of = {**{g: r.in_scope for g, r in suite.items()}, **{g: r.in_scope for g, r in test.items()}}
    for name in sorted(scope_of, key=lambda g: (not scope_of[g], g)):
        t, u = test.get(name), suite.get(name)
        scope = scope_of[name]
        groups.add_row(name, "yes" if scope else "no", str(t.n) if t else "-", fmt(t.rate) if t else "-",
                       str(u.n) if u else "-", fmt(u.rate) if u else "-")
    parts: list[Any] = [splits, groups]
    q = manifest.metrics["test"].score_quantiles
    if q:
        margin = Table(title="Encoder scores on the test split, quantiles 5/25/50/75/95 % (key-term verdicts left out)")
        margin.add_column("side")
        margin.add_column("scores")
        for side, values in q.items():
            margin.add_row(side, "  ".join(f"{v:.3f}" for v in values))
        parts.append(margin)
    if manifest.ambiguous_terms:
        terms = sorted({t for ts in manifest.ambiguous_terms.values() for t in ts})
        parts.append(f"Ambiguous key terms (need the encoder's agreement): {', '.join(terms[:40])}"
                     + (f" and {len(terms) - 40} more" if len(terms) > 40 else ""))
    return Group(*parts)


@app.command()
def fit(
    config: Path = typer.Argument(..., help="Rails config folder whose custom_data.eco names the policy."),
    keep_fp32: bool = typer.Option(False, "--keep-fp32", help="Also keep the PyTorch checkpoint and fp32 ONNX (benchmarks)."),
    skip_optimize: bool = typer.Option(False, "--skip-optimize", help="Do not learn the corruption strength now."),
    replace_other_policy: bool = typer.Option(False, "--replace-other-policy",
                                              help="Overwrite an artifact folder that holds another policy's classifier."),
) -> None:
    """Train, calibrate and export the policy's classifier to ONNX (int8); then learn the corruption strength."""
    from eco_rails.classifier.fit import fit_policy
    from eco_rails.errors import EcoRailsError
    from eco_rails.progress import progress_bars
    from eco_rails.rails.resolved import resolve_config

    try:
        resolved = resolve_config(config)
        policy, artifact = resolved.policy, resolved.artifact_path
        console.print(f"Fitting policy [bold]{policy.name}[/] v{policy.version} -> {artifact}")
        with progress_bars(True) as bars:
            manifest = fit_policy(resolved.policy_path, artifact, progress=bars, keep_fp32=keep_fp32,
                                  replace_other_policy=replace_other_policy, fix=str(config))
        console.print(_calibration_table(manifest))
        _print_advice(policy, manifest)
        skipped = _strength_search_skipped(policy, skip_optimize)
        if skipped:
            err_console.print(skipped)
        else:
            from eco_rails.strength.optimize import optimize_strength

            with progress_bars(True, width=34) as bars:
                _print_optimization(optimize_strength(config, progress=bars))
    except EcoRailsError as exc:
        _fail(str(exc))
    console.print(f"[green]Wrote[/] {artifact}")


def _print_advice(policy, manifest) -> None:
    from eco_rails.classifier.advice import fit_advice

    advice = fit_advice(policy, manifest)
    if advice:
        console.print("[bold]Advice on the policy[/]")
        for line in advice:
            console.print(f"- {line}", markup=False, highlight=False)


def _strength_search_skipped(policy, skip_optimize: bool) -> str | None:
    """Why ``fit`` does not learn the corruption strength now (None when it does): said, never silent."""
    from eco_rails.engine.corruption.spec import DEFAULT_NOISE_STRENGTH

    if policy.corruption.strength != "auto":
        return f"Strength search skipped: the policy fixes corruption.strength at {policy.corruption.strength}."
    if skip_optimize:
        return "Strength search skipped (--skip-optimize): run `eco-rails optimize <config>` to learn it."
    if not policy.optimization.data:
        return (f"Strength search skipped: the policy has no optimisation questions (optimization.data), so flagged prompts "
                f"use the default strength {DEFAULT_NOISE_STRENGTH}. Add multiple-choice questions about the topic "
                "(see README, 'Learning the corruption strength') and run `eco-rails optimize <config>`.")
    return None


def _print_optimization(report: dict) -> None:
    status = "[green]reached[/]" if report["reached_target"] else "[red]NOT reached[/]"
    if report.get("objective") == "chance":
        console.print(
            f"Learned strength {report['strength']:.4f}: forget accuracy {report['plain_accuracy']:.2f} -> {report['accuracy']:.2f} "
            f"(target <= {report['target_accuracy']:.2f}, {status}) in {report['evaluations']} evaluations / "
            f"{report['forward_passes']} forward passes"
        )
    elif report.get("objective") == "retain":
        console.print(
            f"Learned strength {report['strength']:.4f}: forget quality (KS p-value of truth ratios against the retain model "
            f"{report['retain_model']}) {report['clean_forget_quality']:.3f} -> {report['forget_quality']:.3f}; median truth "
            f"ratio {report['clean_truth_ratio']:.2f} -> {report['truth_ratio']:.2f}, retain model {report['reference_truth_ratio']:.2f}; "
            f"{report['evaluations']} strengths tried, {report['forward_passes']} forward passes, {report['seconds']:.0f} s"
        )
    else:
        seeds = ", ".join(f"{s:.3f}" for s in report["seed_strengths"])
        console.print(
            f"Learned strength {report['strength']:.4f} (median of {seeds} over {len(report['seed_strengths'])} invented-name draws): "
            f"p(right answer) {report['plain_answer_probability']:.2f} -> {report['answer_probability']:.2f}, "
            f"never-seen reference {report['reference_answer_probability']:.2f} ({status}; KS p = {report['ks_pvalue']:.2f}); "
            f"accuracy {report['plain_accuracy']:.2f} -> {report['accuracy']:.2f}; {report['evaluations']} strengths tried, "
            f"{report['forward_passes']} forward passes, {report['seconds']:.0f} s"
        )
    if report.get("fluency"):
        f = report["fluency"]
        console.print(f"Fluency: corrupted/clean answer perplexity {f['corrupted_perplexity']:.1f}/{f['clean_perplexity']:.1f} "
                      f"= {f['ratio']:.2f} ({'within' if report['fluent'] else '[red]over[/]'} the bound); "
                      f"empty answers {f['empty_rate']:.0%}, loops {f['loop_rate']:.0%}"
                      + (f", paraphrase loops {f['paraphrase_loop_rate']:.0%}" if "paraphrase_loop_rate" in f else ""))
    if report.get("recorded"):
        console.print(f"Recorded in {report['recorded']} (commit it with the policy: a fresh clone then skips the search)")


@app.command()
def optimize(config: Path = typer.Argument(..., help="Rails config folder.")) -> None:
    """Learn the corruption strength (strength: auto) by zeroth-order search; forward passes only."""
    from eco_rails.errors import EcoRailsError
    from eco_rails.progress import progress_bars
    from eco_rails.strength.optimize import optimize_strength

    try:
        with progress_bars(True, width=34) as bars:
            report = optimize_strength(config, progress=bars)
    except EcoRailsError as exc:
        _fail(str(exc))
    _print_optimization(report)


@app.command()
def classify(
    prompts: list[str] = typer.Argument(..., help="Prompts to classify."),
    config: Path = typer.Option(..., "--config", "-c", help="Rails config folder."),
) -> None:
    """Show how the policy's classifier scores prompts (for policy authors)."""
    from rich.table import Table

    from eco_rails.classifier.runtime import PromptClassifier
    from eco_rails.errors import EcoRailsError

    try:
        classifier = PromptClassifier.from_config(config)
        decisions = classifier.classify_batch(prompts)
    except EcoRailsError as exc:
        _fail(str(exc))
    table = Table()
    for col in ("prompt", "flagged", "score", "target", "key term"):
        table.add_column(col)
    for prompt, d in zip(prompts, decisions):
        table.add_row(prompt[:80], "yes" if d.flagged else "no", f"{d.score:.3f}", d.target or "-", d.key_term or "-")
    console.print(table)


@app.command("policy-schema")
def policy_schema(out: Optional[Path] = typer.Option(None, "--out", help="Write the schema here instead of stdout.")) -> None:
    """Print the JSON schema of forget policy files (for editor validation)."""

    from eco_rails.policy import policy_json_schema

    _write_schema(policy_json_schema(), out)


@app.command("manifest-schema")
def manifest_schema(out: Optional[Path] = typer.Option(None, "--out", help="Write the schema here instead of stdout.")) -> None:
    """Print the JSON schema of a classifier artifact's manifest.json."""
    from eco_rails.classifier.artifact import manifest_json_schema

    _write_schema(manifest_json_schema(), out)


def _write_schema(schema: dict, out: Optional[Path]) -> None:
    import json

    from eco_rails.atomic import write_text_atomic

    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(out, text)
        console.print(f"[green]Wrote[/] {out}")
