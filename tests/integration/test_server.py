"""`nemoguardrails server --config rails_configs` unchanged, answering OpenAI-style requests on loopback,
with concurrent mixed conversations and no cross-talk."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO
from tests.integration.loopback import HANG_GUARD_S, free_port, serving
from tests.integration.test_rail import CONFIGS, HP_QUESTIONS, HP_WORDS, OTHER_QUESTIONS, rails_for

# The server tests guard against a real hang (a server that never starts, or a request that never gets an
# answer, would otherwise hang the suite for ever). The limits are generous so that a loaded machine never
# fails on them: eight concurrent generations on 2 CPU cores can take minutes.


def _post(base: str, body: dict, timeout: float = HANG_GUARD_S) -> dict:
    request = urllib.request.Request(f"{base}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(hp_artifact, tmp_path_factory):
    port = free_port()
    command = [sys.executable, "-m", "nemoguardrails", "server", "--config", str(CONFIGS), "--port", str(port), "--disable-chat-ui"]
    env = {**os.environ, "NEMO_GUARDRAILS_NO_USAGE_STATS": "1"}
    with serving(command, port, "/v1/rails/configs", tmp_path_factory.mktemp("server") / "server.log", env=env, cwd=REPO) as running:
        yield running


def chat(base: str, config_id: str, messages: list[dict]) -> str:
    body = {"model": "smollm2-135m", "messages": messages, "guardrails": {"config_id": config_id}}
    return _post(base, body)["choices"][0]["message"]["content"]


def test_server_lists_the_shipped_configs(server):
    _, configs = server
    assert {"harry_potter", "harry_potter_colang2", "smollm2_plain"} <= {c["id"] for c in configs}


def test_concurrent_mixed_requests_without_cross_talk(server):
    base, _ = server
    follow_up = "Tell me more about him."
    conversations = {
        # the same latest text; only the first conversation is in scope, because of its earlier turn
        "flagged_by_history": [{"role": "user", "content": "Who is Dumbledore?"},
                               {"role": "assistant", "content": "He is a character in a book."},
                               {"role": "user", "content": follow_up}],
        "clean_history": [{"role": "user", "content": "Who is Albert Einstein?"},
                          {"role": "assistant", "content": "He is a character in a book."},
                          {"role": "user", "content": follow_up}],
        "hp": [{"role": "user", "content": HP_QUESTIONS[0]}],
        "other": [{"role": "user", "content": OTHER_QUESTIONS[0]}],
    }
    hp, plain = rails_for(CONFIGS / "harry_potter"), rails_for(CONFIGS / "smollm2_plain")
    expected = {name: hp.generate(messages=msgs)["content"] for name, msgs in conversations.items()}
    assert expected["clean_history"] == plain.generate(messages=conversations["clean_history"])["content"]
    assert expected["flagged_by_history"] != expected["clean_history"]
    assert expected["other"] == plain.generate(messages=conversations["other"])["content"]

    jobs = list(conversations.items()) * 2
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(lambda job: (job[0], chat(base, "harry_potter", job[1])), jobs))
    for name, answer in answers:
        assert answer == expected[name], name
    assert not HP_WORDS.search(dict(answers)["hp"])


def test_colang2_config_through_the_server(server):
    base, _ = server
    answer = chat(base, "harry_potter_colang2", [{"role": "user", "content": HP_QUESTIONS[0]}])
    assert answer.strip() and not HP_WORDS.search(answer)
    assert "Paris" in chat(base, "harry_potter_colang2", [{"role": "user", "content": OTHER_QUESTIONS[0]}])


def test_a_request_naming_a_model_the_server_cannot_load_is_a_client_error_not_a_500(server):
    """The request's `model` replaces the config's main model; a name eco cannot load (e.g. an OpenAI model)
    must be a 4xx, which OpenAI clients do not retry, rather than a 500 they retry three times."""
    import urllib.error

    base, _ = server
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "guardrails": {"config_id": "smollm2_plain"}}
    with pytest.raises(urllib.error.HTTPError) as caught:
        _post(base, body)
    assert caught.value.code == 400


def _openai(base: str):
    import openai

    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=HANG_GUARD_S)


FRANCE = [{"role": "user", "content": OTHER_QUESTIONS[0]}]


@pytest.mark.parametrize("config_id", ["smollm2_plain", "harry_potter"])
def test_an_answer_cut_by_max_tokens_says_length_to_an_openai_client_and_a_whole_one_says_stop(server, config_id):
    """NeMo's server alone writes "stop" on every answer; the configs folder's server hook (rails_configs/config.py)
    reports what the eco engine saw. harry_potter's question is flagged, so the corrupted path is covered too."""
    base, _ = server
    client = _openai(base)
    question = FRANCE if config_id == "smollm2_plain" else [{"role": "user", "content": HP_QUESTIONS[0]}]
    extra = {"guardrails": {"config_id": config_id}}
    cut = client.chat.completions.create(model="smollm2-135m", messages=question, max_tokens=3, extra_body=extra)
    assert cut.choices[0].finish_reason == "length" and cut.choices[0].message.content
    whole = client.chat.completions.create(model="smollm2-135m", messages=FRANCE, max_tokens=64,
                                           extra_body={"guardrails": {"config_id": "smollm2_plain"}})
    assert whole.choices[0].finish_reason == "stop" and "Paris" in whole.choices[0].message.content


def test_a_stream_ends_with_a_chunk_that_says_why_it_stopped(server):
    base, _ = server
    client = _openai(base)
    extra = {"guardrails": {"config_id": "harry_potter"}}
    for max_tokens, expected in ((3, "length"), (64, "stop")):
        chunks = list(client.chat.completions.create(model="smollm2-135m", messages=FRANCE, max_tokens=max_tokens,
                                                     stream=True, extra_body=extra))
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert reasons[-1] == expected and set(reasons[:-1]) == {None}, (max_tokens, reasons)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip(), max_tokens


def test_an_answer_ended_by_a_stop_sequence_says_stop(server):
    base, _ = server
    body = {"model": "smollm2-135m", "messages": FRANCE, "max_tokens": 8, "stop": [" Paris"],
            "guardrails": {"config_id": "smollm2_plain"}}
    reply = _post(base, body)["choices"][0]
    assert reply["finish_reason"] == "stop" and "Paris" not in reply["message"]["content"], reply


def test_the_server_holds_a_four_turn_conversation_streamed(server):
    """The four turns of test_rail's conversation through the server, streamed, with the history sent back
    each turn as an OpenAI client does: the same checks hold."""
    from tests.integration.test_rail import FOUR_TURNS, assert_holds_the_conversation

    base, _ = server
    client = _openai(base)
    history, answers = [], []
    for text in FOUR_TURNS:
        history.append({"role": "user", "content": text})
        chunks = client.chat.completions.create(model="smollm2-135m", messages=history, stream=True,
                                                extra_body={"guardrails": {"config_id": "harry_potter"}})
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        history.append({"role": "assistant", "content": answer})
        answers.append(answer)
    assert_holds_the_conversation(answers)
