"""Likelihood metrics of a (possibly corrupted) prompt: multiple-choice accuracy, answer probability,
truth ratio, and the perplexity of generated text. Forward passes only.

Each choice is scored as the assistant's reply to the prompt (the prompt rendered with the model's chat
template, exactly as the provider renders it): its summed log-probability and token count. All choices of
one question go through the model in one padded batch; the prompt's embeddings (corrupted or not) are
shared, the choice tokens are embedded normally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from eco_rails.engine.corruption import CorruptionSpec
from eco_rails.engine.flags import FlagDecision
from eco_rails.engine.generation import EcoEngine


@dataclass(frozen=True)
class ChoiceScores:
    logprob: tuple[float, ...]  # summed log-probability of each choice
    tokens: tuple[int, ...]
    hits: tuple[int, ...] = ()  # teacher-forced argmax hits per choice (KnowUnDo's token accuracy)

    @property
    def mean_nll(self) -> list[float]:
        """Mean token negative log-likelihood of each choice."""
        return [-lp / max(n, 1) for lp, n in zip(self.logprob, self.tokens)]

    @property
    def normalized(self) -> list[float]:
        """Length-normalised log-likelihood (mean log-probability per token) of each choice."""
        return [lp / max(n, 1) for lp, n in zip(self.logprob, self.tokens)]

    def predicted(self) -> int:
        norm = self.normalized
        return max(range(len(norm)), key=norm.__getitem__)

    def answer_probability(self, answer: int) -> float:
        """exp(-mean token loss) of the right answer (TOFU's answer probability)."""
        return math.exp(self.normalized[answer])

    def truth_ratio(self, answer: int) -> float:
        """Geometric-mean (length-normalised) probability of the wrong choices over that of the right one."""
        norm = self.normalized
        wrong = [v for i, v in enumerate(norm) if i != answer]
        return math.exp(sum(wrong) / len(wrong) - norm[answer])


@torch.inference_mode()
def score_choices(
    engine: EcoEngine,
    prompt: str,
    choices: Sequence[str],
    *,
    flag: FlagDecision | None = None,
    corruption: CorruptionSpec | None = None,
    system_prompt: str | None = None,
    use_chat_template: bool = True,
) -> ChoiceScores:
    prepared = engine.prepare(prompt, flag=flag, corruption=corruption, system_prompt=system_prompt, use_chat_template=use_chat_template)
    embed = engine.model.get_input_embeddings()
    prompt_embeds = prepared.inputs_embeds[0] if prepared.inputs_embeds is not None else embed(prepared.input_ids)[0]
    choice_ids = [engine.tokenizer(c, add_special_tokens=False)["input_ids"] or [engine.pad_token_id] for c in choices]
    n_prompt, width = prompt_embeds.shape[0], max(len(c) for c in choice_ids)
    batch = len(choices)
    embeds = prompt_embeds.new_zeros((batch, n_prompt + width, prompt_embeds.shape[1]))
    mask = torch.zeros((batch, n_prompt + width), dtype=torch.long, device=engine.device)
    for i, ids in enumerate(choice_ids):
        embeds[i, :n_prompt] = prompt_embeds
        embeds[i, n_prompt:n_prompt + len(ids)] = embed(torch.tensor(ids, device=engine.device))
        mask[i, :n_prompt + len(ids)] = 1
    logits = engine.model(inputs_embeds=embeds, attention_mask=mask).logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    totals, hits = [], []
    for i, ids in enumerate(choice_ids):
        positions = torch.arange(n_prompt - 1, n_prompt - 1 + len(ids), device=engine.device)
        gold = torch.tensor(ids, device=engine.device)
        totals.append(float(logprobs[i, positions, gold].sum()))
        hits.append(int((logprobs[i, positions].argmax(-1) == gold).sum()))
    return ChoiceScores(tuple(totals), tuple(len(ids) for ids in choice_ids), tuple(hits))


@torch.inference_mode()
def continuation_perplexity(engine: EcoEngine, prompt: str, continuation: str) -> float:
    """Perplexity of ``continuation`` as the clean model's reply to ``prompt`` (a fluency measure)."""
    if not continuation.strip():
        return float("nan")
    scores = score_choices(engine, prompt, [continuation])
    return math.exp(-scores.normalized[0])
