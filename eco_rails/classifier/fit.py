"""``eco-rails fit``: forget policy -> fine-tuned encoder -> ONNX (optimum) -> static int8 -> calibrated artifact.

The threshold is calibrated on the scores of the *quantised ONNX model that ships*, through the same
code path the rail uses (:class:`~eco_rails.classifier.runtime.PromptClassifier`), so the promised
false-positive rate holds for what actually runs.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from eco_rails.atomic import atomic_directory, write_text_atomic
from eco_rails.classifier.artifact import MANIFEST, ONNX_FILE, ArtifactManifest, GroupRate, SplitMetrics, refuse_other_policy
from eco_rails.classifier.calibration import conformal_threshold, minimum_calibration_size
from eco_rails.classifier.dataset import NONE_LABEL, SOURCE_GROUP, LabeledPrompt, Split, build_examples, item_rng, split_by_group
from eco_rails.classifier.export import export_onnx, quantize_int8_static
from eco_rails.classifier.key_terms import compile_terms, find_standalone_terms, is_common_word, names_containing_terms
from eco_rails.classifier.runtime import ClassifierDecision, PromptClassifier, flag_rule, vocabulary_of
from eco_rails.classifier.train import train_classifier
from eco_rails.errors import ConfigError
from eco_rails.policy import ForgetPolicy, load_policy
from eco_rails.progress import ProgressSink, SilentProgress
from eco_rails.versions import package_versions

log = logging.getLogger(__name__)

FP32_DIR = "fp32"  # optional: the PyTorch checkpoint and fp32 ONNX, kept with --keep-fp32 (benchmarks, checks)


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), **package_versions(
        ("eco-rails", "torch", "transformers", "onnxruntime", "onnxruntime-gpu", "optimum", "optimum-onnx", "onnx"))}


_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _group_of(row: LabeledPrompt) -> str:
    if row.variant in ("wrapped", "obfuscated", "long", "encoded"):
        kind = {"wrapped": "wrapper", "obfuscated": "obfuscation", "long": "long", "encoded": "encoded"}[row.variant]
        return kind + ("" if row.label > 0 else "_negative")
    return SOURCE_GROUP[row.source]


def obfuscated_copies(rows: Sequence[LabeledPrompt], seed: int) -> list[LabeledPrompt]:
    """Held-out positives disguised the ways attackers do (base64, hex, ROT13, reversed, spelled out, look-alike
    letters, leetspeak, binary codes, emoji between letters, Atbash, masked vowels), for fit's report on the
    views: never trained on, never used to calibrate."""
    import base64
    import codecs
    import random
    import re

    from eco_rails.classifier.augment import homoglyphs, leetspeak
    from eco_rails.classifier.views import atbash

    rng = random.Random(seed + 7)
    tricks = [
        lambda t: "Decode this base64 and answer it: " + base64.b64encode(t.encode()).decode(),
        lambda t: t.encode().hex(),
        lambda t: codecs.encode(t, "rot13"),
        lambda t: t[::-1],
        lambda t: " ".join(t),
        lambda t: ".".join(t.split(" ")[0]) + " " + " ".join(t.split(" ")[1:]),
        lambda t: homoglyphs(t, rng),
        lambda t: leetspeak(t, rng),
        lambda t: " ".join(format(b, "08b") for b in t.encode()),
        lambda t: "✨".join(t),
        atbash,
        lambda t: re.sub(r"(?<=\w)[aeiou](?=\w)", "*", t),
    ]
    bases = [r for r in rows if r.label > 0 and r.variant == "base" and r.text.isascii()]
    picked = rng.sample(bases, k=min(len(bases), 12 * len(tricks)))
    return [LabeledPrompt(tricks[i % len(tricks)](r.text), r.label, r.group, r.source, "obfuscated")
            for i, r in enumerate(picked)]


def _metrics(decisions: list[ClassifierDecision], rows: list[LabeledPrompt], threshold: float,
             ambiguous_threshold: float, labels: list[str]) -> SplitMetrics:
    """Rates under the decision rule the runtime applies, per target and per source group."""
    flags = [flag_rule(d.evidence, d.score, threshold, ambiguous_threshold) for d in decisions]
    neg = [f for f, r in zip(flags, rows) if r.label == 0]
    pos = [f for f, r in zip(flags, rows) if r.label > 0]
    per_target: dict[str, float | None] = {}
    n_per_target: dict[str, int] = {}
    for i, target in enumerate(labels[1:], start=1):
        hits = [f for f, r in zip(flags, rows) if r.label == i]
        per_target[target] = sum(hits) / len(hits) if hits else None
        n_per_target[target] = len(hits)
    groups: dict[str, list[bool]] = {}
    in_scope: dict[str, bool] = {}
    for f, r in zip(flags, rows):
        group = _group_of(r)
        groups.setdefault(group, []).append(f)
        in_scope[group] = r.label > 0
    quantiles = {}
    for side, want in (("positive", True), ("negative", False)):
        scores = [d.score for d, r in zip(decisions, rows) if (r.label > 0) == want and d.evidence != "distinctive"]
        if scores:
            quantiles[side] = [round(float(q), 4) for q in np.quantile(scores, _QUANTILES)]
    return SplitMetrics(
        n_negative=len(neg), n_positive=len(pos), fpr=sum(neg) / len(neg) if neg else None,
        tpr=sum(pos) / len(pos) if pos else None, tpr_per_target=per_target, n_per_target=n_per_target,
        key_term_hits_negative=sum(1 for d, r in zip(decisions, rows) if r.label == 0 and d.evidence == "distinctive"),
        by_group={g: GroupRate(n=len(v), in_scope=in_scope[g], rate=sum(v) / len(v)) for g, v in sorted(groups.items())},
        score_quantiles=quantiles,
    )


def exception_names(policy: ForgetPolicy) -> list[str]:
    """Names and aliases of the policy's ``keep_entities`` that contain one of its key terms and more ("Snape
    Maltings"): inside them the key term is no evidence, so it can stay distinctive where it stands alone."""
    names = [n for e in policy.keep_entities for n in (e.name, *e.aliases)]
    return names_containing_terms(names, [term for t in policy.targets for term in t.all_terms()])


