"""A base model plus a PEFT adapter, served by the eco provider: bit-identical to the PeftModel when nothing
is flagged, and read relative to the rails config folder."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import yaml

pytestmark = pytest.mark.slow

QUESTION = "Tell me a short story about a cat."


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    """A real LoRA adapter on the embedded model (random, non-zero B so it changes answers; seeded; checked
    by the first test to change the answer)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from eco_rails.engine.model_store import choose_placement, load_model_and_tokenizer, resolve_model_dir

    torch.manual_seed(0)
    base, _ = load_model_and_tokenizer(resolve_model_dir("smollm2-135m"), choose_placement("cpu"))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapter") / "my-chatbot"
    model.save_pretrained(str(out))
    return out


def _peft_answer(adapter_dir, max_new_tokens: int = 16, merged: bool = False) -> str:
    import torch
    from peft import PeftModel

    from eco_rails.engine.model_store import choose_placement, load_model_and_tokenizer, resolve_model_dir

    base, tokenizer = load_model_and_tokenizer(resolve_model_dir("smollm2-135m"), choose_placement("cpu"))
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    if merged:
        model = model.merge_and_unload().eval()
    text = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=base.generation_config.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_provider_with_adapter_answers_exactly_like_the_peft_model_when_unflagged(adapter_dir, engine):
    from eco_rails.providers.nemo import EcoLLM

    llm = EcoLLM("smollm2-135m", adapter=str(adapter_dir), max_new_tokens=16, temperature=0, device="cpu")
    served = asyncio.run(llm.generate_async(QUESTION)).content
    assert served == _peft_answer(adapter_dir)
    from eco_rails.engine.generation import GenerationSettings

    plain = engine.generate(QUESTION, settings=GenerationSettings(max_new_tokens=16)).text
    assert served != plain, "the adapter must change the answer, or this test proves nothing"


def test_merged_adapter_is_a_plain_model_answering_like_peft_merge_and_unload(adapter_dir, engine):
    """``merge_adapter: true`` folds the adapter into the weights (the fast path the benchmarks use): the engine
    holds a plain transformers model, unflagged answers equal peft's own merge_and_unload, flagged ones are
    corrupted, and it is a separate engine from the unmerged one."""
    from peft import PeftModel

    from eco_rails.engine.flags import FlagDecision
    from eco_rails.engine.generation import GenerationSettings
    from eco_rails.providers.nemo import EcoLLM

    llm = EcoLLM("smollm2-135m", adapter=str(adapter_dir), merge_adapter=True, max_new_tokens=16, temperature=0,
                 device="cpu", corruption={"method": "rand_noise", "strength": 5.0})
    assert not isinstance(llm.engine.model, PeftModel) and llm.engine.name.endswith("(merged)")
    unmerged = EcoLLM("smollm2-135m", adapter=str(adapter_dir), max_new_tokens=16, temperature=0, device="cpu")
    assert unmerged.engine is not llm.engine and isinstance(unmerged.engine.model, PeftModel)
    served = asyncio.run(llm.generate_async(QUESTION)).content
    assert served == _peft_answer(adapter_dir, merged=True)
    assert served != engine.generate(QUESTION, settings=GenerationSettings(max_new_tokens=16)).text
    assert asyncio.run(llm.generate_async(QUESTION, eco_flag=FlagDecision.flag())).content != served


def test_flagged_prompt_is_corrupted_on_top_of_the_adapter(adapter_dir):
    from eco_rails.engine.flags import FlagDecision
    from eco_rails.providers.nemo import EcoLLM

    llm = EcoLLM("smollm2-135m", adapter=str(adapter_dir), max_new_tokens=16, temperature=0, device="cpu",
                 corruption={"method": "rand_noise", "strength": 5.0})
    clean = asyncio.run(llm.generate_async(QUESTION)).content
    corrupted = asyncio.run(llm.generate_async(QUESTION, eco_flag=FlagDecision.flag())).content
    assert corrupted != clean


def test_rails_config_reads_the_adapter_relative_to_its_folder(adapter_dir, fitted, tmp_path, fresh_caches):
    from nemoguardrails import LLMRails, RailsConfig
    from peft import PeftModel

    root, _ = fitted
    config = tmp_path / "bot"
    shutil.copytree(root, config)
    shutil.copytree(adapter_dir, config / "adapter")
    data = yaml.safe_load((config / "config.yml").read_text())
    data["models"][0]["parameters"]["adapter"] = "adapter"
    data["import_paths"] = ["eco_rails/rails"]  # the rail's config.py reads paths relative to the folder
    data["rails"] = {"input": {"flows": ["eco check input"]}}
    (config / "config.yml").write_text(yaml.safe_dump(data))
    rails = LLMRails(RailsConfig.from_path(str(config)))
    engine = rails.llm.engine
    assert isinstance(engine.model, PeftModel)
    assert engine.name.endswith("+adapter")


def test_resolved_config_reads_the_adapter_relative_to_its_folder(adapter_dir, fitted, tmp_path):
    from eco_rails.rails.resolved import resolve_config

    root, _ = fitted
    config = tmp_path / "bot2"
    shutil.copytree(root, config)
    data = yaml.safe_load((config / "config.yml").read_text())
    data["models"][0]["parameters"]["adapter"] = "adapter"
    (config / "config.yml").write_text(yaml.safe_dump(data))
    assert resolve_config(config).main_model.parameters["adapter"] == str((config / "adapter").resolve())


def test_langchain_chat_model_serves_the_same_adapter(adapter_dir):
    from eco_rails.providers.langchain import EcoChatModel

    chat = EcoChatModel(model="smollm2-135m", adapter=str(adapter_dir), max_new_tokens=16, temperature=0, device="cpu")
    assert chat.invoke(QUESTION).content == _peft_answer(adapter_dir)
