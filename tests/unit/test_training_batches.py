"""The fine-tuning's micro-batches: the same prompts as the random batch, cut by length to save padding."""

from __future__ import annotations

import random

import pytest

from eco_rails.classifier.train import micro_batches


def _padded(parts, lengths):
    return sum(max(lengths[i] for i in part) * len(part) for part in parts)


def test_a_batch_is_cut_into_parts_holding_exactly_its_prompts():
    rng = random.Random(0)
    lengths = [rng.randint(5, 128) for _ in range(500)]
    batch = rng.sample(range(500), 32)
    parts = micro_batches(batch, lengths)
    assert sorted(i for part in parts for i in part) == sorted(batch)


def test_parts_keep_padding_within_the_slack_and_far_below_one_padded_batch():
    rng = random.Random(1)
    lengths = [rng.choice([9, 12, 15, 20, 22, 25, 30, 47, 128]) for _ in range(320)]
    batches = [list(range(k, k + 32)) for k in range(0, 320, 32)]
    parts = [micro_batches(b, lengths, slack=1.5) for b in batches]
    real = sum(lengths)
    assert all(_padded([p], lengths) <= 1.5 * sum(lengths[i] for i in p) for ps in parts for p in ps)
    assert sum(_padded(ps, lengths) for ps in parts) < 0.6 * sum(_padded([b], lengths) for b in batches)
    assert sum(_padded(ps, lengths) for ps in parts) <= 1.5 * real


def test_prompts_of_one_length_stay_one_part_and_slack_one_means_no_padding():
    assert [sorted(p) for p in micro_batches([3, 1, 2], [10, 10, 10, 10])] == [[1, 2, 3]]
    parts = micro_batches([0, 1, 2, 3], [5, 9, 5, 9], slack=1.0)
    assert parts == [[0, 2], [1, 3]]


def test_a_slack_below_one_is_an_error():
    with pytest.raises(ValueError, match="at least 1.0"):
        micro_batches([0], [3], slack=0.9)
