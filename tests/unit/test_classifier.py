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