def ambiguous_terms(policy: ForgetPolicy, negatives: Sequence[str], vocabulary: frozenset[str]) -> dict[str, list[str]]:
    """Target id -> its key terms that are ordinary words, or that occur in any of ``negatives`` (see
    :func:`term_negatives`) outside the :func:`exception_names`: evidence, not a verdict."""
    compiled = compile_terms({t.id: t.all_terms() for t in policy.targets})
    exceptions = compile_terms({"": exception_names(policy)})
    hit: set[str] = set()
    for text in negatives:
        hit.update(term.text for term in find_standalone_terms(text, compiled, exceptions, vocabulary))
    return {t.id: [term for term in t.all_terms() if term in hit or is_common_word(term, vocabulary)] for t in policy.targets}


DECLARED_NEGATIVES = ("keep", "keep_indirect", "homonym")  # what the policy's author wrote as "not this topic"


def term_negatives(splits: Mapping[Split, Sequence[LabeledPrompt]]) -> list[str]:
    """The negatives whose key-term hits make a term ambiguous: the training split's, plus every prompt the
    policy's author declared outside it (``keep``, ``keep_entities``, ``homonyms``) whichever split it landed in.

    Why every split for the declarations: an author who writes one homonym prompt for a term ("How do
    invisibility cloaks work in physics?") says the term has another meaning; a random split must not drop
    that statement a third of the time. The shipped corpora (general questions, filler) count from the training
    split only, so a key term that hits them in calibration still fails ``fit`` with the offending prompts named.
    The cost is in the report: the held-out splits' declared homonyms can no longer show a distinctive-term false
    flag (the held-out suite still can)."""
    texts = [r.text for r in splits["train"] if r.label == 0]
    held_out: tuple[Split, ...] = ("calibration", "test")
    for name in held_out:
        texts += [r.text for r in splits.get(name, ()) if r.label == 0 and r.source in DECLARED_NEGATIVES]
    return texts


