"""The ``eco-rails`` command line.

Conventions follow NeMo Guardrails' CLI (``--config`` points at a rails config folder, ``chat`` is an
interactive loop) and Hugging Face's (models are local directories or the embedded alias; nothing is
downloaded; ``HF_HUB_OFFLINE`` is forced on).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")

import asyncio  # noqa: E402
import logging  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

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


@app.command()
def prepare(
    model: str = typer.Argument("smollm2-135m", help="Embedded alias, local HF model directory, or .gguf file."),
) -> None:
    """Convert and cache a model once (the embedded GGUF takes ~20 s), so later starts are fast."""
    from eco_rails.errors import EcoRailsError
    from eco_rails.model_store import resolve_model_dir

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


def _chat_with_provider(model: str, message: Optional[str], flag: bool, max_new_tokens: int) -> None:
    from eco_rails import FlagDecision, GenerationSettings, get_engine

    with console.status(f"Loading {model} ..."):
        engine = get_engine(model)
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


def _calibration_table(manifest) -> "Table":
    from rich.table import Table

    table = Table(title=f"Policy {manifest.policy_name} v{manifest.policy_version}: threshold {manifest.threshold:.4f} "
                        f"(target FPR {manifest.target_fpr:g})")
    for col in ("split", "negatives", "FPR", "positives", "TPR", "key-term hits on negatives"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split in ("calibration", "test"):
        m = manifest.metrics[split]
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(split, str(m.n_negative), fmt(m.fpr), str(m.n_positive), fmt(m.tpr), str(m.key_term_hits_negative))
        for target, tpr in m.tpr_per_target.items():
            if len(m.tpr_per_target) > 1:
                table.add_row(f"  {target}", "", "", str(m.n_per_target[target]), fmt(tpr), "")
    return table


@app.command()
def fit(
    config: Path = typer.Argument(..., help="Rails config folder whose custom_data.eco names the policy."),
    keep_fp32: bool = typer.Option(False, "--keep-fp32", help="Also keep the PyTorch checkpoint and fp32 ONNX (benchmarks)."),
    skip_optimize: bool = typer.Option(False, "--skip-optimize", help="Do not learn the corruption strength now."),
) -> None:
    """Train, calibrate and export the policy's classifier to ONNX (int8); then learn the corruption strength."""
    from eco_rails.errors import EcoRailsError
    from eco_rails.fit import fit_policy
    from eco_rails.policy import load_policy
    from eco_rails.rail_settings import load_eco_settings

    try:
        settings = load_eco_settings(config)
        policy = load_policy(settings.policy_path)
        artifact = settings.artifact_path(policy)
        console.print(f"Fitting policy [bold]{policy.name}[/] v{policy.version} -> {artifact}")
        manifest = fit_policy(settings.policy_path, artifact, show_progress=True, keep_fp32=keep_fp32)
        console.print(_calibration_table(manifest))
        if policy.corruption.strength == "auto" and policy.optimization.data and not skip_optimize:
            from eco_rails.optimize import optimize_strength

            _print_optimization(optimize_strength(config, show_progress=True))
    except EcoRailsError as exc:
        _fail(str(exc))
    console.print(f"[green]Wrote[/] {artifact}")


def _print_optimization(report: dict) -> None:
    status = "[green]reached[/]" if report["reached_target"] else "[red]NOT reached[/]"
    console.print(
        f"Learned strength {report['strength']:.4f}: forget accuracy {report['plain_accuracy']:.2f} -> {report['accuracy']:.2f} "
        f"(target <= {report['target_accuracy']:.2f}, {status}) in {report['evaluations']} evaluations / "
        f"{report['forward_passes']} forward passes"
    )
    if report.get("fluency"):
        f = report["fluency"]
        console.print(f"Fluency: corrupted/clean answer perplexity {f['corrupted_perplexity']:.1f}/{f['clean_perplexity']:.1f} "
                      f"= {f['ratio']:.2f} ({'within' if report['fluent'] else '[red]over[/]'} the bound)")


@app.command()
def optimize(config: Path = typer.Argument(..., help="Rails config folder.")) -> None:
    """Learn the corruption strength (strength: auto) by zeroth-order search; forward passes only."""
    from eco_rails.errors import EcoRailsError
    from eco_rails.optimize import optimize_strength

    try:
        report = optimize_strength(config, show_progress=True)
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

    from eco_rails.classifier import PromptClassifier
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


