"""The shared unlearning loop: load base + LoRA adapter, (MemFlex) localise, train, choose a checkpoint on
training rows, write a PEFT adapter atomically.

Budget rules are the same for every method (KnowUnDo's code): an interleaved list of forget and retention
rows shuffled with seed 42, gradient accumulation 16 (micro-batches only save time: each row's loss is its
own mean token NLL, so the sum over a group does not depend on how the group is split), 2 epochs, cosine
schedule with 3% warm-up, max length 256. Checkpoints are scored on a sample of the *training* rows
(teacher-forced token accuracy, KnowUnDo's success measure) and the best is kept; evaluation questions
are never seen here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from eco_rails.engine.sequences import collate, encode_example, eos_token_id
from eco_rails.errors import EcoRailsError
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.unlearn.data import UnlearnData
from eco_rails.unlearn.localize import randomise_answer, select_tensors, tensor_stats, thresholds_from_quantiles
from eco_rails.unlearn.losses import sequence_nll, sequence_token_counts
from eco_rails.unlearn.methods import RowBatch, get_method
from eco_rails.versions import package_versions

__all__ = ["UNLEARNING_FILE", "UnlearnError", "UnlearnSettings", "unlearn", "unlearn_key", "unlearning_info"]

log = logging.getLogger(__name__)
UNLEARNING_FILE = "unlearning.json"


class UnlearnError(EcoRailsError, ValueError):
    """Unlearning cannot run on this model or with these settings; the message says why and what to change."""


class UnlearnSettings(BaseModel):
    """One unlearning run. ``None`` means the method's default (see :mod:`eco_rails.unlearn.methods`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "memflex"
    epochs: int = Field(default=2, ge=1, le=50)
    learning_rate: float | None = Field(default=None, gt=0, lt=1)
    grad_accum: int = Field(default=16, ge=1, description="rows per optimiser step")
    micro_batch: int = Field(default=8, ge=1, description="rows per forward pass (memory only; same result)")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    max_length: int = Field(default=256, ge=16)
    seed: int = 42
    format: Literal["chat", "plain"] = "chat"
    beta: float = Field(default=0.1, gt=0, description="NPO temperature")
    forget_weight: float | None = None
    retain_weight: float | None = None
    # MemFlex localisation
    mu: float | None = Field(default=None, description="cosine threshold; None: the cosine_quantile of this model's cosines")
    sigma: float | None = Field(default=None, ge=0, description="magnitude threshold; None: the magnitude_quantile")
    cosine_quantile: float = Field(default=0.5, ge=0, le=1)
    magnitude_quantile: float = Field(default=0.5, ge=0, le=1)
    localisation_copies: int = Field(default=3, ge=1, le=10, description="randomised copies per row")
    # checkpoint choice on training rows
    checks_per_epoch: int = Field(default=2, ge=1, le=20)
    check_rows: int = Field(default=64, ge=1, description="forget and retention training rows scored per check")
    new_lora_r: int = Field(default=8, ge=1, description="LoRA rank when no adapter is given (a fresh adapter to unlearn into)")


@dataclass
class Cost:
    """What a run spent, in row passes (one row through the model once)."""

    forward_rows: int = 0
    backward_rows: int = 0
    optimizer_steps: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def unlearn_key(model_dir: Path, adapter: Path | None, data: UnlearnData, settings: UnlearnSettings) -> str:
    """Hash of what determines the result: model and adapter files, data, settings, library versions."""
    digest = hashlib.sha256()
    for folder in (model_dir, adapter):
        if folder is None:
            continue
        for name in sorted(os.listdir(folder)):
            path = Path(folder) / name
            if path.is_file():
                stat = path.stat()
                digest.update(f"{name}:{stat.st_size}".encode())
                if stat.st_size < 50_000_000:
                    digest.update(path.read_bytes())
    digest.update(json.dumps([[e.model_dump() for e in data.forget], [e.model_dump() for e in data.retain]]).encode())
    digest.update(settings.model_dump_json().encode())
    digest.update(json.dumps(package_versions(("peft", "transformers", "torch"))).encode())
    return digest.hexdigest()


def unlearning_info(adapter_dir: Path) -> dict[str, Any]:
    """The ``unlearning.json`` record written next to an unlearned adapter."""
    return json.loads((Path(adapter_dir) / UNLEARNING_FILE).read_text(encoding="utf-8"))


