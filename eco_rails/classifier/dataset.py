"""Build the classifier's training, calibration and test sets from a forget policy.

Positives: the targets' examples; their key terms, entity names and aliases placed into question templates
in twenty languages (an alias in Cyrillic goes into Russian and Ukrainian templates, one in Hangul into
Korean ones); the entities' plain-word descriptions placed into indirect-question templates. Negatives:
the policy's ``keep`` examples, its ``keep_entities`` described through the *same* indirect templates (so
the classifier learns the target's content, not the template), its ``homonyms``, and corpora shipped with
eco-rails (``eco_rails/data/``): general questions, questions about ordinary people with unfamiliar names,
neighbour terms, everyday filler sentences. A share of
both sides is wrapped in jailbreak and format wrappers, so a wrapper is never a signal by itself.

Every base prompt is augmented; a base prompt and all its variants form one *group*, and groups (never
single rows) are split between train, calibration and test, so no paraphrase of a calibration or test
prompt is ever trained on. Each row keeps its ``source`` (where it came from), which ``fit`` reports on.

Every random draw (augmentations, templates, wrappers, the split) comes from a generator keyed by the fit's
seed and the item's own text (:func:`item_rng`), never from one generator shared by the whole build: adding a
homonym or a shipped question then re-draws that item alone, instead of every augmentation and split after it.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from eco_rails.classifier.augment import augment, term_prompts
from eco_rails.policy import Entity, ForgetPolicy

Source = Literal[
    "target", "key_term", "alias", "indirect",  # positives
    "keep", "keep_indirect", "homonym", "general", "negative_term", "filler",  # negatives
]
Split = Literal["train", "calibration", "test"]
NONE_LABEL = "none"

# Which report group each source belongs to (fit reports TPR/FPR per group).
SOURCE_GROUP: dict[str, str] = {
    "target": "direct", "key_term": "direct", "alias": "language", "indirect": "indirect",
    "keep": "neighbour", "keep_indirect": "neighbour", "negative_term": "neighbour",
    "homonym": "homonym", "general": "general", "filler": "general",
}

_SCRIPT_LANGUAGES = {
    "CYRILLIC": ("ru", "uk"), "CJK": ("zh", "zh-Hant"), "HIRAGANA": ("ja",), "KATAKANA": ("ja",), "HANGUL": ("ko",),
    "ARABIC": ("ar",), "DEVANAGARI": ("hi",), "GREEK": ("el",), "HEBREW": ("he",),
}
_LATIN_LANGUAGES = ("es", "fr", "de", "it", "pt", "nl", "pl", "tr", "vi")


@dataclass(frozen=True)
class LabeledPrompt:
    text: str
    label: int  # 0 = outside the policy, i = targets[i - 1]
    group: str  # base example id: all augmentations of one base share it
    source: Source
    variant: str = "base"  # base, augmented, wrapped, long, encoded
    train_only: bool = False  # never in calibration or test (its label holds for the text, not for what it decodes to)


def item_rng(seed: int, *keys: object) -> random.Random:
    """A generator for one item of the data, seeded by the fit's ``seed`` and the item's own ``keys``.

    Why: with one generator for the whole build, one added general question re-drew every later augmentation
    and the split of every later stratum, so a policy edit moved calibration (and the thresholds) through prompts
    it had nothing to do with. A string seed is hashed with SHA-512 by :class:`random.Random`, so the draw is the
    same in every process (``PYTHONHASHSEED`` plays no part).
    """
    return random.Random("\x1f".join(map(str, (seed, *keys))))


def _shipped_lines(name: str) -> list[str]:
    text = resources.files("eco_rails.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def general_negatives() -> list[str]:
    return _shipped_lines("general_negatives.txt")


def negative_terms() -> list[str]:
    return _shipped_lines("negative_terms.txt")


def term_templates() -> dict[str, list[str]]:
    """Language code -> templates with ``{t}`` (``eco_rails/data/term_templates.txt``)."""
    out: dict[str, list[str]] = {}
    for line in _shipped_lines("term_templates.txt"):
        lang, _, template = line.partition("\t")
        if "{t}" in template:
            out.setdefault(lang.strip(), []).append(template.strip())
    return out


def description_templates() -> list[str]:
    return [t for t in _shipped_lines("description_templates.txt") if "{d}" in t]


def wrappers() -> list[str]:
    return [t for t in _shipped_lines("wrappers.txt") if "{q}" in t]


def people_questions(seed: int, per_name: int = 2) -> list[str]:
    """Questions about ordinary people with unfamiliar names (``eco_rails/data/people.txt``): negatives, so an
    unknown name alone is never read as the policy's world."""
    section, names, templates = "", [], []
    for line in _shipped_lines("people.txt"):
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section == "names":
            names.append(line)
        elif section == "templates" and "{n}" in line:
            templates.append(line)
    return [t.replace("{n}", name) for name in names
            for t in item_rng(seed, "people", name).sample(templates, k=min(per_name, len(templates)))]


