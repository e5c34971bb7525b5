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