def _trainable_lora(base: Any, adapter: Path | None, settings: UnlearnSettings, model_name: str = "the model") -> Any:
    """Base + the adapter with its LoRA tensors trainable (or a fresh LoRA when no adapter is given).

    ``model_name`` is how the base model is named in errors (the user's ``--model``)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter is not None:
        kind = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type")
        if kind != "LORA":
            raise UnlearnError(f"{adapter} is a {kind} adapter and has no LoRA tensors; eco-rails unlearn edits LoRA adapters only "
                               "(adapter_config.json: peft_type LORA). Fine-tune a LoRA adapter, or leave --adapter out to "
                               "unlearn into a fresh one.")
        try:
            model = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
        except Exception as exc:
            raise UnlearnError(f"Could not load the adapter {adapter} for training: {exc}. Check that it was made for this "
                               "base model (adapter_config.json: base_model_name_or_path).") from exc
    else:
        try:
            model = get_peft_model(base, LoraConfig(r=settings.new_lora_r, lora_alpha=2 * settings.new_lora_r,
                                                    target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM"))
        except ValueError as exc:
            raise UnlearnError(f"{model_name} has no layers LoRA can adapt ({exc}); unlearning edits LoRA tensors, so --model "
                               "must be a model with linear layers (a transformer causal LM).") from exc
    names = [n for n, _ in model.named_parameters() if "lora_" in n]
    if not names:
        raise UnlearnError(f"{adapter or 'the new adapter'} has no LoRA tensors; eco-rails unlearn edits LoRA adapters only "
                           "(adapter_config.json: peft_type LORA).")
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name
        if p.requires_grad:
            p.data = p.data.float()  # LoRA tensors train in fp32 even on a bf16 base
    return model


def _forward(model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad: int, settings: UnlearnSettings,
             device: str) -> tuple[Any, Any]:
    """(logits, labels) of a right-padded micro-batch, with gradients unless the caller disabled them."""
    import torch

    ids, labels, mask = collate(encoded, pad, settings.max_length)
    ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
        logits = model(input_ids=ids, attention_mask=mask).logits
    return logits, labels


def _rows_nll(model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad: int, settings: UnlearnSettings,
              device: str) -> tuple[Any, Any]:
    """(mean, summed) answer-token NLL per row, from one cross-entropy over the vocabulary."""
    logits, labels = _forward(model, encoded, pad, settings, device)
    total = sequence_nll(logits, labels, reduction="sum")
    return total / sequence_token_counts(labels).clamp(min=1), total


def _token_accuracy(model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad: int, settings: UnlearnSettings,
                    device: str, cost: Cost) -> float:
    """Teacher-forced token accuracy in percent (KnowUnDo's success measure) on training rows."""
    import torch

    if not encoded:
        return float("nan")
    hits = total = 0
    model.eval()
    with torch.no_grad():
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
        for start in range(0, len(order), 16):
            chunk = [encoded[i] for i in order[start:start + 16]]
            logits, labels = _forward(model, chunk, pad, settings, device)
            pred, gold = logits[:, :-1].argmax(-1), labels[:, 1:]
            scored = gold != -100
            hits += int(((pred == gold) & scored).sum())
            total += int(scored.sum())
            cost.forward_rows += len(chunk)
    return 100.0 * hits / max(total, 1)


def _localise(model: Any, forget: list, retain: list, vocab: int, pad: int, settings: UnlearnSettings, device: str,
              cost: Cost, progress: ProgressSink) -> tuple[dict[str, Any], list[str]]:
    """MemFlex steps 2-4: averaged randomised-answer gradients, per-tensor statistics, selection."""
    import torch

    rng = random.Random(settings.seed)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    model.eval()  # the recipe's eval mode: no dropout in the gradients
    grads: dict[str, dict[str, Any]] = {}
    advance = progress.task("Localising (randomised-answer gradients)", (len(forget) + len(retain)) * settings.localisation_copies)
    for kind, rows in (("unlearn", forget), ("retention", retain)):
        copies = [(p, randomise_answer(a, vocab, rng)) for p, a in rows for _ in range(settings.localisation_copies)]
        for p in params.values():
            p.grad = None
        for start in range(0, len(copies), settings.micro_batch):
            chunk = copies[start:start + settings.micro_batch]
            nll, _ = _rows_nll(model, chunk, pad, settings, device)
            (nll.sum() / len(copies)).backward()  # gradient of the mean over copies of each copy's mean NLL
            cost.forward_rows += len(chunk)
            cost.backward_rows += len(chunk)
            advance(len(chunk))
        grads[kind] = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for n, p in params.items()}
    for p in params.values():
        p.grad = None
    stats = tensor_stats(grads["unlearn"], grads["retention"])
    mu, sigma = thresholds_from_quantiles(stats, settings.cosine_quantile, settings.magnitude_quantile)
    mu = settings.mu if settings.mu is not None else mu
    sigma = settings.sigma if settings.sigma is not None else sigma
    selected = select_tensors(stats, mu, sigma)
    if not selected:
        raise UnlearnError(f"No LoRA tensor has cosine < mu={mu:.4g} and magnitude > sigma={sigma:.3g}, so MemFlex would train "
                           "nothing; raise --mu or lower --sigma (or leave both unset to use quantiles of this model's statistics).")
    info = {"mu": mu, "sigma": sigma, "tensors": len(stats), "selected": len(selected),
            "selected_fraction": len(selected) / len(stats),
            "selected_parameter_fraction": sum(s.numel for s in stats if s.name in set(selected)) / max(1, sum(s.numel for s in stats)),
            "cosine": {"min": min(s.cosine for s in stats), "max": max(s.cosine for s in stats)},
            "magnitude": {"min": min(s.magnitude for s in stats), "max": max(s.magnitude for s in stats)},
            "selected_tensors": selected}
    return info, selected


