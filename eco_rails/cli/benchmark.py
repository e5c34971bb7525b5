"""``eco-rails benchmark tofu|knowundo``: unlearning measured on a model that learned the data first."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from eco_rails.cli.app import _fail, app, console, err_console

BENCHMARKS = ("tofu", "knowundo")


@app.command("benchmark")
def benchmark_command(
    name: str = typer.Argument(..., help="tofu or knowundo"),
    quick: bool = typer.Option(False, "--quick", help="A few authors, short training: a smoke run (minutes)."),
    full: bool = typer.Option(False, "--full", help="The benchmark's full size (a GPU job)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda (bf16), cuda:1, ... (default: CUDA if present)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Report file; .md and .png are written next to it. Default reports/<name>.json."),
    model: str = typer.Option("smollm2-135m", "--model", help="Base model: the embedded alias or a local HF model directory."),
    method: list[str] = typer.Option([], "--method", help="Methods to compare (repeatable; default: all registered)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="A copy of the benchmark data (layout of eco_rails/benchmarks/data)."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Where the benchmark's rails config goes (default: the eco-rails cache)."),
    strict: bool = typer.Option(False, "--strict", help="Fail on malformed data rows instead of skipping and reporting them."),
    seed: int = typer.Option(0, "--seed"),
    export_adapter: Optional[Path] = typer.Option(
        None, "--export-adapter", help="TOFU: only build (or reuse) the target adapter and copy it to this folder (for a rails config)."),
) -> None:
    """Inject the knowledge (LoRA), run every method, write JSON + Markdown + PNG."""
    from eco_rails.benchmarks.report import markdown, write_report
    from eco_rails.errors import EcoRailsError
    from eco_rails.progress import progress_bars

    if name not in BENCHMARKS:
        _fail(f"Unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}.")
    if quick and full:
        _fail("--quick and --full exclude each other; pick one (or neither for the default size).")
    preset = "quick" if quick else "full" if full else "default"
    out = json_path or Path("reports") / f"{name}.json"
    options: dict[str, Any] = {"preset": preset, "model": model, "device": device, "data_dir": data_dir, "work_dir": work_dir,
               "strict": strict, "seed": seed}
    if method:
        options["methods"] = tuple(method)
    if export_adapter is not None:
        if name != "tofu":
            _fail("--export-adapter is for tofu (the demo adapter knows TOFU authors).")
        from eco_rails.benchmarks.inject import export_adapter as export
        from eco_rails.benchmarks.tofu import TofuOptions, target_adapter

        try:
            with progress_bars(True, width=34) as bars:
                path, authors = target_adapter(TofuOptions(**options), progress=bars)
        except (EcoRailsError, ValueError, KeyError) as exc:
            _fail(str(exc))
        export(path, export_adapter, model)
        console.print(f"[green]Wrote[/] {export_adapter}: a LoRA adapter that knows {len(authors)} TOFU authors "
                      f"({', '.join(authors.values())}).")
        return
    try:
        with progress_bars(True, width=34) as bars:
            if name == "tofu":
                from eco_rails.benchmarks.tofu import TofuOptions, run_tofu

                report = run_tofu(TofuOptions(**options), progress=bars)
            else:
                from eco_rails.benchmarks.knowundo import KnowUnDoOptions, run_knowundo

                report = run_knowundo(KnowUnDoOptions(**options), progress=bars)
    except (EcoRailsError, ValueError, KeyError) as exc:
        _fail(str(exc))
    command = "eco-rails " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    md, png = write_report(report, out, command)
    console.print(markdown(report, command), markup=False, highlight=False)
    if report.get("skipped_rows"):
        err_console.print(f"[yellow]Skipped {len(report['skipped_rows'])} malformed row(s); see {out}.[/]")
    console.print(f"[green]Wrote[/] {out}, {md}, {png}")
