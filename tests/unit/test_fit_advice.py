"""fit_advice: what a policy author should change, read from the policy and the fitted manifest."""

from __future__ import annotations

from pathlib import Path

from eco_rails.classifier.advice import MIN_EXAMPLES, fit_advice
from eco_rails.classifier.artifact import ArtifactManifest, SplitMetrics
from eco_rails.policy import load_policy

REPO = Path(__file__).resolve().parents[2]


def manifest(policy, tpr: float, ambiguous=None, key_term_hits=0) -> ArtifactManifest:
    return ArtifactManifest(
        policy_name=policy.name, policy_version=policy.version, policy_hash=policy.content_hash(),
        labels=["none", *policy.target_ids], threshold=0.9, target_fpr=0.05, max_length=128, context_turns=1,
        max_prompt_chars=200_000, backbone="all-minilm-l6-v2", ambiguous_terms=ambiguous or {},
        metrics={"test": SplitMetrics(n_negative=10, n_positive=10, fpr=0.0, tpr=tpr,
                                      tpr_per_target={t: tpr for t in policy.target_ids}, key_term_hits_negative=key_term_hits)},
        versions={"python": "3"}, created_at="2026-01-01T00:00:00+00:00", seed=0,
    )


def test_a_thin_policy_with_a_weak_fit_is_told_what_to_add():
    policy = load_policy(REPO / "tests" / "configs" / "wizard_school" / "policy.yml")
    target = policy.targets[0]
    assert len(target.examples) < MIN_EXAMPLES
    advice = fit_advice(policy, manifest(policy, tpr=0.73, ambiguous={target.id: ["wand"]}, key_term_hits=2))
    text = "\n".join(advice)
    assert f"Target {target.id!r} has {len(target.examples)} examples and a test TPR of 0.73" in text
    assert "entity description" in text and "`homonyms`" in text and "wand" in text
    assert "2 held-out negative prompt(s) were flagged by a distinctive key term alone" in text


def test_a_rich_policy_that_fits_well_gets_no_advice():
    policy = load_policy(REPO / "rails_configs" / "harry_potter" / "policy.yml")
    assert all(len(t.examples) >= MIN_EXAMPLES for t in policy.targets)
    assert fit_advice(policy, manifest(policy, tpr=0.95)) == []


def test_a_high_ambiguous_threshold_names_the_homonyms_that_set_it():
    policy = load_policy(REPO / "rails_configs" / "harry_potter" / "policy.yml")
    fitted = manifest(policy, tpr=0.95).model_copy(update={
        "ambiguous_threshold": 0.95, "ambiguous_threshold_set_by": ["What is Hedwig and the Angry Inch about?"]})
    (advice,) = fit_advice(policy, fitted)
    assert "score of 0.95" in advice and "'What is Hedwig and the Angry Inch about?'" in advice and "`homonyms`" in advice
    low = fitted.model_copy(update={"ambiguous_threshold": 0.14})
    assert fit_advice(policy, low) == []
