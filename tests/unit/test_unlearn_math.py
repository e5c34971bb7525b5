"""MemFlex's localisation and the unlearning losses on hand-made numbers (no model)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from eco_rails.unlearn.localize import TensorStats, randomise_answer, select_tensors, tensor_stats, thresholds_from_quantiles
from eco_rails.unlearn.losses import npo_loss, sequence_nll, weighted_loss
from eco_rails.unlearn.methods import RowBatch, get_method, method_names


def test_cosine_and_magnitude_per_tensor_from_hand_made_gradients():
    unlearn = {"orth": torch.tensor([1.0, 0.0]), "same": torch.tensor([[1.0, 1.0]]), "opposite": torch.tensor([-2.0, 0.0]),
               "silent": torch.zeros(3)}
    retain = {"orth": torch.tensor([0.0, 3.0]), "same": torch.tensor([[2.0, 2.0]]), "opposite": torch.tensor([1.0, 0.0]),
              "silent": torch.tensor([1.0, 2.0, 3.0])}
    stats = {s.name: s for s in tensor_stats(unlearn, retain)}
    assert stats["orth"].cosine == pytest.approx(0.0) and stats["orth"].magnitude == pytest.approx(0.5)
    assert stats["same"].cosine == pytest.approx(1.0) and stats["same"].magnitude == pytest.approx(1.0)
    assert stats["opposite"].cosine == pytest.approx(-1.0) and stats["opposite"].magnitude == pytest.approx(1.0)
    assert stats["silent"].cosine == 0.0 and stats["silent"].magnitude == 0.0 and stats["silent"].numel == 3


def test_tensors_named_on_one_side_only_are_an_error():
    with pytest.raises(ValueError, match="different tensors"):
        tensor_stats({"a": torch.ones(2)}, {"b": torch.ones(2)})


def test_selection_needs_low_cosine_and_high_magnitude_strictly():
    stats = [TensorStats("agree", 0.99, 1.0, 4), TensorStats("weak", 0.1, 1e-6, 4), TensorStats("pick", 0.1, 1.0, 4),
             TensorStats("edge", 0.5, 0.5, 4)]
    assert select_tensors(stats, mu=0.5, sigma=0.5) == ["pick"]  # "edge" sits exactly on both thresholds
    assert select_tensors(stats, mu=1.0, sigma=0.0) == ["agree", "weak", "pick", "edge"]
    assert select_tensors(stats, mu=-1.0, sigma=0.0) == []


def test_quantile_thresholds_match_numpy_and_select_the_expected_share():
    rng = random.Random(0)
    stats = [TensorStats(f"t{i}", rng.uniform(-1, 1), rng.uniform(0, 1e-3), 10) for i in range(101)]
    mu, sigma = thresholds_from_quantiles(stats, 0.3, 0.8)
    assert mu == pytest.approx(np.quantile([s.cosine for s in stats], 0.3))
    assert sigma == pytest.approx(np.quantile([s.magnitude for s in stats], 0.8))
    assert sum(s.cosine < mu for s in stats) == 30 and sum(s.magnitude > sigma for s in stats) == 20
    with pytest.raises(ValueError, match="no trainable LoRA tensors"):
        thresholds_from_quantiles([], 0.5, 0.5)


def test_randomised_answer_changes_at_most_half_keeps_the_end_and_is_seeded():
    answer = list(range(1000, 1020)) + [2]  # 20 answer tokens + EOS
    copy = randomise_answer(answer, vocab_size=50, rng=random.Random(1))
    changed = sum(a != b for a, b in zip(answer, copy))
    assert 1 <= changed <= len(answer) // 2 and copy[-1] == 2 and len(copy) == len(answer)
    assert all(t < 50 for a, t in zip(answer, copy) if a != t)
    assert copy == randomise_answer(answer, vocab_size=50, rng=random.Random(1))
    assert randomise_answer([7], 50, random.Random(0)) == [7]


def test_sequence_nll_is_the_mean_and_sum_of_answer_token_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    labels = torch.tensor([[-100, 3, 1, -100], [-100, -100, -100, -100]])
    # position t predicts label t+1: row 0 scores tokens 3 (from position 0) and 1 (from position 1)
    logp = torch.log_softmax(logits, -1)
    expected = -(logp[0, 0, 3] + logp[0, 1, 1])
    assert sequence_nll(logits, labels, reduction="sum")[0] == pytest.approx(float(expected), rel=1e-6)
    assert sequence_nll(logits, labels)[0] == pytest.approx(float(expected) / 2, rel=1e-6)
    assert sequence_nll(logits, labels)[1] == 0.0  # nothing scored


def test_weighted_loss_is_the_mean_of_weighted_rows():
    nll = torch.tensor([1.0, 2.0, 4.0])
    assert float(weighted_loss(nll, [-0.4, 2.0, 2.0])) == pytest.approx((-0.4 + 4 + 8) / 3)
    with pytest.raises(ValueError, match="2 weights for 3 rows"):
        weighted_loss(nll, [1.0, 1.0])


def test_npo_starts_at_2_log2_over_beta_with_the_gradient_of_ascent_and_fades():
    nll = torch.tensor([5.0], requires_grad=True)
    loss = npo_loss(nll, torch.tensor([5.0]), beta=0.1)
    assert float(loss.detach()) == pytest.approx(2 / 0.1 * math.log(2))
    loss.sum().backward()
    assert float(nll.grad) == pytest.approx(-1.0)  # d/d nll of -nll: gradient ascent's
    far = torch.tensor([500.0], requires_grad=True)
    npo_loss(far, torch.tensor([5.0]), beta=0.1).sum().backward()
    assert abs(float(far.grad)) < 1e-3  # the forget answer is already unlikely: no more push
    with pytest.raises(ValueError, match="beta"):
        npo_loss(nll, nll, beta=0)


def test_each_method_weights_forget_and_retention_rows_as_its_recipe_says():
    assert set(method_names()) >= {"memflex", "ga", "gd", "npo"}
    rows = RowBatch(nll=torch.tensor([1.0, 1.0]), nll_sum=torch.tensor([3.0, 3.0]), reference_nll_sum=torch.tensor([3.0, 0.0]),
                    is_forget=torch.tensor([True, False]))
    assert get_method("memflex").row_losses(rows).tolist() == pytest.approx([-0.4, 2.0])
    assert get_method("ga").row_losses(rows).tolist() == pytest.approx([-1.0, 0.0])
    assert get_method("gd").row_losses(rows).tolist() == pytest.approx([-1.0, 1.0])
    assert get_method("npo").row_losses(rows).tolist() == pytest.approx([20 * math.log(2), 1.0])
    assert get_method("memflex").localised and not get_method("gd").localised
    with pytest.raises(ValueError, match="reference"):
        get_method("npo").row_losses(RowBatch(rows.nll, rows.nll_sum, None, rows.is_forget))
    with pytest.raises(ValueError, match="choose one of memflex"):
        get_method("rmu")


def test_a_model_without_lora_able_layers_is_refused_naming_the_model():
    """A fresh LoRA needs linear layers: a model with none gets an error that names --model, not a peft traceback."""
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

    from eco_rails.unlearn import UnlearnError, UnlearnSettings
    from eco_rails.unlearn.train import _trainable_lora

    class EmbeddingOnly(PreTrainedModel):
        config_class = PretrainedConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = torch.nn.Embedding(16, 4)

    with pytest.raises(UnlearnError, match="my-embedding-model has no layers LoRA can adapt.*--model"):
        _trainable_lora(EmbeddingOnly(PretrainedConfig()), None, UnlearnSettings(method="ga"), model_name="my-embedding-model")
