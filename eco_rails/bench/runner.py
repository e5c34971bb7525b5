"""``eco-rails bench``: run the benchmark sections and assemble one :class:`BenchReport`."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Optional

from pydantic import BaseModel, ConfigDict, Field

from eco_rails.atomic import atomic_directory
from eco_rails.bench.report import BenchReport, Ratios, evaluate_targets
from eco_rails.bench.stats import Summary, summarize
from eco_rails.errors import ConfigError
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.rails.resolved import resolve_config
from eco_rails.versions import package_versions

SECTIONS = ("fit", "classifier", "rail", "provider", "cold-start", "vllm")
_QUICK_SIZES = dict(classifier_prompts=8, classifier_rounds=1, rail_prompts=2, rail_rounds=1, rail_new_tokens=4,
                    provider_prompts=1, provider_rounds=1, provider_new_tokens=4, cold_start_repeats=1,
                    vllm_levels=(1, 2), vllm_rounds=1, vllm_new_tokens=4)


class BenchOptions(BaseModel):
    """What to measure and how hard. ``quick`` shrinks every section to a smoke run (seconds per section)."""

    model_config = ConfigDict(extra="forbid")

    config: Path
    quick: bool = False
    sections: tuple[str, ...] = SECTIONS
    model: str = "smollm2-135m"
    device: str = "cpu"
    dtype: Optional[str] = None
    random_model: Optional[str] = None  # a preset of eco_rails.bench.random_model (GPU throughput without weights)
    tokenizer: Optional[Path] = None
    classifier_prompts: int = Field(default=32, ge=1)
    classifier_rounds: int = Field(default=5, ge=1)
    rail_prompts: int = Field(default=8, ge=2)
    rail_rounds: int = Field(default=3, ge=1)
    rail_new_tokens: int = Field(default=32, ge=1)
    provider_prompts: int = Field(default=4, ge=1)
    provider_rounds: int = Field(default=3, ge=1)
    provider_new_tokens: int = Field(default=64, ge=1)
    cold_start_repeats: int = Field(default=3, ge=1)
    # The vllm section: a running server (its URL) and the model folder it serves (tokenizer and embeddings).
    vllm_url: Optional[str] = None
    vllm_model: Optional[Path] = None
    vllm_levels: tuple[int, ...] = (1, 8, 32)
    vllm_rounds: int = Field(default=2, ge=1)
    vllm_new_tokens: int = Field(default=32, ge=1)

    @classmethod
    def build(cls, *, sections: Optional[list[str]] = None, quick: bool = False, **values: object) -> BenchOptions:
        """Options from CLI values (``None`` means default). ``--quick`` shrinks every section to a smoke run
        and, unless sections are named, leaves out the multi-minute fit."""
        has_server = values.get("vllm_url") is not None
        chosen = tuple(sections) if sections else tuple(
            s for s in SECTIONS if not (quick and s == "fit") and not (s == "vllm" and not has_server))
        unknown = [s for s in chosen if s not in SECTIONS]
        if unknown:
            raise ConfigError(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}.")
        if "vllm" in chosen and not has_server:
            raise ConfigError("the vllm section needs a running server: pass --vllm-url http://HOST:PORT (and --vllm-model, "
                              "the folder it serves; README: Deployment on vLLM).")
        given = {k: v for k, v in values.items() if v is not None}
        return cls(quick=quick, sections=chosen, **{**given, **(_QUICK_SIZES if quick else {})})

    def settings_record(self) -> dict[str, object]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.model_dump().items()}


def _machine(device: str) -> dict[str, object]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu, "cpu_count": cores,
            "memory_gib": memory_gib, "torch_threads": torch.get_num_threads(), "gpu": gpu}


def _versions() -> dict[str, str]:
    return package_versions(("eco-rails", "torch", "transformers", "onnxruntime", "onnxruntime-gpu", "optimum",
                             "optimum-onnx", "nemoguardrails", "numpy"))


def _policy_prompts(config: Path) -> tuple[list[str], list[str]]:
    """(in-scope, out-of-scope) prompts from the config's policy: its target examples and keep examples."""
    policy = resolve_config(config).policy
    inside = [e for t in policy.targets for e in t.examples]
    outside = list(policy.keep)
    if not outside:
        raise ConfigError(f"{config}: the policy has no keep examples, which the benchmarks use as out-of-scope prompts.")
    return inside, outside


