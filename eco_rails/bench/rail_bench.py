"""Rail overhead: NeMo ``LLMRails`` wall time per request with the ECO input rail vs the same config without it.

Both configs load from the same folder (same model, same parameters); the second has the ``eco`` flows
removed from ``rails.input.flows``. Every answer is forced to exactly ``new_tokens`` tokens so the two
sides do the same generation work, and requests alternate between the two, so the overhead is the
median of paired request-time ratios minus one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from eco_rails.bench.stats import Summary, paired_ratio, rotated, summarize
from eco_rails.errors import ConfigError


def _load(config_dir: Path, new_tokens: int, with_rail: bool):
    from nemoguardrails import RailsConfig

    config = RailsConfig.from_path(str(config_dir))
    if str(getattr(config, "colang_version", "1.0")).startswith("2"):
        raise ConfigError(f"{config_dir} is a Colang 2 config; the rail-overhead benchmark removes the rail from "
                          "rails.input.flows, which only Colang 1 configs use. Benchmark rails_configs/harry_potter.")
    rail_flows = [f for f in config.rails.input.flows if f.startswith("eco ")]
    if not rail_flows:
        raise ConfigError(f"{config_dir}/config.yml has no `eco check input` in rails.input.flows: nothing to compare.")
    if not with_rail:
        config.rails.input.flows = [f for f in config.rails.input.flows if f not in rail_flows]
    for model in config.models:
        if model.type == "main":
            if model.engine != "eco":
                raise ConfigError(f"{config_dir}: the main model's engine is {model.engine!r}; the benchmark needs engine: eco.")
            # equal-length answers on both sides (end-of-sequence suppressed until new_tokens)
            model.parameters = {**(model.parameters or {}), "max_new_tokens": new_tokens, "min_new_tokens": new_tokens,
                                "temperature": 0}
    return config


async def bench_rail(config_dir: Path, prompts: Sequence[str], *, rounds: int, new_tokens: int,
                     progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, Summary], float, int]:
    """(measurements, overhead fraction, how many of the prompts the rail flagged)."""
    from nemoguardrails import LLMRails

    import eco_rails
    from eco_rails.classifier.runtime import PromptClassifier

    eco_rails.register_nemo_provider()
    rails = {"with_rail": LLMRails(_load(config_dir, new_tokens, True)),
             "without_rail": LLMRails(_load(config_dir, new_tokens, False))}
    flagged = sum(d.flagged for d in PromptClassifier.from_config(config_dir).classify_batch(list(prompts)))

    async def request(side: str, prompt: str) -> float:
        start = time.perf_counter()
        await rails[side].generate_async(messages=[{"role": "user", "content": prompt}])
        return (time.perf_counter() - start) * 1e3

    for side in rails:  # warm-up: loads the model, the classifier and the flows
        await request(side, prompts[0])
    times: dict[str, list[float]] = {side: [] for side in rails}
    for r in range(rounds):
        for prompt in prompts:
            for side in rotated(list(rails), r):
                times[side].append(await request(side, prompt))
        progress(1)
    measurements = {f"rail.{side}.request_ms": summarize(times[side], "ms") for side in rails}
    return measurements, paired_ratio(times["with_rail"], times["without_rail"]) - 1.0, flagged
