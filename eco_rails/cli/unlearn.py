"""``eco-rails unlearn``: weight unlearning (MemFlex, GA, GA+GD, NPO) into a PEFT adapter the eco provider serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import typer

from eco_rails.cli.app import _fail, app, console


@app.command("unlearn")
def unlearn_command(
    method: str = typer.Option("memflex", "--method", help="memflex, ga (gradient ascent), gd (GA+GD) or npo."),
    forget: Path = typer.Option(..., "--forget", help="JSONL rows to forget: question/answer (TOFU) or text/labels (KnowUnDo)."),
    retain: Optional[Path] = typer.Option(None, "--retain", help="JSONL rows to keep (needed by memflex, gd and npo)."),
    out: Path = typer.Option(..., "--out", help="Folder for the unlearned PEFT adapter (replaced atomically when done)."),
    model: str = typer.Option("smollm2-135m", "--model", help="Base model: the embedded alias or a local HF model directory."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="The PEFT LoRA adapter that learned the data (else a fresh LoRA)."),
    fmt: str = typer.Option("chat", "--format", help="chat: the model's chat template (as the provider serves); plain: 'question\\n\\nanswer' (KnowUnDo)."),
    epochs: int = typer.Option(2, "--epochs"),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: memflex 3e-4, baselines 5e-5)."),
    mu: Optional[float] = typer.Option(None, "--mu", help="MemFlex cosine threshold (default: the median cosine of this model)."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="MemFlex magnitude threshold (default: the median magnitude)."),
    seed: int = typer.Option(42, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda (bf16), cuda:1, ... (default: CUDA if present)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the unlearning record as JSON."),
) -> None:
    """Unlearn the --forget rows from a model's weights; serve the result with `adapter:` in a rails config."""
    from pydantic import ValidationError

    from eco_rails.errors import EcoRailsError
    from eco_rails.progress import progress_bars
    from eco_rails.unlearn import UnlearnData, UnlearnSettings, get_method, load_pairs, method_names, unlearn
    from eco_rails.validation import format_validation_error

    if method not in method_names():
        _fail(f"--method {method!r} is not one of {', '.join(method_names())}.")
    if fmt not in ("chat", "plain"):
        _fail(f"--format {fmt!r}: use chat or plain.")
    if out.exists() and not overwrite:
        _fail(f"{out} already exists; pass --overwrite to replace it (it is replaced only once the new adapter is complete).")
    try:
        settings = UnlearnSettings(method=method, epochs=epochs, learning_rate=lr, mu=mu, sigma=sigma, seed=seed,
                                   format=_format(fmt))
    except ValidationError as exc:
        _fail(format_validation_error(exc, title="Invalid unlearning settings"))
    try:
        data = UnlearnData(load_pairs(forget), load_pairs(retain) if retain is not None else [])
        data.check(method, get_method(method).needs_retain, forget_source=str(forget),
                   retain_source=str(retain) if retain is not None else "--retain (not given)")
        with progress_bars(True, width=34) as bars:
            info = unlearn(model, data, settings, out, adapter=adapter, device=device, progress=bars)
    except (EcoRailsError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        console.print_json(json.dumps(info))
        return
    chosen = next(c for c in info["checkpoints"] if c["step"] == info["chosen_step"])
    start = info["checkpoints"][0]
    loc = info.get("localisation")
    console.print(f"[green]Wrote[/] {out} ({info['method']}, {info['cost']['optimizer_steps']} optimiser steps, "
                  f"{info['cost']['seconds']:.0f} s)" + (f"; trained {loc['selected']} of {loc['tensors']} LoRA tensors "
                                                          f"(mu {loc['mu']:.4g}, sigma {loc['sigma']:.3g})" if loc else ""))
    console.print(f"Training rows, token accuracy: forget {start['train_forget_accuracy']:.1f}% -> {chosen['train_forget_accuracy']:.1f}%, "
                  f"retain {start['train_retain_accuracy']:.1f}% -> {chosen['train_retain_accuracy']:.1f}% (checkpoint at step {info['chosen_step']}).")
    console.print(f"Serve it: `adapter: {out}` under the eco model's parameters, or `eco-rails chat --adapter {out}`.")


def _format(value: str) -> Literal["chat", "plain"]:
    return "plain" if value == "plain" else "chat"
