"""How a question-answer pair becomes training tokens: prompt ids (as the provider renders a prompt) and
answer ids (as the scorer encodes a candidate), and how a batch of them is padded.

Shared by knowledge injection and weight unlearning, so both train on the very token sequences the
benchmarks later score and the provider serves.
"""

from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict

__all__ = ["Example", "collate", "encode_example", "eos_token_id", "plain_prompt"]


class Example(BaseModel):
    """One question-answer pair."""

    model_config = ConfigDict(frozen=True)

    question: str
    answer: str


def plain_prompt(question: str, fmt: str) -> str:
    """The prompt text a question becomes: itself (chat template) or ``question\\n\\n`` (plain)."""
    return question if fmt == "chat" else f"{question}\n\n"


def encode_example(tokenizer: Any, question: str, answer: str, fmt: str, eos_id: int) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) as the model sees them when scored or served.

    ``chat``: the prompt is the chat template with the generation prompt (as the provider renders a user
    message), the answer ends with the end-of-turn token. ``plain``: ``question\\n\\n`` then the answer
    and EOS, no template (KnowUnDo's fine-tuning text). Answer tokens are encoded on their own, as the
    scorer encodes a candidate answer, so training and scoring see the same ids.
    """
    from eco_rails.engine.prompting import render_prompt

    prompt_ids = list(render_prompt(tokenizer, plain_prompt(question, fmt), use_chat_template=fmt == "chat").input_ids)
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [eos_id]
    return prompt_ids, answer_ids


def eos_token_id(model: Any, tokenizer: Any) -> int:
    """The token that ends an answer: the generation config's EOS (``<|im_end|>`` for chat models)."""
    eos = model.generation_config.eos_token_id
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the model has no EOS token; cannot mark where an answer ends")
    return int(eos)


def collate(items: Sequence[tuple[list[int], list[int]]], pad_id: int, max_length: int):
    """Right-padded ``(input_ids, labels, attention_mask)``; labels are -100 except on answer tokens."""
    import torch

    seqs = [(p + a)[:max_length] for p, a in items]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, ((prompt, _), seq) in enumerate(zip(items, seqs)):
        ids[row, :len(seq)] = torch.tensor(seq)
        mask[row, :len(seq)] = 1
        labels[row, len(prompt):len(seq)] = torch.tensor(seq[len(prompt):])
    return ids, labels, mask
