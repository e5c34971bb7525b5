"""The ``eco-rails`` command line: the typer app, shared consoles and error exit. Commands live in one
module per area (``chat``, ``policy``, ``evaluate``, ``bench``), registered on import by ``eco_rails.cli``.

Conventions follow NeMo Guardrails' CLI (``--config`` points at a rails config folder, ``chat`` is an
interactive loop) and Hugging Face's (models are local directories or the embedded alias; nothing is
downloaded; ``HF_HUB_OFFLINE`` is forced on).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")

import logging

import typer
from rich.console import Console

app = typer.Typer(
    name="eco-rails",
    help="Make a local LLM forget chosen knowledge at inference time (ECO prompts for NeMo Guardrails).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        from eco_rails import __version__

        console.print(f"eco-rails {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what eco-rails does (INFO level)."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]Error:[/] {message}")
    raise typer.Exit(code=1)
