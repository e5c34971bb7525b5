"""``eco-rails bench``: speed of the classifier, the rail, the provider and cold start."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from eco_rails.cli.app import _fail, app, console, err_console


@app.command()
def bench(
    config: Path = typer.Option(Path("rails_configs/harry_potter"), "--config", "-c", help="Rails config folder (Colang 1) whose policy and model are measured."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report here (JSON); a Markdown table goes next to it (.md)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: every section once, tiny sizes, no fit timing (seconds, not minutes)."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated sections: fit, classifier, rail, provider, cold-start, vllm."),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Model for the provider and cold-start sections."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (classifier via ORT CUDAExecutionProvider, LLM on the GPU)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="LLM dtype: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16."),
    random_model: Optional[str] = typer.Option(None, "--random-model", help="Provider on a random Llama of this size (llama-1b, tiny): GPU throughput without weights."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="With --random-model: tokenizer folder (default: the embedded model's)."),
    vllm_url: Optional[str] = typer.Option(None, "--vllm-url", help="A running vLLM server (adds the vllm section: backend vs in-process engine)."),
    vllm_model: Optional[Path] = typer.Option(None, "--vllm-model", help="With --vllm-url: the folder the server serves (default: --model)."),
) -> None:
    """Measure the classifier backends, the rail's overhead, provider throughput, cold start and fit time."""
    from eco_rails.atomic import write_text_atomic
    from eco_rails.bench import BenchOptions, markdown_table, run_bench
    from eco_rails.errors import EcoRailsError
    from eco_rails.progress import progress_bars

    if json_out is not None and json_out.suffix.lower() != ".json":
        _fail(f"--json {json_out}: give a file name ending in .json (the Markdown table is written next to it).")
    try:
        options = BenchOptions.build(config=config, quick=quick, sections=[s.strip() for s in only.split(",") if s.strip()] if only else None,
                                     model=model, device=device, dtype=dtype, random_model=random_model, tokenizer=tokenizer,
                                     vllm_url=vllm_url, vllm_model=vllm_model)
        if not (config / "config.yml").is_file() and {"fit", "classifier", "rail"} & set(options.sections):
            _fail(f"--config {config} is not a rails config folder (no config.yml).")
        with progress_bars(True, width=20) as bars:
            report = run_bench(options, command="eco-rails " + shlex.join(sys.argv[1:]),
                               progress=bars, note=lambda text: err_console.print(f"[yellow]{text}[/]"))
    except EcoRailsError as exc:
        _fail(str(exc))
    table = markdown_table(report)
    console.print(table, markup=False, highlight=False)
    if json_out is not None:
        write_text_atomic(json_out, report.model_dump_json(indent=2) + "\n")
        write_text_atomic(json_out.with_suffix(".md"), table)
        console.print(f"[green]Wrote[/] {json_out} and {json_out.with_suffix('.md')}")
