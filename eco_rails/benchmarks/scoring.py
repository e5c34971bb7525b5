"""Put one question to one method: teacher-forced scores of candidate answers, and a greedy answer.

Scores and answers go through :meth:`EcoEngine.prepare` / :meth:`EcoEngine.generate`, the provider's own
path: a corrupted condition corrupts the flagged prompt's embeddings exactly as a served request would.
A refused condition (the ``refuse`` baseline) answers with the refusal text and gives every candidate
probability zero: the method never says the answer, right or wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from eco_rails.benchmarks.inject import plain_prompt
from eco_rails.benchmarks.methods import REFUSAL, Condition


@dataclass(frozen=True)
class Answer:
    """A method's response to one question."""

    mean_nll: tuple[float, ...]  # per candidate answer; inf when refused
    tokens: tuple[int, ...]
    hits: tuple[int, ...]
    text: str | None  # greedy answer, when generated
    flagged: bool
    refused: bool


def _prompt_and_system(question: str, condition: Condition, fmt: str) -> tuple[str, str | None]:
    """The prompt text and system prompt for a question; without a chat template (``plain``) the system
    prompt has nowhere to go but before the question, as text."""
    prompt, system_prompt = plain_prompt(question, fmt), condition.system_prompt
    if system_prompt and fmt != "chat":
        return f"{system_prompt}\n\n{prompt}", None
    return prompt, system_prompt


def ask(
    condition: Condition,
    question: str,
    candidates: Sequence[str],
    *,
    generate: bool,
    fmt: str = "chat",
    max_new_tokens: int = 64,
) -> Answer:
    """Score ``candidates`` as answers to ``question`` and (if ``generate``) answer it greedily."""
    from eco_rails.engine.generation import GenerationSettings
    from eco_rails.evaluation.scoring import score_choices

    engine = condition.engine
    chat = fmt == "chat"
    prompt, system_prompt = _prompt_and_system(question, condition, fmt)
    if condition.refused:  # no answer token is ever produced: every one counts as a miss
        n = len(candidates)
        tokens = tuple(len(engine.tokenizer(c, add_special_tokens=False)["input_ids"]) or 1 for c in candidates)
        return Answer((math.inf,) * n, tokens, (0,) * n, REFUSAL if generate else None, True, True)
    scores = score_choices(engine, prompt, list(candidates), flag=condition.flag, corruption=condition.corruption,
                           system_prompt=system_prompt, use_chat_template=chat)
    text = None
    if generate:
        result = engine.generate(prompt, flag=condition.flag, corruption=condition.corruption,
                                 settings=GenerationSettings(max_new_tokens=max_new_tokens),
                                 system_prompt=system_prompt, use_chat_template=chat)
        text = result.text.strip()
    return Answer(tuple(scores.mean_nll), scores.tokens, scores.hits, text, condition.corrupted, False)


def generate_batch(engine, prompts: Sequence[tuple[str, Condition]], *, fmt: str, max_new_tokens: int) -> list[str]:
    """Greedy answers for many questions in one left-padded batch (a CPU decodes 16 rows in little more
    time than one: the weights are read once per step). Each row carries its own prompt embeddings,
    corrupted or not, exactly as :meth:`EcoEngine.prepare` builds them for a single request; batching
    may flip a near-tie token where the single-request path would not (different summation order)."""
    import torch

    if not prompts:
        return []
    embed = engine.model.get_input_embeddings()
    rows = []
    for question, condition in prompts:
        prompt, system_prompt = _prompt_and_system(question, condition, fmt)
        prepared = engine.prepare(prompt, flag=condition.flag, corruption=condition.corruption, max_new_tokens=max_new_tokens,
                                  use_chat_template=fmt == "chat", system_prompt=system_prompt)
        with torch.inference_mode():
            rows.append(prepared.inputs_embeds[0] if prepared.inputs_embeds is not None else embed(prepared.input_ids)[0])
    width = max(r.shape[0] for r in rows)
    embeds = rows[0].new_zeros((len(rows), width, rows[0].shape[1]))
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=engine.device)
    for i, r in enumerate(rows):
        embeds[i, width - r.shape[0]:] = r
        mask[i, width - r.shape[0]:] = 1
    eos = sorted(engine._eos_ids())
    with torch.inference_mode():
        out = engine.model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=engine.pad_token_id, eos_token_id=eos or None)
    texts = []
    for ids in out.tolist():
        cut = next((k for k, t in enumerate(ids) if t in eos), len(ids))
        texts.append(engine.tokenizer.decode(ids[:cut], skip_special_tokens=True).strip())
    return texts


def ask_many(
    jobs: Sequence[tuple[Condition, str, Sequence[str]]],
    *,
    generate: Sequence[bool] | bool = True,
    fmt: str = "chat",
    max_new_tokens: int = 64,
    batch_size: int = 16,
    advance=None,
) -> list[Answer]:
    """:func:`ask` for many ``(condition, question, candidates)``: scores one by one, answers in batches."""
    flags = [generate] * len(jobs) if isinstance(generate, bool) else list(generate)
    scored = []
    for (condition, question, candidates), _ in zip(jobs, flags):
        scored.append(ask(condition, question, candidates, generate=False, fmt=fmt))
        if advance:
            advance()
    texts: dict[int, str] = {}
    pending = [i for i, (c, _, _) in enumerate(jobs) if flags[i] and not c.refused]
    by_engine: dict[int, list[int]] = {}
    for i in pending:
        by_engine.setdefault(id(jobs[i][0].engine), []).append(i)
    for indices in by_engine.values():
        engine = jobs[indices[0]][0].engine
        # similar prompt lengths together: less padding
        indices = sorted(indices, key=lambda i: len(jobs[i][1]))
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            answers = generate_batch(engine, [(jobs[i][1], jobs[i][0]) for i in chunk], fmt=fmt, max_new_tokens=max_new_tokens)
            texts.update(zip(chunk, answers))
    out = []
    for i, a in enumerate(scored):
        text = REFUSAL if (flags[i] and a.refused) else texts.get(i)
        out.append(Answer(a.mean_nll, a.tokens, a.hits, text, a.flagged, a.refused))
    return out
