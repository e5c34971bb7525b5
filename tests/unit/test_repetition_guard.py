"""The flagged answers' repetition guard (pure n-gram math) and which text a flagged chat corrupts."""

from __future__ import annotations

import math

import pytest
import torch

from eco_rails.engine.flags import FlagDecision
from eco_rails.engine.prompting import RenderedPrompt, flagged_char_spans
from eco_rails.engine.repetition import RepetitionGuard, TokenFolding, banned_next_tokens, fold_classes, ngram_table


def test_ngram_table_maps_each_prefix_to_what_followed_and_never_spans_two_sequences():
    table = ngram_table([[1, 2, 3, 2, 3, 4], [9, 1]], 3)
    assert table == {(1, 2): {3}, (2, 3): {2, 4}, (3, 2): {3}}
    assert ngram_table([[3, 4], [9, 1]], 2) == {(3,): {4}, (9,): {1}}, "4 -> 9 would join two answers"


def test_a_loop_in_the_answer_is_blocked_at_its_second_turn():
    answer = [5, 6, 7, 8, 5, 6, 7]  # "The original sentence is: The original sentence"
    assert banned_next_tokens(answer, 4) == {8}
    assert banned_next_tokens([5, 6, 7, 8, 5, 6, 9], 4) == set()


def test_sentences_of_an_earlier_answer_cannot_be_copied_but_the_first_tokens_are_free():
    history = ngram_table([[10, 11, 12, 13, 14]], 3)
    assert banned_next_tokens([10, 11], 3, history) == {12}
    assert banned_next_tokens([10], 3, history) == set(), "an answer may start the way an earlier one started"
    assert banned_next_tokens([], 3, history) == set()


def test_guard_sets_banned_scores_to_minus_infinity_for_the_generated_part_only():
    guard = RepetitionGuard(3, history=[[7, 8, 9]])
    prompt = torch.tensor([[7, 8, 1, 2]])  # the prompt's own n-grams (7, 8 -> 1) are not blocked
    scores = guard(prompt, torch.zeros(1, 12))
    assert not torch.isinf(scores).any()
    scores = guard(torch.tensor([[7, 8, 1, 2, 7, 8]]), torch.zeros(1, 12))
    assert math.isinf(scores[0, 9].item()) and torch.isinf(scores).sum().item() == 1


def test_guard_rejects_an_n_that_blocks_single_tokens():
    with pytest.raises(ValueError, match="n >= 2"):
        RepetitionGuard(1)


def test_fold_classes_join_tokens_that_differ_in_case_or_a_leading_space_only():
    classes = fold_classes(["The", " the", " THE", "game", " Game", " ", "\n", "  "])
    assert classes[0] == classes[1] == classes[2] and classes[3] == classes[4] and classes[0] != classes[3]
    assert len({classes[5], classes[6], classes[7]}) == 3, "whitespace tokens stay apart: a newline is not a space"


def test_a_folding_guard_blocks_a_case_variant_of_a_loop_and_every_spelling_of_the_next_word():
    #         0      1        2       3      4       5      6      7        8 (past the class table)
    pieces = ["The", " game", " is", " fun", " the", " Game", " Fun", " FUN"]
    guard = RepetitionGuard(3, folding=TokenFolding(fold_classes(pieces)))
    answer = torch.tensor([[0, 1, 2, 3, 4, 5, 2]])  # "The game is fun the Game is"
    scores = guard(answer[:, :0], torch.zeros(1, 9))
    scores = guard(answer, torch.zeros(1, 9))
    assert {i for i in range(9) if math.isinf(scores[0, i].item())} == {3, 6, 7}, "fun, Fun and FUN after 'Game is'"
    plain = RepetitionGuard(3)
    plain(answer[:, :0], torch.zeros(1, 9))
    assert not torch.isinf(plain(answer, torch.zeros(1, 9))).any(), "the token guard lets the case variant through"