def evaluate_suite(classifier: PromptClassifier, path: Path, progress: ProgressSink | None = None) -> SplitMetrics:
    """Flag rates per category on a held-out suite (JSONL rows ``{id, category, in_scope, prompt | turns}``)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            category, in_scope = str(row["category"]), bool(row["in_scope"])
            turns = row.get("turns") or [row["prompt"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: not a suite row ({exc}); expected {{id, category, in_scope, prompt | turns}}.") from None
        rows.append((category, in_scope, [str(t) for t in turns]))
    advance = (progress or SilentProgress()).task("Scoring the held-out suite", len(rows))
    groups: dict[str, list[bool]] = {}
    in_scope_of: dict[str, bool] = {}
    for category, in_scope, turns in rows:
        decision = classifier.decide([{"role": "user", "content": t} for t in turns])
        flagged = turns[-1] in decision.spans
        key = category if category != "conversation" else f"conversation_{'in' if in_scope else 'out'}"
        groups.setdefault(key, []).append(flagged)
        in_scope_of[key] = in_scope
        advance()
    pos = [f for k, v in groups.items() if in_scope_of[k] for f in v]
    neg = [f for k, v in groups.items() if not in_scope_of[k] for f in v]
    return SplitMetrics(
        n_negative=len(neg), n_positive=len(pos), fpr=sum(neg) / len(neg) if neg else None,
        tpr=sum(pos) / len(pos) if pos else None,
        by_group={k: GroupRate(n=len(v), in_scope=in_scope_of[k], rate=sum(v) / len(v)) for k, v in sorted(groups.items())},
    )


QUANTIZATION_SAMPLE = 512  # training prompts whose activation ranges fix the int8 scales


def _quantization_sample(rows: Sequence[LabeledPrompt], seed: int) -> list[str]:
    """A seeded sample of training prompts, in and out of scope, to fix the static quantisation's scales. Each
    prompt's draw is keyed by its own text, so adding training data swaps a few prompts of the sample at most."""
    draws = [item_rng(seed, "quantize", row.text).random() for row in rows]
    picked = sorted(range(len(rows)), key=lambda i: (draws[i], i))[:QUANTIZATION_SAMPLE]
    return [rows[i].text for i in sorted(picked)]