def _take(items: list[str], n: int) -> list[str]:
    return [items[i % len(items)] for i in range(n)]


def _interleave(a: list[str], b: list[str], n: int) -> list[str]:
    """n prompts alternating a, b, a, b, ... (each list cycled as needed)."""
    return [x for pair in zip(_take(a, n), _take(b, n)) for x in pair][:n]


def _fit_copy(config: Path, stack: ExitStack) -> Path:
    """Fit the config's policy, with the fp32 checkpoint, into a temporary artifact (removed with ``stack``)."""
    from eco_rails.classifier.fit import fit_policy

    artifact = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eco-bench-"))) / "artifact"
    fit_policy(resolve_config(config).policy_path, artifact, keep_fp32=True)
    return artifact


def _ensure_config_artifact(config: Path, fitted: Optional[Path], note: Callable[[str], None]) -> Path:
    """The config's classifier, fitted (with the fp32 checkpoint) when it is missing or stale."""
    from eco_rails.classifier.fit import fit_policy

    resolved = resolve_config(config)
    path, status = resolved.artifact_path, resolved.status()
    if status == "ok":
        return path
    if fitted is not None:  # the benchmark just fitted the same policy, deterministically: install that copy
        with atomic_directory(path) as out:
            shutil.copytree(fitted, out, dirs_exist_ok=True)
    else:
        fit_policy(resolved.policy_path, path, keep_fp32=True)
    note(f"The classifier artifact {path} was {status}; the benchmark fitted it (corruption strength not learned).")
    return path


