"""Pure pieces of the classifier: conformal calibration, key-term matching, augmentation, data splits."""

from __future__ import annotations

import random

import numpy as np
import pytest

from eco_rails.classifier.augment import augment, homoglyphs, leetspeak
from eco_rails.classifier.calibration import conformal_threshold, flag_rate
from eco_rails.classifier.dataset import build_examples, general_negatives, split_by_group
from eco_rails.classifier.key_terms import compile_terms, find_key_term
from eco_rails.classifier.text import fold_lookalikes, normalize_for_classifier
from eco_rails.errors import ConfigError
from eco_rails.policy import load_policy
from tests.unit.test_policy import HP_POLICY


def test_conformal_threshold_is_the_right_order_statistic():
    scores = [i / 100 for i in range(100)]  # 0.00 .. 0.99
    # n=100, alpha=0.05: rank ceil(101 * 0.95) = 96 -> the 96th smallest = 0.95
    assert conformal_threshold(scores, 0.05) == pytest.approx(0.95)
    assert flag_rate(scores, 0.95) == pytest.approx(0.04)


def test_conformal_threshold_controls_fpr_on_fresh_negatives():
    rng = np.random.default_rng(0)
    alpha, rates = 0.1, []
    for _ in range(400):
        cal, fresh = rng.beta(2, 5, size=60), rng.beta(2, 5, size=2000)
        rates.append(flag_rate(list(fresh), conformal_threshold(list(cal), alpha)))
    assert np.mean(rates) <= alpha + 0.005  # marginal guarantee: E[FPR] <= alpha
    assert np.mean(rates) > alpha - 0.05  # and not wastefully conservative


def test_too_few_calibration_negatives_is_a_clear_error():
    with pytest.raises(ConfigError, match="at least 99 are needed"):
        conformal_threshold([0.1] * 50, 0.01)


@pytest.fixture(scope="module")
def hp_terms():
    policy = load_policy(HP_POLICY)
    return compile_terms({t.id: t.all_terms() for t in policy.targets})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Who teaches at Hogwarts?", "Hogwarts"),
        ("hary poter wizard school name?", "Harry Potter"),
        ("Wh0 15 Dumbl3d0r3?", "Dumbledore"),
        ("tell me about dumbeldore", "Dumbledore"),
        ("What is Hоgwarts?", "Hogwarts"),  # Cyrillic о
        ("HARRYPOTTER facts", "Harry Potter"),
        ("¿Quién es Voldemort?", "Voldemort"),
        ("Who is Harry Styles?", None),
        ("What shape is a snake?", None),  # 'shape' is one letter from 'Snape': short words match exactly only
        ("Who was Beatrix Potter?", None),
        ("How do I throw a pot on a potter's wheel?", None),
    ],
)
def test_key_term_matching(hp_terms, text, expected):
    hit = find_key_term(text, hp_terms)
    assert (hit.text if hit else None) == expected


def test_demo_terms_that_also_name_real_things_are_ambiguous_and_coined_names_are_not():
    """fit's rule: a term that occurs in a negative (keep, homonym, general) or is an ordinary word needs the
    encoder's agreement; a coined name flags on its own."""
    from eco_rails.classifier.fit import ambiguous_terms

    policy = load_policy(HP_POLICY)
    vocabulary = frozenset({"phoenix", "black", "fang", "dobby", "crouch", "riddle", "luna", "hedwig"})
    negatives = general_negatives() + policy.keep + policy.homonyms
    unsure = set(ambiguous_terms(policy, negatives, vocabulary)["harry-potter"])
    assert {"Hedwig", "Harry Potter"} & unsure == {"Hedwig"}  # Saint Hedwig of Silesia is in keep
    assert not {"Hogwarts", "Dumbledore", "Voldemort", "Quidditch", "Гарри Поттер"} & unsure
    compiled = compile_terms({t.id: t.all_terms() for t in policy.targets}, ambiguous=unsure)
    coined = [(n, h.text) for n in negatives for h in [find_key_term(n, compiled, vocabulary)] if h is not None and not h.ambiguous]
    assert coined == [], "no keep, homonym or general prompt contains a distinctive key term"


def test_normalisation_undoes_cheap_evasions():
    assert fold_lookalikes(normalize_for_classifier("Whо  is\u200b Ｄumbledore?")) == "Who is Dumbledore?"
    rng = random.Random(0)
    assert fold_lookalikes(normalize_for_classifier(homoglyphs("Hogwarts castle", rng))) == "Hogwarts castle"
    assert leetspeak("aeiost" * 10, random.Random(1)) != "aeiost" * 10


def test_augmentation_is_seeded_and_never_returns_the_original():
    a = augment("Who is the headmaster of Hogwarts?", random.Random(5), 4)
    assert a == augment("Who is the headmaster of Hogwarts?", random.Random(5), 4)
    assert len(a) == 4 and "Who is the headmaster of Hogwarts?" not in a


def test_splits_keep_every_augmentation_group_together():
    policy = load_policy(HP_POLICY)
    rows = build_examples(policy, seed=0)
    splits = split_by_group(rows, seed=0)
    owner = {}
    for name, part in splits.items():
        for row in part:
            assert owner.setdefault(row.group, name) == name, f"group {row.group} straddles splits"
    assert sum(len(p) for p in splits.values()) == len(rows)
    assert {r.label for r in rows if r.source in ("keep", "general", "negative_term")} == {0}
    cal_neg = sum(1 for r in splits["calibration"] if r.label == 0)
    assert cal_neg >= 1 / policy.classifier.target_fpr - 1


def test_questions_about_people_with_unfamiliar_names_are_negatives():
    from eco_rails.classifier.dataset import people_questions

    questions = people_questions(0)
    assert len(questions) >= 100 and all("{n}" not in q for q in questions)
    rows = build_examples(load_policy(HP_POLICY), seed=0)
    people = [r for r in rows if r.group.startswith("people/")]
    assert people and {r.label for r in people} == {0}
    every = set(people_questions(0, per_name=1000))  # every name in every template
    assert {r.text for r in people if r.variant == "base"} <= every


def test_a_homonym_the_author_declared_makes_its_term_ambiguous_whichever_split_it_lands_in():
    """A declared homonym held out for calibration still says the term has another meaning; a shipped general
    question held out does not decide it (a key term hitting one still fails fit, with the prompt named)."""
    from eco_rails.classifier.dataset import LabeledPrompt
    from eco_rails.classifier.fit import ambiguous_terms, term_negatives

    policy = load_policy(HP_POLICY)
    cloak = LabeledPrompt("How do invisibility cloaks work in physics?", 0, "homonym/1", "homonym")
    general = LabeledPrompt("Is the Invisibility Cloak in a museum?", 0, "general/1", "general")
    train = [LabeledPrompt("How do I glaze a pot?", 0, "homonym/2", "homonym")]
    for held_out in ("calibration", "test"):
        splits = {"train": train, "calibration": [], "test": [], held_out: [cloak]}
        assert "Invisibility Cloak" in ambiguous_terms(policy, term_negatives(splits), frozenset())["harry-potter"]
    splits = {"train": train, "calibration": [general], "test": []}
    assert "Invisibility Cloak" not in ambiguous_terms(policy, term_negatives(splits), frozenset())["harry-potter"]
    splits = {"train": train + [general], "calibration": [], "test": []}
    assert "Invisibility Cloak" in ambiguous_terms(policy, term_negatives(splits), frozenset())["harry-potter"]
