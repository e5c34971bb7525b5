"""Weight-unlearning methods in a benchmark run: unlearn the target adapter once per method (cached like
injection: same base, adapter, rows and settings reuse the result), then serve each result as an engine.

The rows are the benchmark's *training* rows, the same the ECO classifier is fitted on (TOFU: the forget
authors' example half and the retain authors' keep half; KnowUnDo: unlearn_train and retention_train), so
ECO and the weight methods see the same data and neither sees an evaluation question it is scored on as
held out. Checkpoints are chosen on those training rows (see :mod:`eco_rails.unlearn.train`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from eco_rails.benchmarks.eco_config import MERGE_ADAPTERS
from eco_rails.benchmarks.methods import HYBRID, WEIGHT_METHODS
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.unlearn import UnlearnData, UnlearnSettings, unlearn, unlearn_key, unlearning_info
from eco_rails.unlearn.train import UNLEARNING_FILE

log = logging.getLogger(__name__)


def weight_methods_in(methods: tuple[str, ...]) -> list[str]:
    """The weight methods a run needs (a hybrid needs its weights)."""
    wanted = {m for m in methods if m in WEIGHT_METHODS}
    if HYBRID in methods:
        wanted.add("memflex")
    return [m for m in WEIGHT_METHODS if m in wanted]


def unlearned_adapters(model: str, target_dir: Path, data: UnlearnData, settings: UnlearnSettings, methods: list[str], *,
                       prefix: str, device: str | None, dtype: str | None,
                       progress: ProgressSink | None = None) -> dict[str, tuple[Path, dict[str, Any]]]:
    """``{method: (adapter folder, unlearning record)}``, unlearning where no cached result exists."""
    from eco_rails.engine.model_store import cache_root, resolve_model_dir

    progress = progress or SilentProgress()
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    model_dir = resolve_model_dir(model)
    for name in methods:
        run = settings.model_copy(update={"method": name})
        key = unlearn_key(model_dir, target_dir, data, run)
        folder = cache_root() / "adapters" / f"{prefix}-{name}-{key[:16]}"
        if (folder / UNLEARNING_FILE).is_file():
            log.info("Reusing the unlearned adapter %s", folder)
            out[name] = (folder, unlearning_info(folder))
            continue
        info = unlearn(model, data, run, folder, adapter=target_dir, device=device, dtype=dtype, progress=progress)
        out[name] = (folder, info)
    return out


def cost_summary(info: dict[str, Any], eco_seconds: float | None) -> dict[str, Any]:
    """A weight method's cost, with its wall time as a multiple of ECO's fit (classifier plus strength)."""
    cost = info["cost"]
    return {"seconds": cost["seconds"], "optimizer_steps": cost["optimizer_steps"], "forward_rows": cost["forward_rows"],
            "backward_rows": cost["backward_rows"],
            "seconds_vs_eco_fit": (cost["seconds"] / eco_seconds) if eco_seconds else None,
            "device": info.get("device")}


def eco_cost(summary: dict[str, Any], measured_seconds: float) -> dict[str, Any]:
    """ECO's fit cost: measured now when it was fitted in this run, else what the artifact recorded."""
    from eco_rails.classifier.artifact import read_manifest

    if summary.get("fitted_now"):
        seconds: float | None = measured_seconds
    else:
        manifest = read_manifest(Path(summary["artifact"])) if summary.get("artifact") else None
        fit = (manifest.fit_cost or {}) if manifest else {}
        strength = (manifest.optimization or {}).get("seconds") if manifest else None
        seconds = fit["seconds"] + strength if fit.get("seconds") is not None and strength is not None else None
    opt = summary.get("optimization") or {}
    return {"seconds": seconds, "strength_forward_passes": opt.get("forward_passes"), "fitted_now": bool(summary.get("fitted_now"))}


def weight_engines(model: str, target_dir: Path, data: UnlearnData, settings: UnlearnSettings, methods: tuple[str, ...], *,
                   prefix: str, device: str | None, dtype: str | None,
                   progress: ProgressSink | None = None) -> tuple[dict[str, Any], dict[str, tuple[Path, dict[str, Any]]]]:
    """Engines serving each needed weight method's adapter, and the adapters' folders and records."""
    from eco_rails.engine.generation import get_engine

    names = weight_methods_in(methods)
    if not names:
        return {}, {}
    adapters = unlearned_adapters(model, target_dir, data, settings, names, prefix=prefix, device=device, dtype=dtype,
                                  progress=progress)
    engines = {name: get_engine(model, device=device, dtype=dtype, adapter=folder, merge_adapter=MERGE_ADAPTERS)
               for name, (folder, _) in adapters.items()}
    return engines, adapters


def add_costs(methods: dict[str, dict[str, Any]], adapters: dict[str, tuple[Path, dict[str, Any]]], eco: dict[str, Any]) -> None:
    """Put each method's cost (and MemFlex's localisation) into its report entry, in place."""
    eco_seconds = eco.get("seconds")
    if "eco" in methods:
        methods["eco"]["cost"] = eco
    for name, (folder, info) in adapters.items():
        entry = methods.get(name)
        if entry is None:
            continue
        entry["cost"] = cost_summary(info, eco_seconds)
        entry["adapter"] = str(folder)
        entry["chosen_checkpoint"] = {"step": info["chosen_step"], "of": info["cost"]["optimizer_steps"],
                                      "train_scores": next(c for c in info["checkpoints"] if c["step"] == info["chosen_step"])}
        if info.get("localisation"):
            entry["localisation"] = {k: v for k, v in info["localisation"].items() if k != "selected_tensors"}
    if HYBRID in methods and "memflex" in adapters:
        memflex = cost_summary(adapters["memflex"][1], eco_seconds)
        total = memflex["seconds"] + eco_seconds if eco_seconds else None
        methods[HYBRID]["cost"] = {**memflex, "seconds": total, "seconds_vs_eco_fit": (total / eco_seconds) if total and eco_seconds else None}