def test_a_folding_guard_reads_earlier_answers_and_ids_past_its_table_as_themselves():
    guard = RepetitionGuard(3, history=[[0, 1, 8]], folding=TokenFolding(fold_classes(["The", " game", " the"])))
    scores = guard(torch.tensor([[5]])[:, :0], torch.zeros(1, 10))
    scores = guard(torch.tensor([[2, 1]]), torch.zeros(1, 10))  # "the game" -> the earlier answer's id 8 follows
    assert {i for i in range(10) if math.isinf(scores[0, i].item())} == {8}


def _rendered(messages: list[dict[str, str]]) -> RenderedPrompt:
    """A hand-built rendering: each message on its own line, one token per character."""
    text, spans = "", []
    for m in messages:
        text += f"{m['role']}: "
        spans.append((len(text), len(text) + len(m["content"])))
        text += m["content"] + "\n"
    return RenderedPrompt(text, list(range(len(text))), [(i, i + 1) for i in range(len(text))], messages, spans)


CHAT = [
    {"role": "user", "content": "Who is the headmaster of Hogwarts?"},
    {"role": "assistant", "content": "A classic example of a linguistic fallacy."},
    {"role": "user", "content": "What is the capital of France?"},
]


def test_a_flagged_earlier_message_brings_the_answer_it_got_along():
    r = _rendered(CHAT)
    spans = flagged_char_spans(r, FlagDecision.flag(CHAT[0]["content"]))
    assert [r.text[a:b] for a, b in spans] == [CHAT[0]["content"], CHAT[1]["content"]]


def test_a_piece_of_a_message_corrupts_only_that_piece_and_the_latest_message_has_no_answer_yet():
    r = _rendered(CHAT)
    assert [r.text[a:b] for a, b in flagged_char_spans(r, FlagDecision.flag("Hogwarts"))] == ["Hogwarts"]
    assert [r.text[a:b] for a, b in flagged_char_spans(r, FlagDecision.flag())] == [CHAT[2]["content"]]
    assert [r.text[a:b] for a, b in flagged_char_spans(r, FlagDecision.flag(CHAT[2]["content"]))] == [CHAT[2]["content"]]


def _answer_penalty(penalty: float, prompt_length: int):
    """The processor flagged_repetition_penalty adds (EcoEngine._generate_kwargs): Hugging Face's, prompt ignored."""
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    return RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=prompt_length)


def test_penalty_makes_a_said_token_less_likely_whatever_the_sign_of_its_logit():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    assert _answer_penalty(2.0, 1)(torch.tensor([[3, 0, 1, 1]]), logits.clone()).tolist() == [[1.0, -2.0, 0.5, 3.0]]
    assert _answer_penalty(1.0, 1)(torch.tensor([[3, 0, 1]]), logits.clone()).tolist() == logits.tolist(), "1 is off"
    from eco_rails.engine.generation import GenerationSettings

    with pytest.raises(ValueError, match="flagged_repetition_penalty"):  # below 1 would favour repeats
        GenerationSettings(flagged_repetition_penalty=0.9)


def test_answer_penalty_leaves_the_prompt_tokens_alone_and_follows_the_rule_per_row():
    logits = torch.tensor([[1.0, 2.0, -1.0, 4.0, 0.5, 0.0]] * 2)
    prompt = torch.tensor([[4, 3], [4, 3]])  # the user's tokens 4 and 3: never penalised
    assert torch.equal(_answer_penalty(2.0, 2)(prompt, logits.clone()), logits)
    answer = torch.tensor([[4, 3, 1, 2, 2], [4, 3, 3, 3, 0]])
    out = _answer_penalty(2.0, 2)(answer, logits.clone())
    assert out[0].tolist() == [1.0, 1.0, -2.0, 4.0, 0.5, 0.0]
    assert out[1].tolist() == [0.5, 2.0, -1.0, 2.0, 0.5, 0.0]
    assert out[0, 4].item() == 0.5 and out[1, 4].item() == 0.5, "4 is only in the prompt"
