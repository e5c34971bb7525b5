"""The ``vllm`` section of ``eco-rails bench``: the vllm backend against the in-process engine, under concurrency.

For each concurrency level (1, 8, 32 by default) the same requests (half flagged, half clean; every answer
exactly ``new_tokens`` long) go through the vllm backend and through the in-process engine on the same
machine; the section records output tokens/s for the level and each request's latency (p50, p95). Then the
vllm backend answers the same prompts all flagged and all clean, alternately, for the corrupted/clean ratio.
A level's arms alternate round by round (see :mod:`eco_rails.bench.stats`), so drift slows both.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Sequence

from eco_rails.bench.stats import Summary, paired_ratio, rotated, summarize
from eco_rails.errors import EcoRailsError

LEVELS = (1, 8, 32)


async def _wave(engine: Any, prompts: Sequence[str], flags: Sequence[bool], *, concurrency: int,
                new_tokens: int) -> tuple[float, list[float]]:
    """Answer every prompt with at most ``concurrency`` in flight; (output tokens/s, per-request latencies in ms)."""
    from eco_rails.engine.corruption import CorruptionSpec
    from eco_rails.engine.flags import FlagDecision
    from eco_rails.engine.generation import GenerationSettings

    settings = GenerationSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(prompt: str, flagged: bool) -> int:
        async with gate:
            start = time.perf_counter()
            result = await engine.agenerate([{"role": "user", "content": prompt}], settings=settings,
                                            flag=FlagDecision.flag() if flagged else None, corruption=CorruptionSpec())
            latencies.append((time.perf_counter() - start) * 1000.0)
        if result.completion_tokens != new_tokens:
            raise EcoRailsError(f"a benchmark request produced {result.completion_tokens} tokens instead of {new_tokens}; "
                                "cannot compare equal work.")
        return result.completion_tokens

    start = time.perf_counter()
    produced = await asyncio.gather(*(one(p, f) for p, f in zip(prompts, flags)))
    return sum(produced) / (time.perf_counter() - start), latencies


def bench_vllm(remote: Any, local: Any, prompts: Sequence[str], *, levels: Sequence[int] = LEVELS, rounds: int,
               new_tokens: int, requests_per_level: Callable[[int], int] = lambda c: max(8, 2 * c),
               progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, Summary], float]:
    """(measurements, vLLM corrupted/clean tokens/s). ``remote`` is a :class:`~eco_rails.engine.vllm_backend.VllmEngine`,
    ``local`` an :class:`~eco_rails.engine.generation.EcoEngine` of the same model."""
    arms = {"vllm": remote, "local": local}
    out: dict[str, Summary] = {}

    async def run() -> float:
        await _wave(remote, prompts[:2], [True, False], concurrency=2, new_tokens=new_tokens)  # warm-up
        await _wave(local, prompts[:2], [True, False], concurrency=2, new_tokens=new_tokens)
        for level in levels:
            n = requests_per_level(level)
            batch = [prompts[i % len(prompts)] for i in range(n)]
            flags = [i % 2 == 0 for i in range(n)]
            rates: dict[str, list[float]] = {a: [] for a in arms}
            latencies: dict[str, list[float]] = {a: [] for a in arms}
            for r in range(rounds):
                for arm in rotated(list(arms), r):
                    rate, lat = await _wave(arms[arm], batch, flags, concurrency=level, new_tokens=new_tokens)
                    rates[arm].append(rate)
                    latencies[arm].extend(lat)
                progress(1)
            for arm in arms:
                out[f"vllm_section.{arm}.c{level}.tokens_per_s"] = summarize(rates[arm], "tokens/s")
                out[f"vllm_section.{arm}.c{level}.latency_ms"] = summarize(latencies[arm], "ms")
        level = 8
        batch = [prompts[i % len(prompts)] for i in range(requests_per_level(level))]
        corrupted: list[float] = []
        clean: list[float] = []
        for r in range(rounds):
            for arm in rotated(["corrupted", "clean"], r):
                rate, _ = await _wave(remote, batch, [arm == "corrupted"] * len(batch), concurrency=level, new_tokens=new_tokens)
                (corrupted if arm == "corrupted" else clean).append(rate)
        out["vllm_section.vllm.c8.corrupted_tokens_per_s"] = summarize(corrupted, "tokens/s")
        out["vllm_section.vllm.c8.clean_tokens_per_s"] = summarize(clean, "tokens/s")
        return paired_ratio(corrupted, clean)

    ratio = asyncio.run(run())
    return out, ratio