def unlearn(
    model: str | Path,
    data: UnlearnData,
    settings: UnlearnSettings,
    out: Path,
    *,
    adapter: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: ProgressSink | None = None,
) -> dict[str, Any]:
    """Unlearn ``data.forget`` from ``model`` (+ ``adapter``) and write the result to ``out`` as a PEFT adapter.

    Returns the ``unlearning.json`` record (method, settings, localisation, checkpoint scores, cost). ``out``
    is replaced in one rename when everything is written, so an interrupted run leaves the old folder (or
    none), never half an adapter.
    """
    import torch

    from eco_rails.atomic import atomic_directory
    from eco_rails.engine.model_store import choose_placement, load_model_and_tokenizer, resolve_adapter_dir, resolve_model_dir

    method = get_method(settings.method)
    data.check(method.name, method.needs_retain)
    progress = progress or SilentProgress()
    started = time.perf_counter()
    cost = Cost()
    model_dir = resolve_model_dir(model)
    adapter_dir = resolve_adapter_dir(adapter) if adapter is not None else None
    placement = choose_placement(device, dtype)
    device_name = placement.device
    torch.manual_seed(settings.seed)
    base, tokenizer = load_model_and_tokenizer(model_dir, placement)
    peft_model = _trainable_lora(base, adapter_dir, settings, model_name=str(model))
    eos = eos_token_id(base, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    forget = [encode_example(tokenizer, e.question, e.answer, settings.format, eos) for e in data.forget]
    retain = [encode_example(tokenizer, e.question, e.answer, settings.format, eos) for e in data.retain]
    lora = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}

    localisation = None
    t0 = time.perf_counter()
    if method.localised:
        localisation, selected = _localise(peft_model, forget, retain, len(tokenizer), pad, settings, device_name, cost, progress)
        chosen = set(selected)
        for name, p in lora.items():
            p.requires_grad = name in chosen
    cost.phases["localisation"] = time.perf_counter() - t0
    trainable = {n: p for n, p in lora.items() if p.requires_grad}

    rng = random.Random(settings.seed)
    check_forget = rng.sample(forget, min(settings.check_rows, len(forget)))
    check_retain = rng.sample(retain, min(settings.check_rows, len(retain)))

    reference = None
    if method.npo:  # the model before unlearning is NPO's reference
        reference = torch.zeros(len(forget))
        with torch.no_grad():
            peft_model.eval()
            for start in range(0, len(forget), settings.micro_batch):
                _, nll_sum = _rows_nll(peft_model, forget[start:start + settings.micro_batch], pad, settings, device_name)
                reference[start:start + len(nll_sum)] = nll_sum.float().cpu()
                cost.forward_rows += len(nll_sum)

    rows = [(i, True) for i in range(len(forget))] + ([(j, False) for j in range(len(retain))] if method.trains_on_retain else [])
    steps_per_epoch = math.ceil(len(rows) / settings.grad_accum)
    total_steps = steps_per_epoch * settings.epochs
    warmup = math.ceil(settings.warmup_ratio * total_steps)
    lr = settings.learning_rate or method.learning_rate
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.0)

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to zero
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress_frac = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress_frac))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    check_every = max(1, steps_per_epoch // settings.checks_per_epoch)
    check_steps = {s for s in range(check_every, total_steps + 1, check_every)} | {total_steps}

    def score_checkpoint(step: int) -> dict[str, Any]:
        f = _token_accuracy(peft_model, check_forget, pad, settings, device_name, cost)
        r = _token_accuracy(peft_model, check_retain, pad, settings, device_name, cost) if check_retain else float("nan")
        unlearn_success = 100.0 - f
        score = (unlearn_success + r) / 2 if check_retain else unlearn_success
        return {"step": step, "train_forget_accuracy": f, "train_retain_accuracy": r, "score": score}

    t0 = time.perf_counter()
    checks = [score_checkpoint(0)]
    best: tuple[float, int, dict[str, Any]] | None = None
    advance = progress.task(f"Unlearning with {method.name}", total_steps)
    step = 0
    losses: list[float] = []
    for epoch in range(settings.epochs):
        order = list(rows)
        random.Random(settings.seed + epoch).shuffle(order)
        for g in range(0, len(order), settings.grad_accum):
            group = order[g:g + settings.grad_accum]
            group.sort(key=lambda r: len((forget if r[1] else retain)[r[0]][0]) + len((forget if r[1] else retain)[r[0]][1]))
            peft_model.train()
            step_loss = 0.0
            for m in range(0, len(group), settings.micro_batch):
                micro = group[m:m + settings.micro_batch]
                encoded = [(forget if is_f else retain)[i] for i, is_f in micro]
                nll, nll_sum = _rows_nll(peft_model, encoded, pad, settings, device_name)
                is_forget = torch.tensor([is_f for _, is_f in micro], device=nll.device)
                ref = None
                if reference is not None:
                    ref = torch.tensor([float(reference[i]) if is_f else 0.0 for i, is_f in micro], device=nll.device)
                per_row = method.row_losses(RowBatch(nll=nll, nll_sum=nll_sum, reference_nll_sum=ref, is_forget=is_forget),
                                            beta=settings.beta, forget_weight=settings.forget_weight, retain_weight=settings.retain_weight)
                loss = per_row.sum() / len(group)
                loss.backward()
                step_loss += float(loss.detach())
                cost.forward_rows += len(micro)
                cost.backward_rows += len(micro)
            torch.nn.utils.clip_grad_norm_(list(trainable.values()), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            cost.optimizer_steps += 1
            losses.append(step_loss)
            advance(1, description=f"Unlearning with {method.name} (epoch {epoch + 1}, loss {step_loss:.3f})")
            if step in check_steps:
                check = score_checkpoint(step)
                checks.append(check)
                if best is None or check["score"] > best[0]:
                    best = (check["score"], step, {n: p.detach().clone() for n, p in trainable.items()})
    cost.phases["training"] = time.perf_counter() - t0
    assert best is not None  # total_steps >= 1, and the last step is always checked
    with torch.no_grad():
        for name, value in best[2].items():
            trainable[name].copy_(value)
    peft_model.eval()
    cost.seconds = time.perf_counter() - started
    info = {
        "method": method.name, "summary": method.summary, "base_model": str(model),
        "adapter": str(adapter_dir) if adapter_dir else None, "format": settings.format,
        "settings": {**settings.model_dump(), "learning_rate": lr}, "rows": {"forget": len(forget), "retain": len(retain)},
        "localisation": localisation,
        "trainable_tensors": len(trainable), "lora_tensors": len(lora),
        "checkpoints": checks, "chosen_step": best[1], "loss": losses,
        "cost": {"seconds": round(cost.seconds, 1), "optimizer_steps": cost.optimizer_steps, "forward_rows": cost.forward_rows,
                 "backward_rows": cost.backward_rows, "phases": {k: round(v, 1) for k, v in cost.phases.items()}},
        "device": device_name, "versions": package_versions(("torch", "transformers", "peft")),
    }
    with atomic_directory(Path(out)) as tmp:  # a reader never sees half an adapter
        peft_model.save_pretrained(str(tmp))
        (tmp / UNLEARNING_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    log.info("Unlearned with %s in %.0f s (checkpoint at step %d of %d) -> %s", method.name, cost.seconds, best[1], total_steps, out)
    return info
