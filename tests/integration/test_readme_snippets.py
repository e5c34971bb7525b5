"""README's Python snippets run as written, in a fresh namespace from the repository root, and what their
comments claim holds (so the README cannot drift from the code)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)


def run_block(fragment: str) -> dict:
    block = next(b for b in python_blocks() if fragment in b)
    namespace: dict = {"__name__": "readme"}
    exec(compile(block, "README.md", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def _from_the_repository_root(monkeypatch):
    monkeypatch.chdir(REPO)


def test_readme_has_the_snippets_these_tests_run():
    assert len(python_blocks()) == 3


def test_the_classifier_snippet_runs_and_flags_what_it_says(hp_artifact):
    ns = run_block("PromptClassifier.from_config")
    decision = ns["clf"].classify("Who is the headmaster of Hogwarts?")
    assert (decision.flagged, decision.evidence, decision.view) == (True, "distinctive", "text")
    follow_up = ns["clf"].decide([{"role": "user", "content": "Tell me about Hermione Granger."},
                                  {"role": "user", "content": "What house is she in?"}])
    assert follow_up.flagged and len(follow_up.spans) == 2, "the pronoun follow-up is in scope with its anchor"


def test_the_langchain_snippet_runs_and_the_clean_answer_is_the_plain_model(engine):
    from eco_rails import GenerationSettings

    ns = run_block("ChatPromptTemplate")
    clean = ns["chain"].invoke({"q": "What is the capital of France?"}).content
    plain = engine.generate([{"role": "user", "content": "What is the capital of France?"}],
                            settings=GenerationSettings(max_new_tokens=64)).text
    assert clean == plain
    own = ns["EcoChatModel"](model="smollm2-135m", max_new_tokens=16, flag_decider=ns["MentionsHarry"]())
    assert own.invoke("Who is Harry Potter?").content != ns["EcoChatModel"](model="smollm2-135m", max_new_tokens=16).invoke(
        "Who is Harry Potter?").content, "the user's own decider corrupts what it flags"


def test_the_custom_corruption_snippet_registers_a_usable_method():
    from eco_rails.engine.corruption import registry

    try:
        run_block("register_corruption_method")
        assert "scale" in registry.corruption_method_names()
    finally:
        registry._METHODS.pop("scale", None)
