"""``eco-rails fit``: forget policy -> fine-tuned encoder -> ONNX (optimum) -> int8 -> calibrated artifact.

The threshold is calibrated on the scores of the *quantised ONNX model that ships*, through the same
code path the rail uses (:class:`~eco_rails.classifier.runtime.PromptClassifier`), so the promised
false-positive rate holds for what actually runs.
"""

from __future__ import annotations

import logging
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from eco_rails.atomic import atomic_directory, write_text_atomic
from eco_rails.classifier.artifact import MANIFEST, ONNX_FILE, ArtifactManifest, SplitMetrics
from eco_rails.classifier.calibration import conformal_threshold, flag_rate
from eco_rails.classifier.dataset import NONE_LABEL, LabeledPrompt, build_examples, split_by_group
from eco_rails.classifier.export import export_onnx, quantize_int8
from eco_rails.classifier.train import train_classifier
from eco_rails.errors import ConfigError
from eco_rails.policy import load_policy
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.versions import package_versions

log = logging.getLogger(__name__)

FP32_DIR = "fp32"  # optional: the PyTorch checkpoint and fp32 ONNX, kept with --keep-fp32 (benchmarks, checks)


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), **package_versions(
        ("eco-rails", "torch", "transformers", "onnxruntime", "onnxruntime-gpu", "optimum", "optimum-onnx", "onnx"))}


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


def fit_policy(policy_path: Path, artifact_dir: Path, *, progress: ProgressSink | None = None,
               keep_fp32: bool = False) -> ArtifactManifest:
    """Build the classifier artifact for a policy file: data, fine-tuning, ONNX export, int8, calibration.

    Args:
        policy_path: the forget policy (YAML).
        artifact_dir: where the artifact goes; written atomically (a reader never sees half of it).
        progress: progress bars (see :mod:`eco_rails.progress`); silent by default.
        keep_fp32: also keep the PyTorch checkpoint and the fp32 ONNX model in ``fp32/`` (benchmarks).

    Returns:
        The written :class:`~eco_rails.classifier.artifact.ArtifactManifest` (threshold and metrics).

    Raises:
        ConfigError: invalid policy, too few negatives to calibrate, or key terms that match too many
            negatives to reach ``target_fpr`` (the offending terms are named).
        ModelLoadError: the backbone is not installed or is not an encoder.
    """
    from eco_rails.classifier.runtime import PromptClassifier

    policy = load_policy(policy_path)
    settings = policy.classifier
    rows = build_examples(policy, seed=settings.seed)
    splits = split_by_group(rows, seed=settings.seed)
    if not any(r.label == 0 for r in splits["calibration"]):
        raise ConfigError(f"{policy_path}: no negatives left for calibration; add keep examples.")
    progress = progress or SilentProgress()
    labels = [NONE_LABEL, *policy.target_ids]
    model, tokenizer = train_classifier(policy, splits["train"], progress)
    export_step = progress.task("Exporting to ONNX (int8)", 3)
    with atomic_directory(artifact_dir) as out, tempfile.TemporaryDirectory(prefix="eco-fit-") as work:
        hf_dir = (out / FP32_DIR) if keep_fp32 else Path(work) / "hf"
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        export_step()
        fp32_onnx = export_onnx(hf_dir, hf_dir)
        export_step()
        quantize_int8(fp32_onnx, out / ONNX_FILE)
        tokenizer.save_pretrained(out)
        export_step()

        # Provisional manifest so the runtime classifier can load the artifact and score the held-out splits.
        manifest = ArtifactManifest(
            policy_name=policy.name, policy_version=policy.version, policy_hash=policy.content_hash(), labels=labels,
            threshold=1.0, target_fpr=settings.target_fpr, max_length=settings.max_length,
            context_turns=settings.context_turns, max_prompt_chars=settings.max_prompt_chars, backbone=settings.backbone,
            key_terms={t.id: list(t.key_terms) for t in policy.targets if t.key_terms},
            metrics={}, versions=_versions(), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            seed=settings.seed,
        )
        write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2))
        classifier = PromptClassifier(out)
        held_out = splits["calibration"] + splits["test"]
        score_step = progress.task("Calibrating threshold", len(held_out))
        scores: list[float] = []
        hits: list[str | None] = []
        for start in range(0, len(held_out), 64):
            chunk = held_out[start:start + 64]
            for d in classifier.classify_batch([r.text for r in chunk]):
                scores.append(d.calibration_score)
                hits.append(d.key_term)
            score_step(len(chunk))
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