def filler_sentences() -> list[str]:
    import re

    out: list[str] = []
    for paragraph in _shipped_lines("filler.txt"):
        out.extend(s.strip() for s in re.findall(r"[^.!?]+[.!?]", paragraph) if len(s.strip().split()) >= 5)
    return out


def _encode(text: str, rng: random.Random) -> str:
    import base64
    import codecs

    kind = rng.randrange(5)
    if kind == 0:
        return base64.b64encode(text.encode()).decode()
    if kind == 1:
        return text.encode().hex()
    if kind == 2:
        return codecs.encode(text, "rot13")
    if kind == 3:
        return text[::-1]
    shift = rng.randrange(1, 26)
    return "".join(chr((ord(c) - 97 + shift) % 26 + 97) if "a" <= c <= "z" else c for c in text.lower())


def languages_for(name: str) -> tuple[str, ...]:
    """The template languages that write ``name``'s script."""
    for ch in name:
        if ch.isalpha() and not ch.isascii():
            script = unicodedata.name(ch, "").split(" ")[0]
            if script in _SCRIPT_LANGUAGES:
                return _SCRIPT_LANGUAGES[script]
    return _LATIN_LANGUAGES


def build_examples(policy: ForgetPolicy, seed: int, variants_per_positive: int = 3, variants_per_negative: int = 2,
                   prompts_per_term: int = 3, wrap_share: float = 0.15, aliases_per_entity: int = 5,
                   encoded_negatives: int = 300, templates_per_description: int = 3) -> list[LabeledPrompt]:
    """All labelled prompts (base examples and their augmentations) for ``policy``."""
    rows: list[LabeledPrompt] = []
    templates = term_templates()
    all_templates = [t for ts in templates.values() for t in ts]
    indirect = description_templates()
    wraps = wrappers()

    def add(base: str, label: int, group: str, source: Source, n_variants: int) -> None:
        rng = item_rng(seed, "add", source, base)
        rows.append(LabeledPrompt(base, label, group, source))
        rows.extend(LabeledPrompt(v, label, group, source, "augmented") for v in augment(base, rng, n_variants))
        if wraps and rng.random() < wrap_share:
            rows.append(LabeledPrompt(rng.choice(wraps).replace("{q}", base), label, group, source, "wrapped"))

    def describe(entity: Entity, label: int, group: str, source: Source, n_variants: int) -> None:
        # One group per description, not per entity: the classifier then trains on some descriptions of nearly
        # every entity (an indirect question about any of them must be caught), while the held-out splits still
        # never contain a paraphrase of a trained prompt.
        for j, description in enumerate(entity.descriptions):
            rng = item_rng(seed, "describe", source, description)
            for k, template in enumerate(rng.sample(indirect, k=min(templates_per_description, len(indirect)))):
                add(template.replace("{d}", description), label, f"{group}.d{j}", source, n_variants if k == 0 else 0)

    for label, target in enumerate(policy.targets, start=1):
        for i, example in enumerate(target.examples):
            add(example, label, f"{target.id}/ex{i}", "target", variants_per_positive)
        names = list(dict.fromkeys([*target.key_terms, *(e.name for e in target.entities)]))
        for i, term in enumerate(names):
            rng = item_rng(seed, "key_term", term)
            for j, prompt in enumerate(term_prompts(term, rng, prompts_per_term, all_templates)):
                add(prompt, label, f"{target.id}/term{i}", "key_term", 1 if j == 0 else 0)
        for i, entity in enumerate(target.entities):
            # Aliases are matched as key terms anyway; the encoder sees a sample of them (in their languages'
            # templates) to learn what a question about this world looks like in other languages.
            rng = item_rng(seed, "alias", target.id, entity.name)
            for a, alias in enumerate(rng.sample(entity.aliases, k=min(aliases_per_entity, len(entity.aliases)))):
                choices = [t for lang in languages_for(alias) for t in templates.get(lang, [])] or all_templates
                add(rng.choice(choices).replace("{t}", alias), label, f"{target.id}/alias{i}.{a}", "alias", 0)
            describe(entity, label, f"{target.id}/entity{i}", "indirect", 1)
    keep_set = {k.lower() for k in policy.keep}
    for i, example in enumerate(policy.keep):
        add(example, 0, f"keep/{i}", "keep", variants_per_negative)
    for i, entity in enumerate(policy.keep_entities):
        for j, prompt in enumerate(term_prompts(entity.name, item_rng(seed, "keep_entity", entity.name), 2, all_templates)):
            add(prompt, 0, f"keepentity/{i}", "keep_indirect", 1 if j == 0 else 0)
        describe(entity, 0, f"keepentity/{i}", "keep_indirect", 1)
    for i, example in enumerate(policy.homonyms):
        add(example, 0, f"homonym/{i}", "homonym", variants_per_negative)
    general = general_negatives()
    limit = policy.classifier.general_negatives
    if limit is not None and limit < len(general):
        general = random.Random(seed + 2).sample(general, limit)
    for i, example in enumerate(general):
        if example.lower() not in keep_set:
            add(example, 0, f"general/{i}", "general", variants_per_negative)
    people = people_questions(seed)
    for i, question in enumerate(people if limit is None else people[: limit // 5]):
        add(question, 0, f"people/{i // 2}", "general", 1)
    for i, term in enumerate(negative_terms()):
        for j, prompt in enumerate(term_prompts(term, item_rng(seed, "negative_term", term), prompts_per_term, all_templates)):
            add(prompt, 0, f"negterm/{i}", "negative_term", 1 if j == 0 else 0)
    filler = filler_sentences()
    paragraphs = _shipped_lines("filler.txt")
    if limit is not None:
        filler, paragraphs = filler[: max(limit // 2, 0)], paragraphs[: max(limit // 20, 0)]
    for i, sentence in enumerate(filler):
        add(sentence, 0, f"filler/{i}", "filler", 0)
    # Multi-sentence negatives: a prompt is scored sentence by sentence too, so calibration must see texts with
    # many sentences (a paragraph; a paragraph around an everyday question), or the max over views inflates FPR.
    for i, paragraph in enumerate(paragraphs):
        rows.append(LabeledPrompt(paragraph, 0, f"paragraph/{i}", "filler"))
        if general:
            question = item_rng(seed, "paragraph", paragraph).choice(general)
            rows.append(LabeledPrompt(f"{paragraph} {question}", 0, f"paragraph/{i}", "filler", "long"))
    # Encoded text is no language: base64, hex, letter-shifted and reversed forms of prompts from both sides are
    # negatives. At run time the decoded view carries the meaning; the encoded view itself must score low, or
    # every encoded innocent question would be flagged.
    bases = [r for r in rows if r.variant == "base" and r.text.isascii()]
    bases.sort(key=lambda r: item_rng(seed, "encoded", r.text).random())  # an added base displaces one at most
    for i, row in enumerate(bases[:encoded_negatives]):
        rows.append(LabeledPrompt(_encode(row.text, item_rng(seed, "encode", row.text)), 0, f"encoded/{i}", "general", "encoded", train_only=True))
    # The wrappers' own sentences, with nothing inside: a wrapper alone is never in scope.
    for i, wrapper in enumerate(wraps):
        question = item_rng(seed, "wrapper", wrapper).choice(general) if general else ""
        rows.append(LabeledPrompt(wrapper.replace("{q}", question).strip(), 0,
                                  f"wrapper/{i}", "general", "wrapped"))
    return rows


def split_by_group(rows: list[LabeledPrompt], seed: int, calibration: float = 0.2, test: float = 0.15) -> dict[Split, list[LabeledPrompt]]:
    """Split groups, stratified by (label, source), into train / calibration / test.

    Calibration holds only what conformal calibration needs: negatives. Positive groups go to train or test
    (TPR is reported on the test split), so every in-scope description not held out for the report is trained
    on: a description is what teaches the encoder a new corner of the policy's world.
    """
    strata: dict[tuple[int, str], list[str]] = {}
    draw: dict[str, float] = {}
    for row in rows:
        if row.group in draw or row.train_only:
            continue
        draw[row.group] = item_rng(seed, "split", row.source, row.text).random()  # keyed by the group's first prompt
        strata.setdefault((row.label, row.source), []).append(row.group)
    assignment: dict[str, Split] = {}
    for key in sorted(strata):
        # Each group's place depends on its own text, so an added group moves at most the groups at the cuts.
        groups = sorted(strata[key], key=lambda g: (draw[g], g))
        n = len(groups)
        n_cal = round(n * calibration) if n >= 5 and key[0] == 0 else 0
        n_test = round(n * test) if n >= 5 else 0
        for g in groups[:n_cal]:
            assignment[g] = "calibration"
        for g in groups[n_cal:n_cal + n_test]:
            assignment[g] = "test"
        for g in groups[n_cal + n_test:]:
            assignment[g] = "train"
    splits: dict[Split, list[LabeledPrompt]] = {"train": [], "calibration": [], "test": []}
    for row in rows:
        splits["train" if row.train_only else assignment[row.group]].append(row)
    return splits
