"""``eco-rails export-vllm``: write a model directory a vLLM server serves (README: Deployment on vLLM)."""

from __future__ import annotations

from pathlib import Path

import typer

from eco_rails.cli.app import _fail, app, console


@app.command("export-vllm")
def export_vllm(
    out: Path = typer.Argument(..., help="New folder to write (must not exist or be empty)."),
    model: str = typer.Option("smollm2-135m", "--model", help="Embedded alias, local HF model directory, or .gguf file."),
    dtype: str = typer.Option("bfloat16", "--dtype", help="bfloat16 (default), float16 or float32."),
) -> None:
    """Write MODEL as a safetensors folder for `vllm serve` (the embedded GGUF is not servable by vLLM as is)."""
    from eco_rails.engine.vllm_export import export_for_vllm
    from eco_rails.errors import EcoRailsError

    try:
        with console.status(f"Exporting {model} to {out} ..."):
            export_for_vllm(model, out, dtype=dtype)
    except EcoRailsError as exc:
        _fail(str(exc))
    console.print(f"[green]Written:[/] {out}\nServe it privately, e.g.\n  python -m vllm.entrypoints.openai.api_server "
                  f"--model {out} --enable-prompt-embeds --host 127.0.0.1 --port 8000\n"
                  "and point the rails config at it (backend: vllm; README: Deployment on vLLM).")
