"""Resolving and loading local models: the embedded GGUF cache and other families.

(Bad paths and devices, which load no model: tests/unit/test_model_store.py.)
"""

from __future__ import annotations

import json

import pytest
import torch

from eco_rails import FlagDecision, GenerationSettings, get_engine
from eco_rails.engine.model_store import cache_root, resolve_model_dir


def test_embedded_model_is_converted_once_into_a_hash_keyed_cache(engine):
    first = resolve_model_dir("smollm2-135m")
    assert first.parent == cache_root() / "models"
    assert first.name.startswith("SmolLM2-135M-Instruct.Q4_1-") and (first / "model.safetensors").is_file()
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_dir("embedded") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime, "a second start reuses the cache"
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")], "no half-written temp dirs"


def test_a_conversion_killed_half_way_is_cleaned_up_by_the_next_one(tmp_path, monkeypatch):
    """A conversion interrupted by a kill leaves its temporary folder; the next conversion (holding the
    lock) removes it before writing its own, and the cache ends with only the finished model."""
    from eco_rails.engine.model_store import converted_gguf_dir, embedded_gguf_path

    monkeypatch.setenv("ECO_RAILS_CACHE", str(tmp_path))
    models = tmp_path / "models"
    gguf = embedded_gguf_path()
    target_prefix = f".{gguf.stem}-"
    leftover = models / f"{target_prefix}0000000000000000.killed"  # another key: must stay
    models.mkdir(parents=True)
    first = converted_gguf_dir(gguf)
    killed = models / f".{first.name}.abc123"
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"half")
    leftover.mkdir()
    import shutil

    shutil.rmtree(first)  # force a second conversion
    again = converted_gguf_dir(gguf)
    assert again == first and (again / "model.safetensors").is_file()
    assert not killed.exists(), "the killed conversion's temporary folder is removed"
    assert leftover.exists(), "temporary folders of other models are left alone"


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_other_model_families_load_from_a_local_directory(tmp_path, engine, family):
    """A small randomly initialised model of each family, saved as a normal HF directory."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        family, vocab_size=len(engine.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=engine.tokenizer.bos_token_id, eos_token_id=engine.tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    engine.tokenizer.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == family

    small = get_engine(tmp_path, device="cpu")
    assert type(small.model).__name__.lower().startswith(family)
    settings = GenerationSettings(max_new_tokens=8)
    clean = small.generate("Hello there", settings=settings)
    ids = torch.tensor([small.render("Hello there").input_ids])
    plain = small.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                                 pad_token_id=small.pad_token_id)
    assert clean.completion_tokens == 8
    assert clean.text == small.tokenizer.decode(plain[0, ids.shape[1]:], skip_special_tokens=True)
    prepared = small.prepare("Hello there", flag=FlagDecision.flag())
    assert prepared.corrupted_tokens == 2  # "Hello", " there"


def test_a_tokenizer_made_portable_reads_tokenizer_json_as_the_declared_class_did(tmp_path):
    """The conversion (and export-vllm) declare PreTrainedTokenizerFast, which transformers 4 and 5 (vLLM's) read
    verbatim; it must tokenize, pad and decode exactly as the GGUF's declared LlamaTokenizerFast did here."""
    import shutil

    from transformers import AutoTokenizer

    from eco_rails.engine.model_store import make_tokenizer_portable

    source = resolve_model_dir("smollm2-135m")
    copy = tmp_path / "tok"
    copy.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"):
        if (source / name).is_file():
            shutil.copy(source / name, copy / name)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "LlamaTokenizerFast"  # what the GGUF declares
    config.pop("model_input_names", None), config.pop("padding_side", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    declared = AutoTokenizer.from_pretrained(copy)
    make_tokenizer_portable(copy)
    portable = AutoTokenizer.from_pretrained(copy)
    assert type(portable).__name__ == "PreTrainedTokenizerFast"
    texts = ["Who is the headmaster of Hogwarts?", " leading space", "Ünïcödé 日本語", "a\n\n b\tc", "<|im_start|>user\nhi<|im_end|>"]
    for text in texts:
        assert portable(text, return_offsets_mapping=True)["offset_mapping"] == declared(text, return_offsets_mapping=True)["offset_mapping"]
        assert portable(text)["input_ids"] == declared(text)["input_ids"]
        assert portable.decode(portable(text)["input_ids"]) == declared.decode(declared(text)["input_ids"])
    assert set(portable("hi")) == {"input_ids", "attention_mask"}  # generate() rejects token_type_ids
    assert portable.padding_side == declared.padding_side == "left"
    assert portable.eos_token == "<|im_end|>"  # what the generation config stops on


def test_the_one_time_conversion_prints_no_library_notice(tmp_path):
    """A new user's first chat converts the GGUF file; transformers' "legacy behaviour" notice about the GGUF
    tokenizer asks nothing of them, and eco-rails announces the conversion itself (checked in a fresh process:
    the notice is printed once per process)."""
    import os
    import subprocess
    import sys

    code = ("from eco_rails.engine.model_store import converted_gguf_dir, embedded_gguf_path\n"
            "print(converted_gguf_dir(embedded_gguf_path()))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ECO_RAILS_CACHE": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "legacy" not in run.stderr, run.stderr[-2000:]
