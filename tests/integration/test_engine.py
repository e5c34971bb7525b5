"""The ECO engine on the real embedded SmolLM2-135M-Instruct. (Settings checks that need no model: tests/unit/test_engine.py.)"""

from __future__ import annotations

import asyncio
import copy
import threading

import pytest
import torch

from eco_rails import CorruptionSpec, FlagDecision, GenerationSettings
from eco_rails.engine.prompting import render_prompt
from eco_rails.errors import PromptError, SpanNotFoundError

QUESTION = "Who wrote the Harry Potter books?"
GREEDY = GenerationSettings(max_new_tokens=24)


def plain_hf_greedy(engine, messages, max_new_tokens=24, **hf_settings) -> str:
    """Reference: the model's own chat template and plain `model.generate`, no eco-rails code at all."""
    ids = engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    if not isinstance(ids, torch.Tensor):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    out = engine.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=engine.tokenizer.pad_token_id, **hf_settings)
    return engine.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_unflagged_output_is_bit_identical_to_plain_hf_generate(engine):
    for messages in (
        [{"role": "user", "content": QUESTION}],
        [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is the capital of Italy?"}],
    ):
        assert engine.generate(messages, settings=GREEDY).text == plain_hf_greedy(engine, messages)


def test_anti_repetition_settings_keep_unflagged_output_identical_to_plain_hf_generate(engine):
    messages = [{"role": "user", "content": "List five fruits and say why each is healthy."}]
    settings = GenerationSettings(max_new_tokens=48, repetition_penalty=1.3, no_repeat_ngram_size=3)
    tuned = engine.generate(messages, settings=settings).text
    assert tuned == plain_hf_greedy(engine, messages, 48, repetition_penalty=1.3, no_repeat_ngram_size=3)
    assert tuned != engine.generate(messages, settings=GenerationSettings(max_new_tokens=48)).text, "the settings take effect"


def test_a_corrupted_prompt_never_gets_an_empty_answer(engine):
    from eco_rails.evaluation.fluency import is_empty

    for strength in (0.5, 5.0, 50.0):
        spec = CorruptionSpec(method="rand_noise", strength=strength)
        result = engine.generate(QUESTION, flag=FlagDecision.flag(), corruption=spec, settings=GREEDY)
        assert result.completion_tokens >= 8 and not is_empty(result.text), (strength, result.text)


def test_clean_answer_knows_the_fact_and_flagged_answer_does_not(engine):
    clean = engine.generate(QUESTION, settings=GREEDY)
    assert "Rowling" in clean.text and not clean.flagged
    flagged = engine.generate(QUESTION, flag=FlagDecision.flag(), settings=GREEDY)
    assert flagged.flagged and flagged.corrupted_tokens > 0
    assert flagged.text != clean.text
    assert "Rowling" not in flagged.text


def test_flagged_with_zero_strength_equals_clean(engine):
    """The inputs_embeds path is exactly equivalent to the input_ids path when nothing is changed."""
    zero = CorruptionSpec(method="rand_noise", strength=0.0)
    unguarded = GenerationSettings(max_new_tokens=24, flagged_no_repeat_ngram_size=0)
    assert engine.generate(QUESTION, flag=FlagDecision.flag(), corruption=zero, settings=unguarded).text == \
        engine.generate(QUESTION, settings=GREEDY).text


def test_the_answer_only_penalty_changes_flagged_answers_and_never_unflagged_ones(engine):
    """flagged_repetition_penalty reaches flagged generation only: an unflagged answer is still plain greedy
    generation, and a flagged one, whose answer repeats tokens, is decoded differently with it (the prompt's own
    tokens are not penalised, see the unit tests)."""
    on = GenerationSettings(max_new_tokens=48, flagged_repetition_penalty=1.3)
    off = GenerationSettings(max_new_tokens=48)
    assert engine.generate(QUESTION, settings=on).text == engine.generate(QUESTION, settings=off).text
    spec = CorruptionSpec(strength=0.2)
    flagged_off = engine.generate(QUESTION, flag=FlagDecision.flag(), corruption=spec, settings=off).text
    flagged_on = engine.generate(QUESTION, flag=FlagDecision.flag(), corruption=spec, settings=on).text
    assert flagged_on.strip() and flagged_on != flagged_off


def _answer_ids(engine, chat, flag, settings):
    prepared = engine.prepare(chat, flag=flag, corruption=CorruptionSpec(strength=0.2), max_new_tokens=settings.max_new_tokens)
    with torch.inference_mode():
        out = engine.model.generate(**engine._generate_kwargs(prepared, settings))
    return prepared, out[0, prepared.input_ids.shape[1]:].tolist()


def _ngrams(ids, n=4):
    return [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]


def test_a_flagged_answer_neither_loops_nor_copies_an_earlier_answer(engine):
    earlier = "The original sentence is: the word is a classic example of a linguistic fallacy, the original sentence is."
    chat = [{"role": "user", "content": "Who is the headmaster of Hogwarts?"}, {"role": "assistant", "content": earlier},
            {"role": "user", "content": "Which house is the bravest at Hogwarts, and why?"}]
    flag = FlagDecision.flag(chat[0]["content"], chat[2]["content"])
    prepared, ids = _answer_ids(engine, chat, flag, GenerationSettings(max_new_tokens=96))
    grams = _ngrams(ids)
    assert len(grams) == len(set(grams)), "no 4-gram twice in the answer"
    history = [t for t, hit in zip(prepared.input_ids[0].tolist(), prepared.corrupted_mask) if hit]
    assert not set(grams) & set(_ngrams(engine.tokenizer(earlier, add_special_tokens=False)["input_ids"])), \
        "nothing copied from the earlier answer"
    assert len(history) > len(engine.tokenizer(chat[2]["content"])["input_ids"]) * 2, "the earlier exchange is corrupted too"


def test_an_ignore_case_guard_blocks_case_variants_of_the_answers_own_ngrams_and_of_an_earlier_answer(engine):
    earlier = "The Game of Life is the game of life. THE GAME OF LIFE is what the game is called."
    chat = [{"role": "user", "content": "What is the sport played on broomsticks at Hogwarts?"},
            {"role": "assistant", "content": earlier},
            {"role": "user", "content": "And what is the name of the game they play, and who plays it?"}]
    flag = FlagDecision.flag(chat[0]["content"], chat[2]["content"])
    settings = GenerationSettings(max_new_tokens=96, flagged_repetition_ignore_case=True)
    _, ids = _answer_ids(engine, chat, flag, settings)
    classes = engine._token_folding().classes
    assert len(classes) == len(engine.tokenizer) and classes[engine.tokenizer.convert_tokens_to_ids("The")] == \
        classes[engine.tokenizer(" the", add_special_tokens=False)["input_ids"][0]]
    folded = _ngrams([classes[t] for t in ids])
    assert len(ids) > 8 and len(folded) == len(set(folded)), "no 4-gram twice in the answer, whatever its case"
    earlier_ids = engine.tokenizer(earlier, add_special_tokens=False)["input_ids"]
    assert not set(folded) & set(_ngrams([classes[t] for t in earlier_ids])), "nor one of the earlier answer's, in any case"


def test_the_answer_to_a_flagged_earlier_turn_is_corrupted_with_it_and_nothing_else_is(engine):
    chat = [{"role": "user", "content": "Who is the headmaster of Hogwarts?"}, {"role": "assistant", "content": "Nobody knows."},
            {"role": "user", "content": "What is the capital of France?"}]
    prepared = engine.prepare(chat, flag=FlagDecision.flag(chat[0]["content"]))
    r = prepared.rendered
    text = "".join(r.text[s:e] for (s, e), m in zip(r.offsets, prepared.corrupted_mask) if m)
    assert text == chat[0]["content"] + chat[1]["content"]


def test_only_the_flagged_span_embeddings_change(engine):
    chat = [
        {"role": "user", "content": "Tell me about owls."},
        {"role": "assistant", "content": "Owls are birds."},
        {"role": "user", "content": "What is the name of Harry Potter's owl?"},
    ]
    prepared = engine.prepare(chat, flag=FlagDecision.flag(), corruption=CorruptionSpec(strength=1.0))
    clean = engine.model.get_input_embeddings()(prepared.input_ids)[0]
    corrupted = prepared.inputs_embeds[0]
    mask = torch.tensor(prepared.corrupted_mask)
    changed = (corrupted != clean).any(dim=1)
    assert torch.equal(changed, mask), "exactly the flagged tokens change"
    rendered = prepared.rendered
    flagged_text = "".join(rendered.text[s:e] for (s, e), m in zip(rendered.offsets, mask.tolist()) if m)
    assert flagged_text == chat[-1]["content"], "the span is the latest user message, token-exact"
    assert "Tell me about owls." in rendered.text and "owls" not in flagged_text


def test_explicit_span_in_an_earlier_turn(engine):
    chat = [
        {"role": "user", "content": "I am reading about Hogwarts."},
        {"role": "assistant", "content": "Nice."},
        {"role": "user", "content": "Who is its headmaster?"},
    ]
    prepared = engine.prepare(chat, flag=FlagDecision.flag("about Hogwarts"))
    r = prepared.rendered
    text = "".join(r.text[s:e] for (s, e), m in zip(r.offsets, prepared.corrupted_mask) if m)
    assert text.strip() == "about Hogwarts"
    with pytest.raises(SpanNotFoundError, match="does not occur"):
        engine.prepare(chat, flag=FlagDecision.flag("Voldemort"))


def test_whole_prompt_option_corrupts_every_token(engine):
    prepared = engine.prepare(QUESTION, flag=FlagDecision.flag(whole_prompt=True))
    assert all(prepared.corrupted_mask)


def test_role_word_as_content_is_located_in_content_not_header(engine):
    prepared = engine.prepare([{"role": "user", "content": "user"}], flag=FlagDecision.flag())
    r = prepared.rendered
    start, end = r.content_spans[-1]
    assert r.text[start:end] == "user" and r.text[start - 1] == "\n" and r.text[end:].startswith("<|im_end|>")
    assert sum(prepared.corrupted_mask) == 1


def test_trimming_chat_template_is_handled(engine):
    tok = copy.deepcopy(engine.tokenizer)
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    rendered = render_prompt(tok, [{"role": "user", "content": "  padded question  "}])
    start, end = rendered.content_spans[0]
    assert rendered.text[start:end] == "padded question"


def test_corruption_is_deterministic_per_prompt_and_differs_between_prompts(engine):
    spec = CorruptionSpec(strength=0.5)
    a1 = engine.prepare(QUESTION, flag=FlagDecision.flag(), corruption=spec).inputs_embeds
    a2 = engine.prepare(QUESTION, flag=FlagDecision.flag(), corruption=spec).inputs_embeds
    b = engine.prepare(QUESTION + " ", flag=FlagDecision.flag(), corruption=spec).inputs_embeds
    assert torch.equal(a1, a2)
    n = min(a1.shape[1], b.shape[1])
    assert not torch.equal(a1[:, :n], b[:, :n])


@pytest.mark.parametrize("flagged", [False, True])
def test_streaming_yields_the_same_text_as_generate(engine, flagged):
    flag = FlagDecision.flag() if flagged else None
    settings = GenerationSettings(max_new_tokens=30)
    deltas = list(engine.stream(QUESTION, flag=flag, settings=settings))
    assert len(deltas) > 3
    assert "".join(deltas) == engine.generate(QUESTION, flag=flag, settings=settings).text


def test_stop_sequences_cut_output_in_both_paths(engine):
    full = engine.generate(QUESTION, settings=GenerationSettings(max_new_tokens=30)).text
    stop = "Rowling"
    settings = GenerationSettings(max_new_tokens=30, stop=(stop,))
    result = engine.generate(QUESTION, settings=settings)
    assert result.text == full[: full.index(stop)] and result.finish_reason == "stop"
    assert "".join(engine.stream(QUESTION, settings=settings)) == result.text


def test_sampling_is_reproducible_with_a_seed(engine):
    settings = GenerationSettings(max_new_tokens=16, temperature=0.9, top_p=0.95, seed=11)
    assert engine.generate(QUESTION, settings=settings).text == engine.generate(QUESTION, settings=settings).text


def test_closing_a_stream_early_stops_generation(engine):
    stream = engine.stream(QUESTION, settings=GenerationSettings(max_new_tokens=200))
    next(stream)
    stream.close()  # joins the worker thread; would hang for ~15 s of generation if cancel did not work
    assert not any(t.name == "eco-generate" and t.is_alive() for t in threading.enumerate())


def test_concurrent_mixed_requests_stay_isolated(engine):
    prompts = [QUESTION, "What is the capital of France?", "Who is Ron Weasley?", "Name a primary colour."]
    flags = [True, False, True, False]
    expected = [engine.generate(p, flag=FlagDecision.flag() if f else None, settings=GREEDY).text for p, f in zip(prompts, flags)]

    async def run_all():
        jobs = [engine.agenerate(p, flag=FlagDecision.flag() if f else None, settings=GREEDY) for p, f in zip(prompts * 2, flags * 2)]
        return await asyncio.gather(*jobs)

    results = asyncio.run(run_all())
    assert [r.text for r in results] == expected * 2
    assert [r.flagged for r in results] == flags * 2
    # the same text sent concurrently flagged and unflagged: each gets its own treatment
    async def same_text():
        return await asyncio.gather(engine.agenerate(QUESTION, flag=FlagDecision.flag(), settings=GREEDY),
                                    engine.agenerate(QUESTION, settings=GREEDY))
    corrupted, clean = asyncio.run(same_text())
    assert corrupted.text == expected[0] and "Rowling" in clean.text


@pytest.mark.parametrize("prompt", ["", "   ", [], [{"role": "user", "content": ""}]])
def test_empty_prompts_are_rejected(engine, prompt):
    with pytest.raises(PromptError, match="empty|no messages"):
        engine.generate(prompt, settings=GREEDY)


def test_bad_role_is_rejected(engine):
    with pytest.raises(PromptError, match=r"messages\[0\].role"):
        engine.generate([{"role": "wizard", "content": "hi"}])


def test_prompt_longer_than_context_window_is_a_clear_error(engine):
    long_prompt = "word " * (engine.context_window + 10)
    with pytest.raises(PromptError, match="context window is 8192 tokens"):
        engine.generate(long_prompt, settings=GREEDY)


def test_min_new_tokens_keeps_generating_past_the_natural_end(engine):
    # (The benchmarks rely on this to compare equal-length answers; they check the flagged path's count too.)
    question = "What is the capital of France?"
    natural = engine.generate(question, settings=GenerationSettings(max_new_tokens=96))
    assert natural.finish_reason == "stop", "precondition: the answer ends on its own"
    n = natural.completion_tokens + 6
    forced = engine.generate(question, settings=GenerationSettings(max_new_tokens=n, min_new_tokens=n))
    assert forced.completion_tokens == n and forced.text.startswith(natural.text.rstrip())
