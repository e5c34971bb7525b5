"""Resolving and loading local models: the embedded GGUF cache, other families, and bad paths."""

from __future__ import annotations

import json
import os

import pytest
import torch

from eco_rails import FlagDecision, GenerationSettings, get_engine
from eco_rails.errors import ModelLoadError
from eco_rails.model_store import cache_root, converted_gguf_dir, resolve_model_dir


def test_embedded_model_is_converted_once_into_a_hash_keyed_cache(engine):
    first = resolve_model_dir("smollm2-135m")
    assert first.parent == cache_root() / "models"
    assert first.name.startswith("SmolLM2-135M-Instruct.Q4_1-") and (first / "model.safetensors").is_file()
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_dir("embedded") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime, "a second start reuses the cache"
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")], "no half-written temp dirs"


def test_a_broken_gguf_fails_cleanly_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("ECO_RAILS_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(256))
    with pytest.raises(ModelLoadError, match="Could not convert GGUF file"):
        converted_gguf_dir(bad)
    leftovers = [p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("make_ref", "message"),
    [
        (lambda tmp, minilm: str(tmp / "nope"), "does not exist"),
        (lambda tmp, minilm: "", "No model given"),
        (lambda tmp, minilm: str(minilm), "is not a causal"),
        (lambda tmp, minilm: str(minilm / "vocab.txt"), "is a file but not a .gguf"),
        (lambda tmp, minilm: str(tmp), "has no config.json"),
    ],
)
def test_bad_model_references_get_clear_errors(tmp_path, minilm_dir, make_ref, message):
    with pytest.raises(ModelLoadError, match=message):
        get_engine(make_ref(tmp_path, minilm_dir), device="cpu")


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        get_engine("smollm2-135m", device="cuda")


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
