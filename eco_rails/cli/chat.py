"""Chat through a rails config, or with the eco provider directly; prepare (convert) a model."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import typer

from eco_rails.cli.app import _fail, app, console, err_console


@app.command()
def prepare(
    model: str = typer.Argument("smollm2-135m", help="Embedded alias, local HF model directory, or .gguf file."),
) -> None:
    """Convert and cache a model once (the embedded GGUF takes ~20 s), so later starts are fast."""
    from eco_rails.engine.model_store import resolve_model_dir
    from eco_rails.errors import EcoRailsError

    try:
        with console.status(f"Preparing {model} ..."):
            path = resolve_model_dir(model)
    except EcoRailsError as exc:
        _fail(str(exc))
    console.print(f"[green]Ready:[/] {path}")


def _read_turns(message: Optional[str]):
    """One-shot with --message; otherwise an interactive loop that ends on EOF, 'exit' or 'quit'."""
    if message is not None:
        yield message
        return
    interactive = sys.stdin.isatty()
    while True:
        try:
            text = console.input("[bold cyan]> [/]") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            return
        if not interactive and text == "":
            return
        text = text.strip()
        if text.lower() in {"exit", "quit"}:
            return
        if text:
            yield text


async def _chat_with_rails(config: Path, message: Optional[str], stream: bool) -> None:
    from nemoguardrails import LLMRails, RailsConfig

    import eco_rails

    eco_rails.register_nemo_provider()
    with console.status(f"Loading rails config {config} ..."):
        rails = LLMRails(RailsConfig.from_path(str(config)))
    history: list[dict[str, str]] = []
    for text in _read_turns(message):
        history.append({"role": "user", "content": text})
        if stream:
            parts = []
            async for chunk in rails.stream_async(messages=history):
                delta = chunk if isinstance(chunk, str) else chunk.get("text", "")
                parts.append(delta)
                console.print(delta, end="", markup=False, highlight=False)
            console.print()
            answer = "".join(parts)
        else:
            answer = (await rails.generate_async(messages=history))["content"]
            console.print(answer, markup=False, highlight=False)
        history.append({"role": "assistant", "content": answer})


def _chat_with_provider(model: str, message: Optional[str], flag: bool, max_new_tokens: int, adapter: Optional[Path] = None) -> None:
    from eco_rails import FlagDecision, GenerationSettings, get_engine

    with console.status(f"Loading {model} ..."):
        engine = get_engine(model, adapter=adapter)
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    history: list[dict[str, str]] = []
    for text in _read_turns(message):
        history.append({"role": "user", "content": text})
        parts = []
        for delta in engine.stream(history, flag=FlagDecision.flag() if flag else None, settings=settings):
            parts.append(delta)
            console.print(delta, end="", markup=False, highlight=False)
        console.print()
        history.append({"role": "assistant", "content": "".join(parts)})


def _ensure_artifact(config: Path) -> None:
    """A config with an eco policy needs its classifier: fit it when missing or stale (a fresh clone)."""
    from eco_rails.classifier.artifact import refuse_other_policy
    from eco_rails.classifier.fit import fit_policy
    from eco_rails.cli.policy import _calibration_table
    from eco_rails.progress import progress_bars
    from eco_rails.rails.resolved import resolve_config, uses_eco_rail

    if not uses_eco_rail(config):
        return
    resolved = resolve_config(config)
    status = resolved.status()
    if status != "ok":
        refuse_other_policy(resolved.artifact_path, resolved.policy, resolved.policy_path, fix=str(config))
        reason = "is missing" if status == "missing" else "was fitted for another policy or policy version"
        err_console.print(f"The classifier artifact {resolved.artifact_path} {reason}; fitting it now (about 10 minutes on 2 CPU cores for the demo policy; once).")
        with progress_bars(True) as bars:
            manifest = fit_policy(resolved.policy_path, resolved.artifact_path, progress=bars)
        err_console.print(_calibration_table(manifest))
    err_console.print(corruption_line(resolved))


def corruption_line(resolved) -> str:
    """Which corruption flagged prompts get, and where it comes from (learned and recorded, or the default)."""
    from eco_rails.engine.corruption.spec import DEFAULT_NOISE_STRENGTH
    from eco_rails.policy.learned import ARTIFACT_DETAIL, model_identity, strength_source

    policy = resolved.policy
    method = policy.corruption.method
    if policy.corruption.strength != "auto":
        return f"Corruption: {method}, strength {policy.corruption.strength} (set in {resolved.policy_path.name})."
    main = resolved.main_model
    artifact_strengths = resolved.manifest().learned_strength if resolved.status() == "ok" else {}
    lookup = strength_source(policy, resolved.policy_path, model_identity(main.model, main.parameters.get("adapter")),
                             artifact_strengths, resolved.artifact_path)
    if lookup.status == "learned":
        values = ", ".join(f"{v:.3f}" for v in dict.fromkeys(lookup.strengths.values()))
        if lookup.detail == ARTIFACT_DETAIL:
            return f"Corruption: {method}, strength {values}, {ARTIFACT_DETAIL}."
        return f"Corruption: {method}, strength {values}, {lookup.detail}, read from {Path(lookup.path).name}."
    return (f"Corruption: {method}, DEFAULT strength {DEFAULT_NOISE_STRENGTH} ({Path(lookup.path).name}: {lookup.detail}). "
            f"Learn it with `eco-rails optimize {resolved.config_dir}`.")


@app.command()
def chat(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Rails config folder (as for `nemoguardrails chat`)."),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Without --config: the model to chat with directly."),
    message: Optional[str] = typer.Option(None, "--message", help="Send one message, print the answer, exit."),
    flag: bool = typer.Option(False, "--flag", help="Without --config: corrupt every message (shows what ECO does)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="Without --config: a PEFT adapter folder served on top of --model."),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", min=1),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="With --config: stream the answer."),
) -> None:
    """Chat through a rails config (with --config), or with the eco provider directly."""
    from eco_rails.errors import EcoRailsError

    try:
        if config is not None:
            if not (config / "config.yml").is_file() and not (config / "config.yaml").is_file():
                _fail(f"{config} is not a rails config folder (no config.yml). Try rails_configs/smollm2_plain.")
            _ensure_artifact(config)
            asyncio.run(_chat_with_rails(config, message, stream))
        else:
            _chat_with_provider(model, message, flag, max_new_tokens, adapter)
    except EcoRailsError as exc:
        _fail(str(exc))
