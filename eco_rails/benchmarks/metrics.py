"""The benchmarks' metrics as pure functions: TOFU (Maini et al. 2024) and KnowUnDo (Tian et al. 2024).

Inputs are per-question numbers a model produced (mean token negative log-likelihoods, greedy answers,
teacher-forced token hits); outputs are the published aggregate metrics. Nothing here loads a model, so
every formula is checked against hand-computed values in ``tests/unit``.

Definitions (``../shared/notes/unlearning-benchmarks.md`` and the TOFU paper):

* answer probability ``exp(-mean token NLL)``; on real authors and world facts normalised over the
  choices, ``P_true / (P_true + sum P_perturbed)``;
* truth ratio ``R = P_wrong / P_correct`` with ``P_correct`` from the paraphrased answer and ``P_wrong``
  the geometric mean of the perturbed answers' probabilities; reported as ``mean(min(R, 1/R))`` on the
  forget set and ``mean(max(0, 1 - R))`` elsewhere;
* forget quality: the p-value of the two-sample KS test between the forget-set truth ratios of the
  evaluated model and of the retain model;
* model utility: the harmonic mean of (probability, ROUGE-L recall, truth ratio) on retain, real authors
  and world facts;
* KnowUnDo: teacher-forced token accuracy (``retention = acc(retention_val)``, ``unlearn = 1 - acc(unlearn_val)``)
  and perplexity.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence

from eco_rails.evaluation.fluency import is_empty, is_loop, is_paraphrase_loop, repetition_rate

__all__ = [  # the fluency checks are shared with eco-rails optimize and eval
    "forget_quality", "forget_truth_stat", "harmonic_mean", "is_empty", "is_loop", "is_paraphrase_loop", "mean", "model_utility", "normalized_prob",
    "perplexity", "prob_from_nll", "repetition_rate", "retain_truth_stat", "rouge_l_recall", "token_accuracy", "truth_ratio",
]


def prob_from_nll(mean_nll: float) -> float:
    """TOFU's answer probability: ``exp(-mean token NLL)``."""
    return math.exp(-mean_nll)


def normalized_prob(true_nll: float, wrong_nlls: Sequence[float]) -> float:
    """``P_true / (P_true + sum P_wrong)`` with each ``P = exp(-mean token NLL)`` (real authors, world facts)."""
    p_true = prob_from_nll(true_nll)
    return p_true / (p_true + sum(prob_from_nll(n) for n in wrong_nlls))


def truth_ratio(correct_nll: float, wrong_nlls: Sequence[float]) -> float:
    """``R = P_wrong / P_correct``, ``P_wrong = exp(-mean of the wrong answers' mean NLLs)``."""
    if not wrong_nlls:
        raise ValueError("truth_ratio needs at least one wrong answer")
    return math.exp(correct_nll - statistics.fmean(wrong_nlls))


def forget_truth_stat(ratios: Iterable[float]) -> float:
    """Forget set: ``mean(min(R, 1/R))`` (1 = the model cannot tell right from wrong)."""
    values = [min(r, 1.0 / r) for r in ratios]
    return statistics.fmean(values) if values else float("nan")


def retain_truth_stat(ratios: Iterable[float]) -> float:
    """Retain, real authors, world facts: ``mean(max(0, 1 - R))`` (1 = strongly prefers the right answer)."""
    values = [max(0.0, 1.0 - r) for r in ratios]
    return statistics.fmean(values) if values else float("nan")


def forget_quality(model_ratios: Sequence[float], retain_ratios: Sequence[float]) -> float:
    """p-value of ``scipy.stats.ks_2samp`` between two models' forget-set truth ratios (high = alike)."""
    from scipy.stats import ks_2samp

    if not model_ratios or not retain_ratios:
        return float("nan")
    return float(ks_2samp(list(model_ratios), list(retain_ratios)).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean; 0 if any value is 0 (TOFU's model utility punishes one broken component)."""
    if not values:
        return float("nan")
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


def model_utility(components: dict[str, float]) -> float:
    """Harmonic mean of the nine (probability, ROUGE-L, truth ratio) x (retain, real authors, world facts)."""
    if len(components) != 9:
        raise ValueError(f"model utility needs 9 components, got {len(components)}: {sorted(components)}")
    return harmonic_mean(list(components.values()))


_SCORER = None


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall of a generated answer against the gold one (``rouge-score``, stemmed, as TOFU)."""
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_SCORER.score(reference, prediction)["rougeL"].recall)


def token_accuracy(hits: int, total: int) -> float:
    """Teacher-forced token accuracy: the share of answer tokens whose argmax is the gold token."""
    return hits / total if total else float("nan")


def perplexity(total_nll: float, total_tokens: int) -> float:
    """Corpus perplexity: ``exp(summed NLL / summed tokens)``."""
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")


def mean(values: Iterable[float]) -> float:
    """Mean ignoring NaN; NaN if nothing is left."""
    kept = [v for v in values if not math.isnan(v)]
    return statistics.fmean(kept) if kept else float("nan")