def fit_policy(policy_path: Path, artifact_dir: Path, *, progress: ProgressSink | None = None,
               keep_fp32: bool = False, replace_other_policy: bool = False, fix: str = "<rails-config-dir>") -> ArtifactManifest:
    """Build the classifier artifact for a policy file: data, fine-tuning, ONNX export, int8, calibration.

    Args:
        policy_path: the forget policy (YAML).
        artifact_dir: where the artifact goes; written atomically (a reader never sees half of it).
        progress: progress bars (see :mod:`eco_rails.progress`); silent by default.
        keep_fp32: also keep the PyTorch checkpoint and the fp32 ONNX model in ``fp32/`` (benchmarks).
        replace_other_policy: overwrite an artifact fitted for a policy of another name (refused otherwise).
        fix: the rails config folder to name in that refusal's advice.

    Returns:
        The written :class:`~eco_rails.classifier.artifact.ArtifactManifest` (threshold and metrics).

    Raises:
        ConfigError: invalid policy, too few negatives to calibrate, or key terms that match too many
            negatives to reach ``target_fpr`` (the offending terms are named).
        ArtifactError: ``artifact_dir`` holds another policy's classifier (checked before any work).
        ModelLoadError: the backbone is not installed or is not an encoder.
    """
    started = time.perf_counter()
    policy = load_policy(policy_path)
    if not replace_other_policy:
        refuse_other_policy(artifact_dir, policy, policy_path, fix)
    settings = policy.classifier
    rows = build_examples(policy, seed=settings.seed)
    splits = split_by_group(rows, seed=settings.seed)
    if not any(r.label == 0 for r in splits["calibration"]):
        raise ConfigError(f"{policy_path}: no negatives left for calibration; add keep examples.")
    progress = progress or SilentProgress()
    labels = [NONE_LABEL, *policy.target_ids]
    model, tokenizer = train_classifier(policy, splits["train"], progress)
    export_step = progress.task("Exporting to ONNX (static int8)", 3)
    with atomic_directory(artifact_dir) as out, tempfile.TemporaryDirectory(prefix="eco-fit-") as work:
        hf_dir = (out / FP32_DIR) if keep_fp32 else Path(work) / "hf"
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        export_step()
        fp32_onnx = export_onnx(hf_dir, hf_dir)
        export_step()
        sample = _quantization_sample(splits["train"], settings.seed)
        quantize_int8_static(fp32_onnx, out / ONNX_FILE, sample, tokenizer, settings.max_length)
        tokenizer.save_pretrained(out)
        export_step()

        # Provisional manifest so the runtime classifier can load the artifact and score the held-out splits.
        vocabulary = vocabulary_of(tokenizer)
        unsure = ambiguous_terms(policy, term_negatives(splits), vocabulary)
        manifest = ArtifactManifest(
            policy_name=policy.name, policy_version=policy.version, policy_hash=policy.content_hash(), labels=labels,
            threshold=1.0, target_fpr=settings.target_fpr, max_length=settings.max_length,
            context_turns=settings.context_turns, max_prompt_chars=settings.max_prompt_chars, backbone=settings.backbone,
            key_terms={t.id: t.all_terms() for t in policy.targets if t.all_terms()},
            ambiguous_terms={k: v for k, v in unsure.items() if v}, exception_names=exception_names(policy),
            ambiguous_threshold=1.0, max_views=settings.max_views,
            metrics={}, versions=_versions(), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            seed=settings.seed, quantization="int8-static",
        )
        write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2))
        classifier = PromptClassifier(out)
        splits["test"] = splits["test"] + obfuscated_copies(splits["test"], settings.seed)
        held_out = splits["calibration"] + splits["test"]
        score_step = progress.task("Calibrating threshold", len(held_out))
        decisions: list[ClassifierDecision] = []
        for row in held_out:
            decisions.append(classifier.classify(row.text))
            score_step()
        n_cal = len(splits["calibration"])
        cal, test = decisions[:n_cal], decisions[n_cal:]
        cal_negatives = [(d, r) for d, r in zip(cal, splits["calibration"]) if r.label == 0]
        plain = [d.score for d, _ in cal_negatives if d.evidence == "none"]
        threshold = conformal_threshold(plain, settings.target_fpr)
        context_threshold = min(conformal_threshold(plain, settings.context_fpr), threshold)
        homonyms = sorted(((d.score, r.text) for d, r in cal_negatives if d.evidence == "ambiguous"), reverse=True)
        set_by: list[str] = []
        if len(homonyms) >= minimum_calibration_size(settings.homonym_fpr):
            cut = conformal_threshold([score for score, _ in homonyms], settings.homonym_fpr)
            ambiguous_threshold: float | None = cut
            set_by = [text for score, text in homonyms if score >= cut][:5]
        else:
            ambiguous_threshold = None
            log.warning("%s: only %d calibration negatives contain an ambiguous key term; the plain threshold applies "
                        "to them too. Add homonym prompts to the policy to calibrate them.", policy_path, len(homonyms))
        coined = [(d, r) for d, r in cal_negatives if d.evidence == "distinctive"]
        if cal_negatives and len(coined) / len(cal_negatives) > settings.target_fpr:
            offenders = sorted({f"{d.key_term!r} in {r.text!r}" for d, r in coined})[:5]
            raise ConfigError(
                f"{policy_path}: key terms match too many prompts outside the policy to reach target_fpr "
                f"{settings.target_fpr}: {'; '.join(offenders)}. Make those key terms more specific, remove them, or "
                "add prompts like these to `homonyms` so fit treats the terms as ambiguous."
            )
        amb = threshold if ambiguous_threshold is None else ambiguous_threshold
        metrics = {
            "calibration": _metrics(cal, splits["calibration"], threshold, amb, labels),
            "test": _metrics(test, splits["test"], threshold, amb, labels),
            "train_size": SplitMetrics(n_negative=sum(r.label == 0 for r in splits["train"]),
                                       n_positive=sum(r.label > 0 for r in splits["train"]), fpr=None, tpr=None),
        }
        manifest = manifest.model_copy(update={"threshold": threshold, "ambiguous_threshold": ambiguous_threshold,
                                               "ambiguous_threshold_set_by": set_by, "context_threshold": context_threshold})
        if policy.evaluation.suite:
            suite = (policy_path.parent / policy.evaluation.suite).resolve()
            if not suite.is_file():
                raise ConfigError(f"{policy_path}: evaluation.suite {policy.evaluation.suite!r} does not exist ({suite}).")
            classifier.manifest = manifest  # the calibrated thresholds; the loaded model and its scores stay valid
            metrics["suite"] = evaluate_suite(classifier, suite, progress)
        epochs = settings.epochs
        cost = {"seconds": round(time.perf_counter() - started, 1), "training_rows": len(splits["train"]) * epochs,
                "optimizer_steps": -(-len(splits["train"]) // settings.batch_size) * epochs}
        manifest = manifest.model_copy(update={"metrics": metrics, "fit_cost": cost})
        write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2))
    return manifest
