"""TOFU and KnowUnDo metric math against values computed by hand (no model)."""

import math

import pytest

from eco_rails.benchmarks import metrics as M

LN2, LN4, LN8 = math.log(2), math.log(4), math.log(8)


def test_answer_probability_is_exp_of_minus_mean_token_nll():
    assert M.prob_from_nll(0.5) == pytest.approx(0.606531, abs=1e-6)
    assert M.prob_from_nll(0.0) == 1.0


def test_normalized_probability_divides_by_all_choices():
    # P_true 0.5, two wrong answers 0.25 each: 0.5 / (0.5 + 0.25 + 0.25)
    assert M.normalized_prob(LN2, [LN4, LN4]) == pytest.approx(0.5)


def test_truth_ratio_uses_the_geometric_mean_of_wrong_answers():
    # wrong mean NLL (ln2 + ln8) / 2 = ln4 -> P_wrong 0.25; P_correct 0.5 -> R = 0.5
    assert M.truth_ratio(LN2, [LN2, LN8]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        M.truth_ratio(LN2, [])


def test_forget_truth_stat_is_mean_min_r_inverse():
    assert M.forget_truth_stat([0.5, 2.0, 1.0]) == pytest.approx(2 / 3)


def test_retain_truth_stat_is_mean_max_zero_one_minus_r():
    assert M.retain_truth_stat([0.5, 2.0]) == pytest.approx(0.25)


def test_forget_quality_is_the_ks_p_value():
    assert M.forget_quality([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    # fully separated samples of 3 and 3: exact two-sided p = 2 / C(6, 3) = 0.1
    assert M.forget_quality([0.1, 0.2, 0.3], [5.0, 6.0, 7.0]) == pytest.approx(0.1)
    assert math.isnan(M.forget_quality([], [1.0]))


def test_model_utility_is_the_harmonic_mean_of_nine_numbers():
    assert M.harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert M.harmonic_mean([1.0, 0.0]) == 0.0
    assert M.model_utility({str(i): 0.5 for i in range(9)}) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="9 components"):
        M.model_utility({"a": 1.0})


def test_rouge_l_recall_counts_the_reference_covered():
    # LCS "the cat sat" = 3 of the reference's 6 tokens
    assert M.rouge_l_recall("the cat sat", "the cat sat on the mat") == pytest.approx(0.5)
    assert M.rouge_l_recall("", "the cat") == 0.0


def test_token_accuracy_and_perplexity():
    assert M.token_accuracy(3, 4) == 0.75
    assert math.isnan(M.token_accuracy(0, 0))
    assert M.perplexity(4 * LN2, 4) == pytest.approx(2.0)


def test_generation_quality_rates():
    assert M.is_empty(" ... ") and not M.is_empty("ok")
    # 7 trigrams: abc x3, bca x2, cab x2 -> 4 repeats
    assert M.repetition_rate("a b c a b c a b c") == pytest.approx(4 / 7)
    assert M.repetition_rate("too short") == 0.0


def test_mean_skips_nan():
    assert M.mean([1.0, float("nan"), 3.0]) == 2.0
    assert math.isnan(M.mean([]))
