"""Resolving local models: bad paths, broken GGUF files and unavailable devices fail cleanly, before any
model is loaded."""

from __future__ import annotations

import os

import pytest
import torch

from eco_rails import get_engine
from eco_rails.engine.model_store import converted_gguf_dir
from eco_rails.errors import ModelLoadError


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


def test_adapter_path_that_is_not_a_peft_adapter_names_the_fix(tmp_path):
    from eco_rails.engine.model_store import resolve_adapter_dir
    from eco_rails.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="not a directory.*save_pretrained"):
        resolve_adapter_dir(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no adapter_config.json"):
        resolve_adapter_dir(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="weights are missing"):
        resolve_adapter_dir(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"x")
    assert resolve_adapter_dir(tmp_path) == tmp_path
