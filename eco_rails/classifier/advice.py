"""Advice after a fit: what in the policy keeps the classifier from doing better, in words a policy author can act on.

Pure: reads the policy and the fitted manifest, returns sentences. Why it exists: a first policy (a topic, 40
examples, 41 key terms) can reach a test TPR of 0.73 and nothing says why; the usual causes are few and
recognisable (thin or uniform examples, no indirect descriptions, key terms that are ordinary words).
"""

from __future__ import annotations

from eco_rails.classifier.artifact import ArtifactManifest
from eco_rails.policy.model import ForgetPolicy

# Below these the fit usually misses paraphrases; chosen from the demo policies (Harry Potter: hundreds of
# examples and entity descriptions, test TPR ~0.75 on a hard split; a 40-example first policy: 0.73).
MIN_EXAMPLES = 30
MIN_DESCRIPTIONS = 10
GOOD_TPR = 0.9
# An ambiguous-term threshold this high means an ambiguous term adds almost nothing to the encoder alone
# ("Who is Snape?" then needs the same score as a prompt with no name in it).
HIGH_AMBIGUOUS_THRESHOLD = 0.5


def fit_advice(policy: ForgetPolicy, manifest: ArtifactManifest) -> list[str]:
    """Sentences of advice, most important first; empty when nothing stands out."""
    advice: list[str] = []
    test = manifest.metrics.get("test")
    for target in policy.targets:
        n_examples = len(target.examples)
        descriptions = sum(len(e.descriptions) for e in target.entities)
        tpr = test.tpr_per_target.get(target.id) if test else None
        weak = tpr is not None and tpr < GOOD_TPR
        if n_examples < MIN_EXAMPLES:
            advice.append(
                f"Target {target.id!r} has {n_examples} examples{f' and a test TPR of {tpr:.2f}' if tpr is not None else ''}: "
                f"add at least {MIN_EXAMPLES - n_examples} more, varied in shape (questions, requests, statements), "
                "including ones that never name the topic.")
        elif weak:
            advice.append(f"Target {target.id!r} reaches a test TPR of only {tpr:.2f} with {n_examples} examples: add "
                          "prompts like the ones it misses (see the groups table: indirect, language, obfuscated).")
        if descriptions < MIN_DESCRIPTIONS and (weak or n_examples < MIN_EXAMPLES):
            advice.append(
                f"Target {target.id!r} has {descriptions} entity description{'' if descriptions == 1 else 's'}: indirect "
                "questions (no names) are learned "
                "from them. Give its main people, places and things `entities:` with `descriptions:` such as "
                "'the boy wizard with a lightning-bolt scar'.")
    for target_id, terms in sorted(manifest.ambiguous_terms.items()):
        shown = ", ".join(terms[:12]) + (f" and {len(terms) - 12} more" if len(terms) > 12 else "")
        advice.append(
            f"Key terms of {target_id!r} that occur in keep or negative prompts, or are ordinary words, flag only with "
            f"the encoder's agreement: {shown}. If one of them should flag on its own, make it more specific "
            "(a full name); if it is a real-world homonym, add prompts about the other meaning to `homonyms`.")
    amb = manifest.ambiguous_threshold
    if amb is not None and amb >= HIGH_AMBIGUOUS_THRESHOLD and manifest.ambiguous_threshold_set_by:
        shown = "; ".join(repr(t) for t in manifest.ambiguous_threshold_set_by[:3])
        advice.append(
            f"Ambiguous key terms need an encoder score of {amb:.2f} (the plain threshold is {manifest.threshold:.2f}), so "
            f"they add little: held-out homonyms the encoder reads as in scope set it ({shown}). Add more prompts about "
            "those other meanings to `homonyms` (fit trains on most of them) and re-fit.")
    if test is not None and test.key_term_hits_negative:
        advice.append(
            f"{test.key_term_hits_negative} held-out negative prompt(s) were flagged by a distinctive key term alone: a "
            "term is matching text it should not; add those prompts to `homonyms` or `keep` and re-fit.")
    return advice
