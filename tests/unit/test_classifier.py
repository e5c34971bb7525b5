"""The classifier's checks that need no fitted model: refused artifacts and the fit's data."""

from __future__ import annotations

import pytest

from eco_rails.classifier.artifact import ArtifactError
from eco_rails.classifier.dataset import build_examples, split_by_group
from eco_rails.classifier.runtime import PromptClassifier
from eco_rails.policy import load_policy
from tests.conftest import WIZARD_SCHOOL


def test_missing_or_corrupt_manifest_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="No classifier artifact"):
        PromptClassifier(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        PromptClassifier(tmp_path)


def test_fit_is_reproducible_in_its_data():
    policy = load_policy(WIZARD_SCHOOL / "policy.yml")
    a = split_by_group(build_examples(policy, seed=0), seed=0)
    b = split_by_group(build_examples(policy, seed=0), seed=0)
    assert a == b


def test_adding_one_homonym_redraws_no_other_prompt_and_moves_no_group_of_another_kind():
    """A compliance team adds one homonym: every other prompt (augmentations, templates, wrappers, encoded
    negatives) is drawn exactly as before, and only homonym groups at the split's cuts may change split."""
    policy = load_policy(WIZARD_SCHOOL / "policy.yml")
    edited = policy.model_copy(update={"homonyms": [*policy.homonyms, "What did the potter's wheel cost in 1900?"]})
    before, after = build_examples(policy, seed=0), build_examples(edited, seed=0)
    new_group = f"homonym/{len(policy.homonyms)}"
    added = [r for r in after if r.group == new_group]
    assert added and [r for r in after if r.group != new_group and r.variant != "encoded"] == [
        r for r in before if r.variant != "encoded"]
    # the encoded negatives are drawn from every base prompt: the new one may take one place, no more
    old_encoded = {r.text for r in before if r.variant == "encoded"}
    new_encoded = {r.text for r in after if r.variant == "encoded"}
    assert len(new_encoded - old_encoded) <= 1

    def placement(splits):
        return {r.group: name for name, rows in splits.items() for r in rows}

    old, new = placement(split_by_group(before, seed=0)), placement(split_by_group(after, seed=0))
    moved = {g for g in old if not g.startswith("encoded/") and old[g] != new[g]}
    assert all(g.startswith("homonym/") for g in moved) and len(moved) <= 2


def test_another_seed_draws_other_augmentations_and_another_split():
    policy = load_policy(WIZARD_SCHOOL / "policy.yml")
    a, b = build_examples(policy, seed=0), build_examples(policy, seed=1)
    authored = ("target", "keep", "homonym")
    assert {r.text for r in a if r.variant == "base" and r.source in authored} == {
        r.text for r in b if r.variant == "base" and r.source in authored}
    assert {r.text for r in a if r.variant == "augmented"} != {r.text for r in b if r.variant == "augmented"}
    assert split_by_group(a, seed=0)["test"] != split_by_group(a, seed=1)["test"]