def _progress_bar():
    """Progress bars on stderr, so stdout keeps only the results (tables, reports)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console)


def _data_arg(value: str, default_kind: Optional[str]) -> tuple[Path, Optional[str]]:
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
    from eco_rails.artifacts import write_text_atomic
    from eco_rails.errors import EcoRailsError
    from eco_rails.evaluation import evaluate, markdown_summary, write_chart

    if kind not in (None, "forget", "retain"):
        _fail(f"--kind must be forget or retain, got {kind!r}.")
    bad = [b for b in baseline if b not in ("refuse", "system-prompt")]
    if bad:
        _fail(f"Unknown baseline(s) {bad}; use refuse and/or system-prompt.")
    try:
        with _progress_bar() as bar:
            task = bar.add_task("Evaluating rows", total=None)
            report = evaluate(config, [_data_arg(d, kind) for d in data], generate=generate, baselines=baseline, strict=strict,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
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


@app.command()
def bench(
    config: Path = typer.Option(Path("rails_configs/harry_potter"), "--config", "-c", help="Rails config folder (Colang 1) whose policy and model are measured."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report here (JSON); a Markdown table goes next to it (.md)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: every section once, tiny sizes, no fit timing (seconds, not minutes)."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated sections: fit, classifier, rail, provider, cold-start."),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Model for the provider and cold-start sections."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (classifier via ORT CUDAExecutionProvider, LLM on the GPU)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="LLM dtype: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16."),
    random_model: Optional[str] = typer.Option(None, "--random-model", help="Provider on a random Llama of this size (llama-1b, tiny): GPU throughput without weights."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="With --random-model: tokenizer folder (default: the embedded model's)."),
) -> None:
    """Measure the classifier backends, the rail's overhead, provider throughput, cold start and fit time."""
    from eco_rails.artifacts import write_text_atomic
    from eco_rails.bench import BenchOptions, markdown_table, run_bench
    from eco_rails.errors import EcoRailsError

    if json_out is not None and json_out.suffix.lower() != ".json":
        _fail(f"--json {json_out}: give a file name ending in .json (the Markdown table is written next to it).")
    try:
        options = BenchOptions.build(config=config, quick=quick, sections=[s.strip() for s in only.split(",") if s.strip()] if only else None,
                                     model=model, device=device, dtype=dtype, random_model=random_model, tokenizer=tokenizer)
        if not (config / "config.yml").is_file() and {"fit", "classifier", "rail"} & set(options.sections):
            _fail(f"--config {config} is not a rails config folder (no config.yml).")
        with _progress_bar() as bar:
            def progress(description: str, total: int):
                task = bar.add_task(description, total=total)
                return lambda n: bar.advance(task, n)

            report = run_bench(options, command="eco-rails " + shlex.join(sys.argv[1:]),
                               progress=progress, note=lambda text: err_console.print(f"[yellow]{text}[/]"))
    except EcoRailsError as exc:
        _fail(str(exc))
    table = markdown_table(report)
    console.print(table, markup=False, highlight=False)
    if json_out is not None:
        write_text_atomic(json_out, report.model_dump_json(indent=2) + "\n")
        write_text_atomic(json_out.with_suffix(".md"), table)
        console.print(f"[green]Wrote[/] {json_out} and {json_out.with_suffix('.md')}")


@app.command("policy-schema")
def policy_schema(out: Optional[Path] = typer.Option(None, "--out", help="Write the schema here instead of stdout.")) -> None:
    """Print the JSON schema of forget policy files (for editor validation)."""
    import json

    from eco_rails.artifacts import write_text_atomic
    from eco_rails.policy import policy_json_schema

    text = json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(out, text)
        console.print(f"[green]Wrote[/] {out}")


def _ensure_artifact(config: Path) -> None:
    """A config with an eco policy needs its classifier: fit it when missing or stale (a fresh clone)."""
    from eco_rails.fit import artifact_status, fit_policy
    from eco_rails.rail_settings import read_config_yml, load_eco_settings

    if "eco" not in (read_config_yml(config.resolve()).get("custom_data") or {}):
        return
    path, status = artifact_status(config)
    if status == "ok":
        return
    reason = "is missing" if status == "missing" else "was fitted for another version of the policy"
    err_console.print(f"The classifier artifact {path} {reason}; fitting it now (a few minutes, once).")
    settings = load_eco_settings(config)
    manifest = fit_policy(settings.policy_path, path, show_progress=True)
    err_console.print(_calibration_table(manifest))


@app.command()
def chat(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Rails config folder (as for `nemoguardrails chat`)."),
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Without --config: the model to chat with directly."),
    message: Optional[str] = typer.Option(None, "--message", help="Send one message, print the answer, exit."),
    flag: bool = typer.Option(False, "--flag", help="Without --config: corrupt every message (shows what ECO does)."),
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
            _chat_with_provider(model, message, flag, max_new_tokens)
    except EcoRailsError as exc:
        _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    app()
