"""Build the classifier's training, calibration and test sets from a forget policy.

Positives are the targets' examples and key terms; negatives are the policy's ``keep`` examples (hard
negatives) plus a general corpus shipped with eco-rails (``eco_rails/data/``). Every base example is
augmented; a base example and all its variants form one *group*, and groups (never single rows) are
split between train, calibration and test, so no paraphrase of a calibration or test prompt is ever
trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from eco_rails.classifier.augment import augment, term_prompts
from eco_rails.policy import ForgetPolicy

Source = Literal["target", "key_term", "keep", "general", "negative_term"]
Split = Literal["train", "calibration", "test"]
NONE_LABEL = "none"


@dataclass(frozen=True)
class LabeledPrompt:
    text: str
    label: int  # 0 = outside the policy, i = targets[i - 1]
    group: str  # base example id: all augmentations of one base share it
    source: Source


def _shipped_lines(name: str) -> list[str]:
    text = resources.files("eco_rails.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def general_negatives() -> list[str]:
    return _shipped_lines("general_negatives.txt")


def negative_terms() -> list[str]:
    return _shipped_lines("negative_terms.txt")


def build_examples(policy: ForgetPolicy, seed: int, variants_per_positive: int = 3, variants_per_negative: int = 2,
                   prompts_per_term: int = 3) -> list[LabeledPrompt]:
    """All labelled prompts (base examples and their augmentations) for ``policy``."""
    rng = random.Random(seed)
    rows: list[LabeledPrompt] = []

    def add(base: str, label: int, group: str, source: Source, n_variants: int) -> None:
        rows.append(LabeledPrompt(base, label, group, source))
        rows.extend(LabeledPrompt(v, label, group, source) for v in augment(base, rng, n_variants))

    for label, target in enumerate(policy.targets, start=1):
        for i, example in enumerate(target.examples):
            add(example, label, f"{target.id}/ex{i}", "target", variants_per_positive)
        for i, term in enumerate(target.key_terms):
            for j, prompt in enumerate(term_prompts(term, rng, prompts_per_term)):
                add(prompt, label, f"{target.id}/term{i}", "key_term", 1 if j == 0 else 0)
    keep_set = {k.lower() for k in policy.keep}
    for i, example in enumerate(policy.keep):
        add(example, 0, f"keep/{i}", "keep", variants_per_negative)
    general = general_negatives()
    limit = policy.classifier.general_negatives
    if limit is not None and limit < len(general):
        general = random.Random(seed + 2).sample(general, limit)
    for i, example in enumerate(general):
        if example.lower() not in keep_set:
            add(example, 0, f"general/{i}", "general", variants_per_negative)
    for i, term in enumerate(negative_terms()):
        for j, prompt in enumerate(term_prompts(term, rng, prompts_per_term)):
            add(prompt, 0, f"negterm/{i}", "negative_term", 1 if j == 0 else 0)
    return rows


def split_by_group(rows: list[LabeledPrompt], seed: int, calibration: float = 0.2, test: float = 0.15) -> dict[Split, list[LabeledPrompt]]:
    """Split groups, stratified by (label, source), into train / calibration / test.

    Calibration holds only what conformal calibration needs (negatives) plus positives for reporting TPR.
    """
    rng = random.Random(seed + 1)
    strata: dict[tuple[int, str], list[str]] = {}
    for row in rows:
        groups = strata.setdefault((row.label, row.source), [])
        if row.group not in groups:
            groups.append(row.group)
    assignment: dict[str, Split] = {}
    for key in sorted(strata):
        groups = strata[key]
        rng.shuffle(groups)
        n = len(groups)
        n_cal = round(n * calibration) if n >= 5 else 0
        n_test = round(n * test) if n >= 5 else 0
        for g in groups[:n_cal]:
            assignment[g] = "calibration"
        for g in groups[n_cal:n_cal + n_test]:
            assignment[g] = "test"
        for g in groups[n_cal + n_test:]:
            assignment[g] = "train"
    splits: dict[Split, list[LabeledPrompt]] = {"train": [], "calibration": [], "test": []}
    for row in rows:
        splits[assignment[row.group]].append(row)
    return splits
