"""Knowledge injection: LoRA fine-tuning (peft) of a base model on question-answer pairs.

Both benchmarks measure unlearning on a model that *learned* the data first (the target model) and compare
it with one fine-tuned on everything but the forget part (the retain model). This module makes those
adapters: seeded, cached by a hash of the base model, the data and the settings (a second run with the same
inputs reuses the adapter), written atomically, with a progress bar over the optimiser steps.

The loss covers the answer tokens only, and every example is rendered exactly as the provider renders a
prompt (the model's chat template, or TOFU-less plain ``question\\n\\n`` for KnowUnDo's protocol), so the
adapter is trained on the very token sequences it is later scored and served on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from eco_rails.atomic import file_sha256
from eco_rails.engine.sequences import Example, collate, encode_example, eos_token_id, plain_prompt
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.versions import package_versions

__all__ = ["Example", "InjectionSettings", "encode_example", "eos_token_id", "export_adapter", "inject", "injection_info",
           "plain_prompt", "verify_checksums"]

log = logging.getLogger(__name__)
INJECTION_FILE = "injection.json"


class InjectionSettings(BaseModel):
    """LoRA fine-tuning settings (KnowUnDo's paper: r 8, alpha 16, all linear layers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lora_r: int = Field(default=16, ge=1, le=512)
    lora_alpha: int = Field(default=32, ge=1)
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = Field(default=1e-3, gt=0, lt=1)
    epochs: int = Field(default=5, ge=1, le=100)
    batch_size: int = Field(default=8, ge=1, le=512)
    warmup_steps: int = Field(default=10, ge=0)
    max_length: int = Field(default=256, ge=16)
    seed: int = 0
    format: Literal["chat", "plain"] = Field(
        default="chat", description="chat: the model's chat template (TOFU); plain: 'question\\n\\nanswer' (KnowUnDo)")


def injection_key(model_dir: Path, examples: Sequence[Example], settings: InjectionSettings) -> str:
    """Hash of what determines an adapter: the base weights' identity, the data, the settings, the libraries."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(model_dir)):
        path = model_dir / name
        if path.is_file():
            stat = path.stat()
            digest.update(f"{name}:{stat.st_size}".encode())
            if path.suffix in {".json", ".txt"} or stat.st_size < 1_000_000:
                digest.update(path.read_bytes())
    digest.update(json.dumps([e.model_dump() for e in examples], ensure_ascii=False).encode())
    digest.update(settings.model_dump_json().encode())
    digest.update(json.dumps(package_versions(("peft", "transformers"))).encode())
    return digest.hexdigest()


def _batches(encoded: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length (less padding on CPU), in a seeded random order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]) + len(encoded[i][1]), rng.random()))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def inject(
    model: str | Path,
    examples: Sequence[Example],
    settings: InjectionSettings,
    *,
    name: str,
    cache_dir: Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: ProgressSink | None = None,
) -> Path:
    """Fine-tune a LoRA adapter on ``examples`` (or reuse the cached one); returns the adapter directory.

    Args:
        model: the base model (``smollm2-135m`` or a local HF directory).
        examples: question-answer pairs to learn.
        settings: LoRA and optimiser settings.
        name: a readable prefix for the cache folder (``tofu-target``).
        cache_dir: where adapters live (default ``<eco-rails cache>/adapters``).
        device, dtype: where to train (default: CUDA with bf16 weights if present, else CPU fp32).
        progress: a progress bar over optimiser steps.

    The folder holds the PEFT adapter (``adapter_config.json``, ``adapter_model.safetensors``) and
    ``injection.json`` (settings, data size, per-epoch loss, seconds, library versions).
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from eco_rails.engine.model_store import cache_root, choose_placement, load_model_and_tokenizer, resolve_model_dir

    if not examples:
        raise ValueError("knowledge injection needs at least one example")
    model_dir = resolve_model_dir(model)
    key = injection_key(model_dir, examples, settings)
    root = cache_dir or (cache_root() / "adapters")
    target = root / f"{name}-{key[:16]}"
    if (target / INJECTION_FILE).is_file():
        log.info("Reusing the cached adapter %s", target)
        return target
    placement = choose_placement(device, dtype)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    base, tokenizer = load_model_and_tokenizer(model_dir, placement)
    eos = eos_token_id(base, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    encoded = [encode_example(tokenizer, e.question, e.answer, settings.format, eos) for e in examples]
    lora = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0, bias="none",
                      target_modules=list(settings.target_modules) if isinstance(settings.target_modules, tuple) else settings.target_modules,
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, lora)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    for p in params:  # LoRA weights train in fp32 even on a bf16 base (stable updates)
        p.data = p.data.float()
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(encoded) / settings.batch_size)
    total = steps_per_epoch * settings.epochs

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to zero
        if step < settings.warmup_steps:
            return (step + 1) / (settings.warmup_steps + 1)
        return max(0.0, (total - step) / max(1, total - settings.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    advance = (progress or SilentProgress()).task(f"Injecting {name}", total)
    losses: list[float] = []
    started = time.perf_counter()
    peft_model.train()
    for epoch in range(settings.epochs):
        epoch_loss, seen = 0.0, 0
        for batch in _batches(encoded, settings.batch_size, rng):
            ids, labels, mask = collate([encoded[i] for i in batch], pad, settings.max_length)
            ids, labels, mask = ids.to(placement.device), labels.to(placement.device), mask.to(placement.device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=placement.device.startswith("cuda")):
                loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += loss.item() * len(batch)
            seen += len(batch)
            advance(1, description=f"Injecting {name} (epoch {epoch + 1}, loss {loss.item():.2f})")
        losses.append(epoch_loss / max(seen, 1))
    seconds = time.perf_counter() - started
    peft_model.eval()
    from eco_rails.atomic import atomic_directory

    info = {"name": name, "key": key, "base_model": str(model), "examples": len(examples),
            "settings": settings.model_dump(), "epoch_loss": losses, "seconds": round(seconds, 1),
            "device": placement.device, "versions": package_versions(("torch", "transformers", "peft"))}
    with atomic_directory(target) as tmp:  # a reader never sees half an adapter
        peft_model.save_pretrained(str(tmp))
        (tmp / INJECTION_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    log.info("Injected %s in %.0f s (final epoch loss %.3f) -> %s", name, seconds, losses[-1], target)
    return target


def injection_info(adapter_dir: Path) -> dict[str, Any]:
    """The ``injection.json`` record of an adapter made by :func:`inject`."""
    return json.loads((adapter_dir / INJECTION_FILE).read_text(encoding="utf-8"))


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
CHECKSUMS = "SHA256SUMS"


def export_adapter(adapter_dir: Path, out: Path, base_model: str, *, half: bool = True) -> Path:
    """Copy an injected adapter to ``out`` for a rails config: the adapter files, ``injection.json``, and a
    ``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` checks it). ``base_model_name_or_path`` becomes the portable
    model reference instead of this machine's cache path. ``half`` stores the weights in float16 (half the
    size, so a committed adapter stays small; peft loads them back into the model's dtype)."""
    from safetensors.torch import load_file, save_file

    from eco_rails.atomic import atomic_directory

    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    with atomic_directory(out) as tmp:
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if half:
            import torch

            tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(adapter_dir / "adapter_model.safetensors").items()}
            save_file(tensors, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
            os.chmod(tmp / "adapter_model.safetensors", 0o644)  # save_file writes owner-only
        else:
            shutil.copyfile(adapter_dir / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
        shutil.copyfile(adapter_dir / INJECTION_FILE, tmp / INJECTION_FILE)
        sums = "".join(f"{file_sha256(tmp / name)}  {name}\n" for name in ADAPTER_FILES)
        (tmp / CHECKSUMS).write_text(sums, encoding="utf-8")
    return out


def verify_checksums(folder: Path) -> list[str]:
    """Files in ``folder`` whose SHA-256 differs from its ``SHA256SUMS`` (empty: all match)."""
    bad = []
    for line in (folder / CHECKSUMS).read_text(encoding="utf-8").splitlines():
        expected, _, name = line.partition("  ")
        if not (folder / name).is_file() or file_sha256(folder / name) != expected:
            bad.append(name)
    return bad
