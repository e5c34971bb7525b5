"""The `eco` engine inside real NeMo Guardrails 0.24 (no rails yet: the plain provider).

(Registration and parameter checks that load no model: tests/unit/test_nemo_provider.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eco_rails import EcoLLM, FlagDecision
from tests.conftest import REPO

PLAIN_CONFIG = REPO / "rails_configs" / "smollm2_plain"


@pytest.fixture(scope="module")
def rails():
    from nemoguardrails import LLMRails, RailsConfig

    return LLMRails(RailsConfig.from_path(str(PLAIN_CONFIG)))


def test_llmrails_builds_the_eco_provider_and_answers(rails, engine):
    assert isinstance(rails.llm, EcoLLM)
    assert rails.llm.engine is engine, "providers share one loaded model per process"
    answer = rails.generate(messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in answer["content"]
    # The answer is the plain model's answer to the exact prompt NeMo sent.
    prompt = rails.explain().llm_calls[-1].prompt
    expected = engine.generate(prompt, settings=rails.llm.settings.generation(max_tokens=None)).text
    assert answer["content"] == expected.strip() or answer["content"] == expected


async def test_provider_protocol_generate_and_stream(rails):
    from nemoguardrails.types import ChatMessage, LLMModel

    llm = rails.llm
    assert isinstance(llm, LLMModel)
    assert (llm.model_name, llm.provider_name, llm.provider_url) == ("smollm2-135m", "eco", None)
    prompt = [ChatMessage.from_user("Who wrote the Harry Potter books?")]
    clean = await llm.generate_async(prompt, max_tokens=24, temperature=0.001)
    assert "Rowling" in clean.content and clean.usage.output_tokens <= 24
    flagged = await llm.generate_async(prompt, max_tokens=24, eco_flag=FlagDecision.flag())
    assert flagged.content != clean.content and "Rowling" not in flagged.content
    chunks = [c async for c in llm.stream_async(prompt, max_tokens=24)]
    assert "".join(c.delta_content or "" for c in chunks) == clean.content
    # the stream ends with the same finish reason as the whole answer ("length" when max_tokens cut it)
    assert chunks[-1].finish_reason == clean.finish_reason == ("length" if clean.usage.output_tokens == 24 else "stop")


async def test_llmrails_streaming(rails):
    chunks = [c async for c in rails.stream_async(messages=[{"role": "user", "content": "What is the capital of France?"}])]
    text = "".join(c if isinstance(c, str) else c.get("text", "") for c in chunks)
    assert "Paris" in text


def test_flag_decider_hook_decides_per_request(engine):
    class KeywordDecider:  # a real decider object: flags anything mentioning Potter
        def decide(self, messages):
            return FlagDecision(flagged="Potter" in messages[-1]["content"])

    llm = EcoLLM("smollm2-135m", flag_decider=KeywordDecider(), max_new_tokens=24, device="cpu")
    import asyncio

    hp = asyncio.run(llm.generate_async("Who wrote the Harry Potter books?"))
    other = asyncio.run(llm.generate_async("What is the capital of France?"))
    assert "Rowling" not in hp.content
    assert other.content == engine.generate("What is the capital of France?", settings=llm.settings.generation()).text


def test_bad_parameters_fail_when_the_rails_config_loads(tmp_path):
    from nemoguardrails import LLMRails, RailsConfig

    (tmp_path / "config.yml").write_text(
        "models:\n  - type: main\n    engine: eco\n    model: smollm2-135m\n    parameters:\n      corruption: {method: blur}\n"
    )
    (tmp_path / "config.py").write_text("import eco_rails\n")
    with pytest.raises(Exception, match="Valid methods"):
        LLMRails(RailsConfig.from_path(str(tmp_path)))


def test_langchain_framework_wraps_the_langchain_chat_model():
    """Under NEMOGUARDRAILS_LLM_FRAMEWORK=langchain the same config yields EcoChatModel (fresh process:
    NeMo reads the variable at import time)."""
    code = (
        "import json\nfrom nemoguardrails import LLMRails, RailsConfig\n"
        f"rails = LLMRails(RailsConfig.from_path({str(PLAIN_CONFIG)!r}))\n"
        "r = rails.generate(messages=[{'role': 'user', 'content': 'What is the capital of France?'}])\n"
        "print(json.dumps({'adapter': type(rails.llm).__name__, 'raw': type(getattr(rails.llm, 'raw_llm', None)).__name__,"
        " 'answer': r['content']}))\n"
    )
    env = {**os.environ, "NEMOGUARDRAILS_LLM_FRAMEWORK": "langchain"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["adapter"] == "LangChainLLMAdapter" and result["raw"] == "EcoChatModel"
    assert "Paris" in result["answer"]
