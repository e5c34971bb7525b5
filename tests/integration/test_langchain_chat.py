"""EcoChatModel as a LangChain chat model: sync, async, streaming, LCEL chains, flag sources.

(Settings checks that load no model: tests/unit/test_langchain_chat.py.)
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from eco_rails import EcoChatModel, FlagDecision, GenerationSettings

HP = "Who wrote the Harry Potter books?"


@pytest.fixture(scope="module")
def chat():
    return EcoChatModel(model="smollm2-135m", max_new_tokens=24, device="cpu")


def test_lcel_chain_answers_like_the_plain_model(chat, engine):
    chain = ChatPromptTemplate.from_messages([("system", "You are a helpful assistant."), ("human", "{question}")]) | chat | StrOutputParser()
    answer = chain.invoke({"question": "What is the capital of France?"})
    expected = engine.generate(
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}],
        settings=GenerationSettings(max_new_tokens=24),
    ).text
    assert answer == expected and "Paris" in answer


def test_outside_flag_decision_corrupts(chat):
    clean = chat.invoke(HP)
    assert "Rowling" in clean.content
    flagged = chat.bind(eco_flag=True).invoke(HP)
    assert flagged.content != clean.content and "Rowling" not in flagged.content
    explicit = chat.invoke(HP, eco_flag=FlagDecision.flag())
    assert explicit.content == flagged.content
    assert clean.usage_metadata["output_tokens"] > 0


def test_flag_decider_decides_by_itself(engine):
    class KeywordDecider:
        def decide(self, messages):
            return FlagDecision(flagged="Harry" in messages[-1]["content"])

    chat = EcoChatModel(model="smollm2-135m", max_new_tokens=24, flag_decider=KeywordDecider())
    assert "Rowling" not in chat.invoke(HP).content
    assert "Paris" in chat.invoke("What is the capital of France?").content


def test_multi_turn_messages(chat):
    msgs = [SystemMessage("You are terse."), HumanMessage("Hi"), AIMessage("Hello!"), HumanMessage("What is 2 plus 2?")]
    assert chat.invoke(msgs).content


async def test_sync_async_and_streaming_paths_agree(chat):
    sync = chat.invoke(HP).content
    assert (await chat.ainvoke(HP)).content == sync
    assert "".join(c.content for c in chat.stream(HP)) == sync
    assert "".join([c.content async for c in chat.astream(HP)]) == sync
    flagged = chat.invoke(HP, eco_flag=True).content
    assert "".join([c.content async for c in chat.astream(HP, eco_flag=True)]) == flagged


def test_stop_is_honoured(chat):
    full = chat.invoke(HP).content
    cut = chat.invoke(HP, stop=["Rowling"]).content
    assert cut == full[: full.index("Rowling")]


def test_max_tokens_alias_and_per_call_model_is_refused():
    chat = EcoChatModel(model="smollm2-135m", device="cpu", max_tokens=5)
    assert chat.max_new_tokens == 5
    assert chat.invoke("Count from one to twenty.").usage_metadata["output_tokens"] <= 5
    with pytest.raises(ValueError, match="per-call model='other-model' is not supported"):
        chat.invoke("Hello", model="other-model")


def test_stream_ends_with_usage_and_finish_reason():
    chat = EcoChatModel(model="smollm2-135m", device="cpu", max_new_tokens=6)
    chunks = list(chat.stream("Count from one to twenty."))
    last = chunks[-1]
    assert last.chunk_position == "last" and last.content == ""
    assert last.usage_metadata["output_tokens"] == 6 and last.response_metadata["finish_reason"] == "length"
    assert "".join(c.content for c in chunks) == chat.invoke("Count from one to twenty.").content
