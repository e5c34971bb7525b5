"""``eco-rails eval``: forgetting and retention through the rails, with baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, cast

import typer

from eco_rails.cli.app import _fail, app, console, err_console


def _data_arg(value: str, default_kind: Optional[str]) -> tuple[Path, Any]:
    """FILE or FILE:KIND (KIND forget|retain overrides --kind for that file)."""
    path, _, kind = value.rpartition(":") if value.endswith((":forget", ":retain")) else (value, "", "")
    return Path(path), (kind or default_kind)


@app.command("eval")
def eval_command(
    config: Path = typer.Option(..., "--config", "-c", help="Rails config folder."),
    data: list[str] = typer.Option(..., "--data", help="JSONL file (ours or TOFU format); FILE:retain or FILE:forget sets the kind of TOFU rows."),
    out: Path = typer.Option(..., "--out", help="report.json; report.md and report.png are written next to it."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Kind of TOFU-format rows: forget or retain."),
    generate: bool = typer.Option(False, "--generate", help="Also generate greedy answers: keyword leaks and fluency."),
    baseline: list[str] = typer.Option([], "--baseline", help="Add a baseline: refuse, system-prompt (repeatable)."),
    strict: bool = typer.Option(False, "--strict", help="Fail on malformed rows instead of skipping and reporting them."),
) -> None:
    """Evaluate forgetting and retention through the rails, with baselines; writes JSON, Markdown and PNG."""
    from eco_rails.atomic import write_text_atomic
    from eco_rails.errors import EcoRailsError
    from eco_rails.evaluation.evaluate import Baseline, evaluate, markdown_summary, write_chart
    from eco_rails.progress import progress_bars

    if kind not in (None, "forget", "retain"):
        _fail(f"--kind must be forget or retain, got {kind!r}.")
    bad = [b for b in baseline if b not in ("refuse", "system-prompt")]
    if bad:
        _fail(f"Unknown baseline(s) {bad}; use refuse and/or system-prompt.")
    try:
        with progress_bars(True, width=20) as bars:
            report = evaluate(config, [_data_arg(d, kind) for d in data], generate=generate,
                              baselines=cast("list[Baseline]", baseline), strict=strict, progress=bars)
    except EcoRailsError as exc:
        _fail(str(exc))
    summary = markdown_summary(report)
    write_text_atomic(out, report.model_dump_json(indent=2))
    write_text_atomic(out.with_suffix(".md"), summary)
    write_chart(report, out.with_suffix(".png"))
    console.print(summary, markup=False, highlight=False)
    if report.skipped_rows:
        err_console.print(f"[yellow]Skipped {len(report.skipped_rows)} malformed row(s); see {out}.[/]")
    console.print(f"[green]Wrote[/] {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
