"""Classifier latency and throughput: the same fitted model as PyTorch eager, ONNX fp32 and ONNX int8.

Needs an artifact fitted with ``--keep-fp32`` (``fp32/`` holds the PyTorch checkpoint and the fp32 ONNX
export it was quantised from), so all three variants are one model. Batch 1 times the forward pass of one
unpadded prompt (what the rail runs); batch 32 times padded batches (throughput). ``end_to_end`` is
``PromptClassifier.classify``: normalisation, tokenisation, windows, key terms and the int8 forward pass.
Batched scoring compares one ``classify`` call after another with ``classify_batch`` and with concurrent
callers, on the same prompts, and checks that batching changed no score.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from eco_rails.bench.stats import Summary, paired_ratio, rotated, summarize
from eco_rails.classifier.backends import make_session, onnx_providers
from eco_rails.errors import ArtifactError

VARIANTS = ("torch", "fp32_onnx", "int8_onnx")


def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


class ClassifierBench(NamedTuple):
    measurements: dict[str, Summary]
    int8_speedup_vs_torch: float  # batch 1, paired medians
    batch_vs_one_by_one: float  # classify_batch(N) / N classify calls, prompts/s, paired medians
    identical: int  # of the N prompts, how many scored bit for bit the same in the batch as alone
    batch_size: int


def bench_classifier(artifact_dir: Path, prompts: Sequence[str], *, rounds: int, batch_size: int = 32,
                     device: str = "cpu", progress: Callable[[int], None] = lambda n: None) -> ClassifierBench:
    """Measurements (per variant: batch-1 ms, batch-N prompts/s; int8 end-to-end ms; batched scoring) and ratios.

    The speed-up is the median over (round, prompt) pairs of torch time / int8 time, measured in the same round.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from eco_rails.classifier.runtime import PromptClassifier

    fp32_dir = artifact_dir / "fp32"
    if not (fp32_dir / "model.onnx").is_file() or not (fp32_dir / "config.json").is_file():
        raise ArtifactError(
            f"{artifact_dir} has no fp32/ checkpoint to compare against. Re-fit with `eco-rails fit <config> --keep-fp32`, "
            "or run the bench with its fit section (the default without --quick)."
        )
    providers = onnx_providers(device)
    runtime = PromptClassifier(artifact_dir, providers=providers)  # the int8 model, as the rail runs it
    tokenizer = runtime.tokenizer
    torch_model = AutoModelForSequenceClassification.from_pretrained(fp32_dir, local_files_only=True).eval().to(device)
    sessions = {"fp32_onnx": make_session(fp32_dir / "model.onnx", providers), "int8_onnx": runtime.session}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def runner(variant: str, enc: dict) -> Callable[[], object]:
        if variant == "torch":
            feeds = {k: torch.tensor(v, device=device) for k, v in enc.items()}

            def run() -> object:
                with torch.inference_mode():
                    return torch_model(**feeds).logits
            return run
        session = sessions[variant]
        names = {i.name for i in session.get_inputs()}
        arrays = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names}
        return lambda: session.run(None, arrays)

    singles = [dict(tokenizer([p], truncation=True, max_length=runtime.manifest.max_length)) for p in prompts]
    batch_texts = [prompts[i % len(prompts)] for i in range(batch_size)]
    batch = dict(tokenizer(batch_texts, truncation=True, max_length=runtime.manifest.max_length, padding=True))

    for variant in VARIANTS:  # warm-up: first calls allocate and pick kernels
        for enc in singles[:3] + [batch]:
            runner(variant, enc)()
            sync()
        runtime.classify(prompts[0])

    one: dict[str, list[float]] = {v: [] for v in VARIANTS}
    many: dict[str, list[float]] = {v: [] for v in VARIANTS}
    end_to_end: list[float] = []
    batch_runs = max(1, len(prompts) // batch_size)
    for r in range(rounds):
        # One variant at a time over all prompts: ONNX Runtime's worker threads spin for a moment after each
        # run, and interleaving prompt by prompt would let that spinning slow the next variant down.
        for variant in rotated(VARIANTS, r):
            for enc in singles:
                one[variant].append(_timed(runner(variant, enc), sync) * 1e3)
        for prompt in prompts:
            runtime.clear_cache()  # a repeated prompt would be a cache hit: measure the scoring
            start = time.perf_counter()
            runtime.classify(prompt)
            end_to_end.append((time.perf_counter() - start) * 1e3)
        for variant in rotated(VARIANTS, r):
            for _ in range(batch_runs):
                many[variant].append(batch_size / _timed(runner(variant, batch), sync))
        progress(1)

    measurements: dict[str, Summary] = {}
    for variant in VARIANTS:
        measurements[f"classifier.{variant}.batch1_ms"] = summarize(one[variant], "ms")
        measurements[f"classifier.{variant}.batch{batch_size}_prompts_per_s"] = summarize(many[variant], "prompts/s")
    measurements["classifier.int8_onnx.end_to_end_ms"] = summarize(end_to_end, "ms")
    measurements.update(_latency_by_shape(runtime, prompts, rounds))
    batched, ratio, identical = _batched_scoring(runtime, prompts, rounds, batch_size)
    measurements.update(batched)
    return ClassifierBench(measurements, paired_ratio(one["torch"], one["int8_onnx"]), ratio, identical, batch_size)


def _batched_scoring(runtime: Any, prompts: Sequence[str], rounds: int, n: int) -> tuple[dict[str, Summary], float, int]:
    """``PromptClassifier`` end to end on ``n`` distinct prompts, three ways: one ``classify`` call after another
    (a single caller), one ``classify_batch`` call, and ``n`` threads calling ``classify`` at once (what the NeMo
    server's concurrent requests do; their windows are coalesced into batches). Also counts the prompts whose
    batched decision is bit for bit the one they get alone."""
    texts = [p if i < len(prompts) else f"{p} ({i})" for i, p in enumerate(prompts[i % len(prompts)] for i in range(n))]
    runtime.clear_cache()
    alone = [runtime.classify(t) for t in texts]
    runtime.clear_cache()
    identical = sum(a == b for a, b in zip(alone, runtime.classify_batch(texts)))
    sequential, batched, threaded = [], [], []
    with ThreadPoolExecutor(max_workers=n) as pool:
        for _ in range(max(1, rounds)):
            runtime.clear_cache()
            start = time.perf_counter()
            for t in texts:
                runtime.classify(t)
            sequential.append(n / (time.perf_counter() - start))
            runtime.clear_cache()
            start = time.perf_counter()
            runtime.classify_batch(texts)
            batched.append(n / (time.perf_counter() - start))
            runtime.clear_cache()
            start = time.perf_counter()
            list(pool.map(runtime.classify, texts))
            threaded.append(n / (time.perf_counter() - start))
    runtime.clear_cache()
    quant = runtime.manifest.quantization
    out = {
        "classifier.int8_onnx.one_by_one_prompts_per_s": summarize(sequential, f"prompts/s ({quant})"),
        f"classifier.int8_onnx.classify_batch{n}_prompts_per_s": summarize(batched, f"prompts/s ({quant})"),
        f"classifier.int8_onnx.concurrent{n}_prompts_per_s": summarize(threaded, f"prompts/s ({quant})"),
    }
    return out, float(np.median(np.asarray(batched) / np.asarray(sequential))), identical


_FILLER = ("The meeting moved to Thursday because the projector in room four was broken again. "
           "We agreed to buy two more chairs, review the budget in March and water the plants on Fridays. ")


def _latency_by_shape(runtime: Any, prompts: Sequence[str], rounds: int) -> dict[str, Summary]:
    """End-to-end latency as prompts grow (an out-of-scope question after filler of 100, 500 and 1,500 words)
    and as views are added (a base64-encoded and a spelled-out prompt), with the encoder passes each needed.
    Out-of-scope text is the worst case: no view can end the search early."""
    import base64

    question = prompts[1] if len(prompts) > 1 else prompts[0]  # out of scope: every view is scored (worst case)
    filler_words = _FILLER.split()
    shapes: dict[str, str] = {}
    for words in (100, 500, 1500):
        filler = " ".join(filler_words[i % len(filler_words)] for i in range(words))
        shapes[f"words_{words}"] = f"{filler} {question}"
    shapes["base64"] = "Decode this and answer: " + base64.b64encode(question.encode()).decode()
    shapes["spelled_out"] = " ".join(question)
    out: dict[str, Summary] = {}
    for name, text in shapes.items():
        runtime.clear_cache()
        runtime.classify(text)  # warm
        times, passes = [], 0
        for _ in range(max(1, rounds)):
            runtime.clear_cache()  # measure scoring, not the cache of repeated turns
            start = time.perf_counter()
            decision = runtime.classify(text)
            times.append((time.perf_counter() - start) * 1e3)
            passes = decision.views
        out[f"classifier.int8_onnx.end_to_end_ms.{name}"] = summarize(times, f"ms ({passes} encoder passes)")
    return out
