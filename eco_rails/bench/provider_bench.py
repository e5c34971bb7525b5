"""Provider throughput: clean vs corrupted generation, and the provider vs plain ``model.generate``.

Every arm generates exactly ``new_tokens`` tokens (end-of-sequence is suppressed until then), greedily,
from the same rendered prompt, so tokens/s compares equal work. The corrupted arm flags the whole user
message, which is the most the provider ever corrupts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable, Sequence

from eco_rails.bench.stats import Summary, paired_ratio, rotated, summarize
from eco_rails.errors import EcoRailsError

ARMS = ("clean", "corrupted", "hf_generate")


def bench_provider(engine, prompts: Sequence[str], *, rounds: int, new_tokens: int,
                   progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, Summary], float, float]:
    """(measurements, corrupted/clean tokens/s, provider/HF-generate tokens/s); ratios are medians of paired runs."""
    import torch

    from eco_rails.engine.corruption import CorruptionSpec
    from eco_rails.engine.flags import FlagDecision
    from eco_rails.engine.generation import GenerationSettings

    settings = GenerationSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    corruption = CorruptionSpec()
    on_cuda = engine.device.type == "cuda"
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)

    def run(arm: str, prompt: str) -> tuple[float, int]:
        messages = [{"role": "user", "content": prompt}]
        start = time.perf_counter()
        if arm == "hf_generate":  # what a user writes without eco-rails: apply the chat template, call generate()
            ids = torch.tensor([engine.render(messages).input_ids], device=engine.device)
            out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pad_token_id=engine.pad_token_id,
                                        **settings.hf_kwargs())
            sync()
            produced = out.shape[1] - ids.shape[1]
        else:
            flag = FlagDecision.flag(whole_prompt=True) if arm == "corrupted" else None
            result = engine.generate(messages, flag=flag, corruption=corruption, settings=settings)
            sync()
            produced = result.completion_tokens
        elapsed = time.perf_counter() - start
        if produced != new_tokens:
            raise EcoRailsError(f"benchmark arm {arm!r} produced {produced} tokens instead of {new_tokens}; cannot compare.")
        return elapsed, produced

    for arm in ARMS:  # warm-up
        run(arm, prompts[0])
    rates: dict[str, list[float]] = {a: [] for a in ARMS}
    for r in range(rounds):
        for prompt in prompts:
            for arm in rotated(ARMS, r):
                elapsed, produced = run(arm, prompt)
                rates[arm].append(produced / elapsed)
        progress(1)
    measurements = {f"provider.{arm}.tokens_per_s": summarize(rates[arm], "tokens/s") for arm in ARMS}
    return (measurements, paired_ratio(rates["corrupted"], rates["clean"]), paired_ratio(rates["clean"], rates["hf_generate"]))


_COLD_START = """
import json, os, time
t0 = time.perf_counter()
from eco_rails import GenerationSettings, get_engine
t1 = time.perf_counter()
engine = get_engine({model!r}, device={device!r}, dtype={dtype!r})
t2 = time.perf_counter()
engine.generate([{{"role": "user", "content": "Hello"}}], settings=GenerationSettings(max_new_tokens=1))
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "first_token_s": t3 - t2}}))
"""


def bench_cold_start(model: str, *, device: str, dtype: str | None, repeats: int,
                     progress: Callable[[int], None] = lambda n: None) -> dict[str, Summary]:
    """A fresh Python process: import, load the (already converted and cached) model, produce one token.

    The one-off GGUF conversion is done before timing by the caller (``get_engine`` in this process).
    """
    totals, loads = [], []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NEMO_GUARDRAILS_NO_USAGE_STATS": "1"}
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _COLD_START.format(model=model, device=device, dtype=dtype)],
                              capture_output=True, text=True, env=env, timeout=600)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise EcoRailsError(f"cold-start process failed: {proc.stderr.strip()[-2000:]}")
        parts = json.loads(proc.stdout.strip().splitlines()[-1])
        totals.append(wall)
        loads.append(parts["load_s"] + parts["first_token_s"])
        progress(1)
    return {"provider.cold_start.process_s": summarize(totals, "s"), "provider.cold_start.load_and_first_token_s": summarize(loads, "s")}