def run_bench(options: BenchOptions, *, command: str, progress: ProgressSink | None = None,
              note: Callable[[str], None] = lambda s: None) -> BenchReport:
    from eco_rails import __version__

    sink = progress or SilentProgress()
    measurements: dict[str, Summary] = {}
    ratios: dict[str, Optional[float]] = dict.fromkeys(Ratios.model_fields)
    notes: list[str] = []
    settings = options.settings_record()

    def add_note(text: str) -> None:
        notes.append(text)
        note(text)

    needs_policy = {"fit", "classifier", "rail"} & set(options.sections)
    inside, outside = _policy_prompts(options.config) if needs_policy else ([], [])
    with ExitStack() as stack:
        classifier_artifact: Optional[Path] = None
        if "fit" in options.sections:
            advance = sink.task("fit (demo policy)", 1)
            start = time.perf_counter()
            classifier_artifact = _fit_copy(options.config, stack)
            measurements["fit.wall_s"] = summarize([time.perf_counter() - start], "s")
            advance(1)
            add_note("fit.wall_s is `eco-rails fit --skip-optimize` (train, calibrate, export); the strength search "
                     "(`eco-rails optimize`) is a separate, optional step.")
        if "classifier" in options.sections:
            from eco_rails.bench.classifier_bench import bench_classifier

            if classifier_artifact is None:
                classifier_artifact = _ensure_config_artifact(options.config, None, add_note)
                if not (classifier_artifact / "fp32" / "model.onnx").is_file():
                    classifier_artifact = _fit_copy(options.config, stack)
                    add_note("The config's artifact has no fp32 checkpoint; the benchmark fitted a copy with --keep-fp32.")
            prompts = _interleave(inside, outside, options.classifier_prompts)
            bench = bench_classifier(classifier_artifact, prompts, rounds=options.classifier_rounds,
                                     device=options.device, progress=sink.task("classifier", options.classifier_rounds))
            measurements.update(bench.measurements)
            ratios["classifier_int8_speedup_vs_torch"] = bench.int8_speedup_vs_torch
            ratios["classifier_batch_vs_one_by_one"] = bench.batch_vs_one_by_one
            add_note(f"Batched classifier scoring: {bench.identical} of {bench.batch_size} prompts scored bit for bit "
                     "the same in one classify_batch call as alone.")
        if "rail" in options.sections:
            from eco_rails.bench.rail_bench import bench_rail

            _ensure_config_artifact(options.config, classifier_artifact if "fit" in options.sections else None, add_note)
            prompts = _interleave(inside, outside, options.rail_prompts)
            found, overhead, flagged = asyncio.run(bench_rail(
                options.config, prompts, rounds=options.rail_rounds, new_tokens=options.rail_new_tokens,
                progress=sink.task("rail overhead", options.rail_rounds)))
            measurements.update(found)
            ratios["rail_overhead"] = overhead
            settings["rail_prompts_flagged"] = flagged
        if "provider" in options.sections:
            from eco_rails.bench.provider_bench import bench_provider

            if options.random_model:
                from eco_rails.bench.random_model import parameter_count, random_engine

                engine = random_engine(options.random_model, tokenizer_dir=options.tokenizer, device=options.device, dtype=options.dtype)
                n_parameters = parameter_count(engine.model)
                settings["random_model_parameters"] = n_parameters
                add_note(f"Provider throughput on a randomly initialised {options.random_model} Llama "
                         f"({n_parameters / 1e9:.2f}B parameters): speed does not depend on weight values.")
            else:
                from eco_rails import get_engine

                engine = get_engine(options.model, device=options.device, dtype=options.dtype)
            settings["provider_dtype"] = str(engine.model.dtype).replace("torch.", "")
            questions = _take(inside or _DEFAULT_QUESTIONS, options.provider_prompts)
            found, corrupted_vs_clean, provider_vs_hf = bench_provider(
                engine, questions, rounds=options.provider_rounds, new_tokens=options.provider_new_tokens,
                progress=sink.task("provider", options.provider_rounds))
            measurements.update(found)
            ratios["corrupted_vs_clean_tokens_per_s"] = corrupted_vs_clean
            ratios["provider_vs_hf_generate_tokens_per_s"] = provider_vs_hf
        if "cold-start" in options.sections:
            if options.random_model:
                add_note("cold-start skipped: a random model has no weights to load.")
            else:
                from eco_rails import get_engine
                from eco_rails.bench.provider_bench import bench_cold_start

                get_engine(options.model, device=options.device, dtype=options.dtype)  # the one-off conversion, untimed
                measurements.update(bench_cold_start(options.model, device=options.device, dtype=options.dtype,
                                                     repeats=options.cold_start_repeats,
                                                     progress=sink.task("cold start", options.cold_start_repeats)))
        if "vllm" in options.sections:
            from eco_rails import get_engine
            from eco_rails.bench.vllm_bench import bench_vllm
            from eco_rails.engine.vllm_backend import VllmSettings, get_vllm_engine

            assert options.vllm_url is not None
            remote = get_vllm_engine(options.vllm_model or options.model, VllmSettings(url=options.vllm_url))
            local = get_engine(options.model, device=options.device, dtype=options.dtype)
            found, ratio = bench_vllm(remote, local, _take(inside or _DEFAULT_QUESTIONS, 8), levels=options.vllm_levels,
                                      rounds=options.vllm_rounds, new_tokens=options.vllm_new_tokens,
                                      progress=sink.task("vllm", options.vllm_rounds * len(options.vllm_levels)))
            measurements.update(found)
            ratios["vllm_corrupted_vs_clean_tokens_per_s"] = ratio
            settings["vllm_served_model"] = remote.served_model()
            add_note(f"vllm: the backend against {options.vllm_url} vs the in-process engine on this machine, half of each "
                     f"level's requests flagged, every answer {options.vllm_new_tokens} tokens; c = requests in flight.")
    report = BenchReport(
        eco_rails_version=__version__, created_at=datetime.now(UTC).isoformat(timespec="seconds"), command=command,
        quick=options.quick, sections=list(options.sections), machine=_machine(options.device), versions=_versions(),
        settings=settings, measurements=measurements, ratios=Ratios(**ratios), notes=notes,
    )
    return report.model_copy(update={"targets": evaluate_targets(report)})


# Used by the provider section when no policy is loaded (e.g. --only provider with a random model).
_DEFAULT_QUESTIONS = [
    "Who wrote the Harry Potter books?", "What is the capital of Australia?",
    "Explain how a refrigerator keeps food cold.", "Name three planets in the solar system.",
]
